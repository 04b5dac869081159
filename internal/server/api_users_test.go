package server_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/api/apitest"
	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

type apiUser struct {
	Name, Home  string
	Permissions []string
	BinaryOnly  bool `json:"binary_only"`
	Limits      struct {
		Disabled        bool
		Expires         *time.Time
		AllowedNetworks []string `json:"allowed_networks"`
		MaxSessions     int      `json:"max_sessions"`
		QuotaBytes      int64    `json:"quota_bytes"`
		UploadRate      int64    `json:"upload_rate"`
		Dirs            []struct {
			Dir              string
			DeniedPatterns   []string `json:"denied_patterns"`
			RetentionSeconds float64  `json:"retention_seconds"`
		}
	}
	Folders []struct {
		Path, Volume, Target string
		Permissions          []string
	}
}

// canLogin logs in with jlaffaye/ftp and returns the error.
func canLogin(ts *testServer, user, pass string) error {
	c, err := ftpLogin(ts, user, pass)
	if err == nil {
		c.Quit()
	}
	return err
}

// TestAPIUserWrites: users added, changed, disabled, given a new
// password and deleted through the API are in the users file and take
// effect in the running server at once (a real FTP client logs in, or
// is refused); the refusals: no token, a read token, a console session
// without its CSRF token, an unknown user, an existing one, bad JSON,
// unknown keys, invalid fields; every change is an admin.action event.
func TestAPIUserWrites(t *testing.T) {
	as := startAPIServer(t, "")
	c := apitest.New(t, as.base, nil)
	bad := c.Unchecked()
	carol := []byte(`{"name":"carol","password":"carol-secret","home":"partners/carol","permissions":["list","download","upload"],
		"limits":{"max_sessions":3,"quota_bytes":1048576,"allowed_networks":["127.0.0.0/8"],
		"dirs":[{"dir":"/","denied_patterns":["*.exe"]},{"dir":"/archive","retention_seconds":86400}]},
		"folders":[{"path":"/shared","target":"shared","permissions":["read"]}]}`)

	// Refusals before anything exists.
	c.Must(401, "POST", "/v1/users", "", carol)
	c.Must(403, "POST", "/v1/users", as.read, carol)
	bad.Must(400, "POST", "/v1/users", as.admin, []byte(`{"name":"carol",`))
	bad.Must(400, "POST", "/v1/users", as.admin, []byte(`{"name":"carol","password":"x","colour":"red"}`))
	bad.Must(400, "POST", "/v1/users", as.admin, []byte(`{"name":"carol"}`))
	for _, body := range []string{
		`{"name":"carol","password":"x","permissions":["fly"]}`,
		`{"name":"ca/rol","password":"x"}`,
		`{"name":"carol","password":"x","home":"/etc"}`,
		`{"name":"carol","password":"x","limits":{"allowed_networks":["not-a-net"]}}`,
		`{"name":"carol","password":"x","folders":[{"path":"/v","volume":"nope","permissions":["read"]}]}`,
	} {
		if e := decode[apiError](t, c.Must(400, "POST", "/v1/users", as.admin, []byte(body))); e.Code != "bad_request" || e.Error == "" {
			t.Errorf("%s: %+v", body, e)
		}
	}
	if e := decode[apiError](t, c.Must(409, "POST", "/v1/users", as.admin, []byte(`{"name":"alice","password":"x"}`))); e.Code != "user_exists" {
		t.Errorf("adding alice again: %+v", e)
	}

	// Add carol: the answer, the list, the file, and a real login.
	u := decode[apiUser](t, c.Must(201, "POST", "/v1/users", as.admin, carol))
	if u.Name != "carol" || u.Home != "partners/carol" || !slices.Equal(u.Permissions, []string{"list", "download", "upload"}) ||
		u.Limits.MaxSessions != 3 || u.Limits.QuotaBytes != 1<<20 || len(u.Limits.Dirs) != 2 || u.Limits.Dirs[1].RetentionSeconds != 86400 ||
		len(u.Folders) != 1 || u.Folders[0].Path != "/shared" || u.Folders[0].Target != "shared" {
		t.Errorf("added: %+v", u)
	}
	got := decode[apiUser](t, c.Must(200, "GET", "/v1/users/carol", as.read, nil))
	if fmt.Sprint(got) != fmt.Sprint(u) {
		t.Errorf("GET after POST:\n%+v\nwant\n%+v", got, u)
	}
	uf, err := auth.LoadUsersFile(as.cfg.Path(as.cfg.Auth.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	if e := uf.Find("carol"); e == nil || !strings.HasPrefix(e.PasswordHash, "$argon2id$") || e.MaxSessions != 3 || len(e.Folders) != 1 {
		t.Fatalf("users file after POST: %+v", e)
	}
	if err := canLogin(as.testServer, "carol", "carol-secret"); err != nil {
		t.Fatalf("carol cannot log in: %v", err)
	}

	// Change her: partial, the rest stays.
	bad.Must(400, "PATCH", "/v1/users/carol", as.admin, []byte(`{"limits":{"max_sessions":"many"}}`))
	bad.Must(400, "PATCH", "/v1/users/carol", as.admin, []byte(`{"password":"new"}`))
	c.Must(400, "PATCH", "/v1/users/carol", as.admin, []byte(`{"name":"dave"}`))
	c.Must(400, "PATCH", "/v1/users/carol", as.admin, []byte(`{"disabled":true,"limits":{"disabled":false}}`))
	c.Must(403, "PATCH", "/v1/users/carol", as.read, []byte(`{"disabled":true}`))
	if e := decode[apiError](t, c.Must(404, "PATCH", "/v1/users/nobody", as.admin, []byte(`{"disabled":true}`))); e.Code != "unknown_user" {
		t.Errorf("PATCH nobody: %+v", e)
	}
	u = decode[apiUser](t, c.Must(200, "PATCH", "/v1/users/carol", as.admin,
		[]byte(`{"limits":{"upload_rate":65536,"expires":"2099-01-01T00:00:00Z"},"binary_only":true}`)))
	if u.Limits.UploadRate != 65536 || u.Limits.Expires == nil || !u.BinaryOnly || u.Limits.MaxSessions != 3 || u.Home != "partners/carol" || len(u.Folders) != 1 {
		t.Errorf("after PATCH: %+v", u)
	}
	u = decode[apiUser](t, c.Must(200, "PATCH", "/v1/users/carol", as.admin, []byte(`{"limits":{"expires":null},"folders":[]}`)))
	if u.Limits.Expires != nil || len(u.Folders) != 0 || u.Limits.UploadRate != 65536 {
		t.Errorf("after clearing expires and folders: %+v", u)
	}

	// Disabled: refused at once; enabled again: back.
	u = decode[apiUser](t, c.Must(200, "PATCH", "/v1/users/carol", as.admin, []byte(`{"disabled":true}`)))
	if !u.Limits.Disabled {
		t.Errorf("disabled: %+v", u)
	}
	if err := canLogin(as.testServer, "carol", "carol-secret"); err == nil || !strings.Contains(err.Error(), "530") {
		t.Errorf("disabled carol logs in: %v", err)
	}
	c.Must(200, "PATCH", "/v1/users/carol", as.admin, []byte(`{"limits":{"disabled":false}}`))
	if err := canLogin(as.testServer, "carol", "carol-secret"); err != nil {
		t.Errorf("enabled carol: %v", err)
	}

	// A new password: the old one is refused at once.
	c.Must(403, "POST", "/v1/users/carol/password", as.read, []byte(`{"password":"new-secret"}`))
	c.Must(404, "POST", "/v1/users/nobody/password", as.admin, []byte(`{"password":"new-secret"}`))
	bad.Must(400, "POST", "/v1/users/carol/password", as.admin, []byte(`{"password":""}`))
	bad.Must(400, "POST", "/v1/users/carol/password", as.admin, []byte(`password`))
	c.Must(204, "POST", "/v1/users/carol/password", as.admin, []byte(`{"password":"new-secret"}`))
	if err := canLogin(as.testServer, "carol", "carol-secret"); err == nil {
		t.Error("the old password still works")
	}
	if err := canLogin(as.testServer, "carol", "new-secret"); err != nil {
		t.Errorf("the new password: %v", err)
	}

	// A console session may change users, with its CSRF token.
	b := browser(t, as.base, nil)
	li := decode[loginAnswer](t, b.Must(200, "POST", "/v1/login", "", loginBody(consoleAdmin, consolePassword)))
	if e := decode[apiError](t, b.MustHeader(403, "PATCH", "/v1/users/carol", nil, []byte(`{"limits":{"max_sessions":1}}`))); e.Code != "csrf" {
		t.Errorf("PATCH without CSRF: %+v", e)
	}
	u = decode[apiUser](t, b.MustHeader(200, "PATCH", "/v1/users/carol", csrf(li.CSRFToken), []byte(`{"limits":{"max_sessions":1}}`)))
	if u.Limits.MaxSessions != 1 {
		t.Errorf("PATCH from the console: %+v", u)
	}

	// Delete.
	c.Must(403, "DELETE", "/v1/users/carol", as.read, nil)
	c.Must(204, "DELETE", "/v1/users/carol", as.admin, nil)
	c.Must(404, "DELETE", "/v1/users/carol", as.admin, nil)
	c.Must(404, "GET", "/v1/users/carol", as.read, nil)
	if err := canLogin(as.testServer, "carol", "new-secret"); err == nil {
		t.Error("a deleted user logs in")
	}
	if err := canLogin(as.testServer, "alice", "alice-secret"); err != nil {
		t.Errorf("alice, untouched: %v", err)
	}

	// The audit trail has every change request, and no password.
	audit := decode[struct {
		Events []struct {
			Actor, Method, Path, Reason string
			Status                      int
		}
	}](t, c.Must(200, "GET", "/v1/audit", as.read, nil)).Events
	var paths []string
	for _, e := range audit {
		if strings.Contains(e.Reason, "secret") {
			t.Errorf("a password in the audit: %+v", e)
		}
		paths = append(paths, fmt.Sprintf("%s %s %d", e.Method, e.Path, e.Status))
	}
	for _, w := range []string{"POST /v1/users 201", "POST /v1/users 403", "POST /v1/users 409", "PATCH /v1/users/carol 200",
		"PATCH /v1/users/nobody 404", "POST /v1/users/carol/password 204", "DELETE /v1/users/carol 204", "PATCH /v1/users/carol 403"} {
		if !slices.Contains(paths, w) {
			t.Errorf("no %q in the audit ring: %q", w, paths)
		}
	}
}

// TestAPIUserWritesReadOnlyStore: with no users file (anonymous logins
// only) or an identity hook, the API cannot add or change users: 409
// read_only_store saying where the users come from; a read token is
// still 403 first.
func TestAPIUserWritesReadOnlyStore(t *testing.T) {
	for _, tc := range []struct {
		name, auth, says string
	}{
		{"anonymous", "anonymous = true", "anonymous"},
		{"hook", "store = \"http\"\n\n[auth.http]\nurl = \"http://127.0.0.1:9/login\"", "identity hook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := startAPIServerWith(t, "", func(text string) string {
				return regexp.MustCompile(`(?m)^users_file = .*$`).ReplaceAllString(text, tc.auth)
			}, nil)
			c := apitest.New(t, as.base, nil)
			for _, r := range []struct{ method, path, body string }{
				{"POST", "/v1/users", `{"name":"carol","password":"carol-secret"}`},
				{"PATCH", "/v1/users/carol", `{"disabled":true}`},
				{"DELETE", "/v1/users/carol", ""},
				{"POST", "/v1/users/carol/password", `{"password":"x"}`},
			} {
				var body []byte
				if r.body != "" {
					body = []byte(r.body)
				}
				e := decode[apiError](t, c.Must(409, r.method, r.path, as.admin, body))
				if e.Code != "read_only_store" || !strings.Contains(e.Error, tc.says) {
					t.Errorf("%s %s: %+v", r.method, r.path, e)
				}
			}
			c.Must(403, "POST", "/v1/users", as.read, []byte(`{"name":"carol","password":"carol-secret"}`))
			// This server was not given the doctor.
			if e := decode[apiError](t, c.Must(503, "GET", "/v1/doctor", as.read, nil)); e.Code != "unavailable" {
				t.Errorf("doctor without one: %+v", e)
			}
		})
	}
}

// TestAPIUserWritesPostgres: with auth.store = "postgres" the same
// endpoints edit the users table: a user added is listed at once and
// logs in with a real client within moments (LISTEN/NOTIFY), a disabled
// one is refused, a new password takes, a deleted one is gone; unknown
// and existing users are 404 and 409 as with the users file.
func TestAPIUserWritesPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	pool, err := pgdb.Open(pgdb.Options{DSN: dsn, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgdb.Migrate(t.Context(), pool, nil); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	as := startAPIServerWith(t, "", func(text string) string {
		return regexp.MustCompile(`(?m)^users_file = .*$`).ReplaceAllString(text,
			fmt.Sprintf("store = \"postgres\"\n\n[auth.postgres]\ndsn = %q\npoll_interval = \"1s\"\ntimeout = \"2s\"", dsn))
	}, nil)
	c := apitest.New(t, as.base, nil)
	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s\n%s", what, as.logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	if us := decode[struct{ Users []apiUser }](t, c.Must(200, "GET", "/v1/users", as.read, nil)).Users; len(us) != 0 {
		t.Fatalf("users at start: %+v", us)
	}
	u := decode[apiUser](t, c.Must(201, "POST", "/v1/users", as.admin,
		[]byte(`{"name":"carol","password":"carol-secret","limits":{"max_sessions":2},"folders":[{"path":"/in","target":"inbox","permissions":["upload"]}]}`)))
	if u.Name != "carol" || u.Limits.MaxSessions != 2 || len(u.Folders) != 1 {
		t.Errorf("added: %+v", u)
	}
	if us := decode[struct{ Users []apiUser }](t, c.Must(200, "GET", "/v1/users", as.read, nil)).Users; len(us) != 1 || us[0].Name != "carol" {
		t.Errorf("users right after the POST: %+v", us)
	}
	c.Must(409, "POST", "/v1/users", as.admin, []byte(`{"name":"carol","password":"x"}`))
	eventually("carol logs in", func() bool { return canLogin(as.testServer, "carol", "carol-secret") == nil })

	c.Must(404, "PATCH", "/v1/users/nobody", as.admin, []byte(`{"disabled":true}`))
	c.Must(400, "PATCH", "/v1/users/carol", as.admin, []byte(`{"permissions":["fly"]}`))
	if u := decode[apiUser](t, c.Must(200, "PATCH", "/v1/users/carol", as.admin, []byte(`{"disabled":true}`))); !u.Limits.Disabled || u.Limits.MaxSessions != 2 {
		t.Errorf("disabled: %+v", u)
	}
	eventually("disabled carol is refused", func() bool { return canLogin(as.testServer, "carol", "carol-secret") != nil })
	c.Must(200, "PATCH", "/v1/users/carol", as.admin, []byte(`{"disabled":false}`))
	c.Must(404, "POST", "/v1/users/nobody/password", as.admin, []byte(`{"password":"x"}`))
	c.Must(204, "POST", "/v1/users/carol/password", as.admin, []byte(`{"password":"new-secret"}`))
	eventually("the new password", func() bool { return canLogin(as.testServer, "carol", "new-secret") == nil })

	c.Must(204, "DELETE", "/v1/users/carol", as.admin, nil)
	c.Must(404, "DELETE", "/v1/users/carol", as.admin, nil)
	eventually("deleted carol is refused", func() bool { return canLogin(as.testServer, "carol", "new-secret") != nil })
}
