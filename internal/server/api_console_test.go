package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/api/apitest"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

// browser is an API client with a cookie jar, as the console's page is.
func browser(t *testing.T, base string, tr http.RoundTripper) *apitest.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return apitest.New(t, base, &http.Client{Jar: jar, Transport: tr})
}

func csrf(token string) http.Header {
	h := http.Header{}
	if token != "" {
		h.Set("X-CSRF-Token", token)
	}
	return h
}

type loginAnswer struct {
	Name      string
	CSRFToken string `json:"csrf_token"`
}

type meAnswer struct {
	Name, Scope string
	CSRFToken   string `json:"csrf_token"`
}

func loginBody(name, pw string) []byte {
	return []byte(fmt.Sprintf(`{"name":%q,"password":%q}`, name, pw))
}

// sessionCookie is the Set-Cookie of the console session in r.
func sessionCookie(t *testing.T, r *apitest.Response) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == api.SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", api.SessionCookie, r.Header)
	return nil
}

// TestAPIConsoleLogin: an admin account logs in with its password and
// gets an HttpOnly, SameSite=Strict session cookie and a CSRF token;
// with the cookie, reads need nothing more, and changes need the token
// in X-CSRF-Token (missing or wrong: 403 csrf), while a bearer token
// needs none; logout ends the session; an admin deleted from the file
// is logged out; bad JSON, a wrong password and an unknown name are
// refused; logins and refusals are audit events and in GET /v1/audit.
func TestAPIConsoleLogin(t *testing.T) {
	as := startAPIServer(t, "")
	c := browser(t, as.base, nil)

	// Refusals.
	bad := c.Unchecked()
	bad.Must(400, "POST", "/v1/login", "", []byte(`{"name":"root"`))
	bad.Must(400, "POST", "/v1/login", "", []byte(`{"name":"root","password":"x","extra":1}`))
	bad.Must(400, "POST", "/v1/login", "", []byte(`{"name":"root"}`))
	for _, creds := range [][2]string{{consoleAdmin, "wrong"}, {"nobody", consolePassword}} {
		r := c.Must(401, "POST", "/v1/login", "", loginBody(creds[0], creds[1]))
		if e := decode[apiError](t, r); e.Code != "unauthorized" || e.Error != "wrong admin name or password" {
			t.Errorf("login %v: %+v", creds, e)
		}
		if r.Header.Get("Set-Cookie") != "" {
			t.Errorf("a failed login set a cookie: %v", r.Header)
		}
	}
	c.Must(401, "GET", "/v1/me", "", nil)

	// Log in.
	r := c.Must(200, "POST", "/v1/login", "", loginBody(consoleAdmin, consolePassword))
	li := decode[loginAnswer](t, r)
	if li.Name != consoleAdmin || len(li.CSRFToken) < 40 {
		t.Fatalf("login: %s", r.Body)
	}
	ck := sessionCookie(t, r)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure || len(ck.Value) < 40 {
		t.Errorf("session cookie: %+v", ck)
	}
	me := decode[meAnswer](t, c.Must(200, "GET", "/v1/me", "", nil))
	if me.Name != consoleAdmin || me.Scope != "admin" || me.CSRFToken != li.CSRFToken {
		t.Errorf("me: %+v", me)
	}
	c.Must(200, "GET", "/v1/status", "", nil)

	// Changes: the CSRF token is required with the cookie.
	for _, tok := range []string{"", "wrong", li.CSRFToken[:len(li.CSRFToken)-1]} {
		if e := decode[apiError](t, c.MustHeader(403, "POST", "/v1/bans", csrf(tok), []byte(`{"prefix":"203.0.113.9"}`))); e.Code != "csrf" {
			t.Errorf("csrf %q: %+v", tok, e)
		}
	}
	c.MustHeader(201, "POST", "/v1/bans", csrf(li.CSRFToken), []byte(`{"prefix":"203.0.113.9"}`))
	// A bearer token needs none, even from a browser holding a cookie:
	// the header wins.
	c.Must(204, "DELETE", "/v1/bans/203.0.113.9", as.admin, nil)
	if m := decode[meAnswer](t, c.Must(200, "GET", "/v1/me", as.read, nil)); m.Name != "grafana" || m.Scope != "read" || m.CSRFToken != "" {
		t.Errorf("me with a read token: %+v", m)
	}

	// A second login is a second session with its own token.
	c2 := browser(t, as.base, nil)
	li2 := decode[loginAnswer](t, c2.Must(200, "POST", "/v1/login", "", loginBody(consoleAdmin, consolePassword)))
	if li2.CSRFToken == li.CSRFToken {
		t.Error("two sessions share a CSRF token")
	}
	c2.MustHeader(403, "POST", "/v1/reload", csrf(li.CSRFToken), nil)

	// Logout needs the token too; then the cookie is worthless.
	c.MustHeader(403, "POST", "/v1/logout", csrf("wrong"), nil)
	lo := c.MustHeader(204, "POST", "/v1/logout", csrf(li.CSRFToken), nil)
	if ck := sessionCookie(t, lo); ck.MaxAge >= 0 {
		t.Errorf("logout cookie: %+v", ck)
	}
	c.Must(401, "GET", "/v1/me", "", nil)
	replay := apitest.New(t, as.base, nil)
	hdr := csrf(li.CSRFToken)
	hdr.Set("Cookie", api.SessionCookie+"="+ck.Value)
	replay.MustHeader(401, "POST", "/v1/reload", hdr, nil)
	c.MustHeader(204, "POST", "/v1/logout", nil, nil) // nothing to end

	// The admin's password changed in the file (cloudftpd admin
	// passwd): the other session ends; a login with the new one works;
	// the admin deleted: that session ends too.
	c2.Must(200, "GET", "/v1/me", "", nil)
	editAdmins := func(edit func(*api.AdminsFile) error) {
		t.Helper()
		af, err := api.LoadAdmins(as.adminsFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := edit(af); err != nil {
			t.Fatal(err)
		}
		if err := af.Save(as.adminsFile); err != nil {
			t.Fatal(err)
		}
	}
	editAdmins(func(f *api.AdminsFile) error { return f.SetPassword(consoleAdmin, "changed-secret") })
	c2.Must(401, "GET", "/v1/me", "", nil)
	c2.Must(401, "POST", "/v1/login", "", loginBody(consoleAdmin, consolePassword))
	c2.Must(200, "POST", "/v1/login", "", loginBody(consoleAdmin, "changed-secret"))
	c2.Must(200, "GET", "/v1/me", "", nil)
	editAdmins(func(f *api.AdminsFile) error { return f.Delete(consoleAdmin) })
	c2.Must(401, "GET", "/v1/me", "", nil)

	// The audit ring, newest first; a read token may see it.
	bad.Must(400, "GET", "/v1/audit?limit=0", as.read, nil)
	bad.Must(400, "GET", "/v1/audit?limit=many", as.read, nil)
	type entry struct {
		Actor, Method, Path, Result, Reason string
		Status                              int
	}
	audit := decode[struct{ Events []entry }](t, c.Must(200, "GET", "/v1/audit?limit=500", as.read, nil)).Events
	var got []string
	for _, e := range audit {
		got = append(got, fmt.Sprintf("%s %s %s %d", e.Actor, e.Method, e.Path, e.Status))
	}
	slices.Reverse(got)
	want := []string{
		" POST /v1/login 400", " POST /v1/login 400", " POST /v1/login 400",
		"root POST /v1/login 401", "nobody POST /v1/login 401", "root POST /v1/login 200",
		"root POST /v1/bans 403", "root POST /v1/bans 403", "root POST /v1/bans 403", "root POST /v1/bans 201",
		"ops DELETE /v1/bans/203.0.113.9 204",
		"root POST /v1/login 200", "root POST /v1/reload 403",
		"root POST /v1/login 401", "root POST /v1/login 200",
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit ring:\n got %q\nwant %q", got, want)
	}
	if len(audit) > 1 && (audit[len(audit)-1].Result != "failed" || audit[len(audit)-1].Reason == "" || audit[0].Result != "ok" ||
		audit[1].Reason != "wrong admin name or password") {
		t.Errorf("audit entries: first %+v, last %+v", audit[len(audit)-1], audit[0])
	}
	if one := decode[struct{ Events []entry }](t, c.Must(200, "GET", "/v1/audit?limit=1", as.read, nil)).Events; len(one) != 1 || one[0].Path != "/v1/login" || one[0].Status != 200 {
		t.Errorf("limit=1: %+v", one)
	}

	// The same events reach the audit sink.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for _, e := range readAudit(t, as.audit) {
			if e.Type == events.AdminAction {
				n++
			}
		}
		if n >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d admin.action events in the audit sink, want %d", n, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAPILoginFailuresBan: failed console logins are scored like FTP
// logins (a wrong password 2 points, an unknown name 3) and the address
// is banned: its next connection to the API is closed at accept.
func TestAPILoginFailuresBan(t *testing.T) {
	as := startAPIServer(t, "\n[defender]\nallow = []\n")
	c := apitest.New(t, as.base, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}})
	for range 2 {
		c.Must(401, "POST", "/v1/login", "", loginBody("nobody", "guess"))
	}
	for range 2 {
		c.Must(401, "POST", "/v1/login", "", loginBody(consoleAdmin, "guess"))
	}
	if _, err := c.Do("POST", "/v1/login", "", loginBody(consoleAdmin, consolePassword)); err == nil {
		t.Fatal("a banned address still reaches the API")
	}
	if logs := as.logs.String(); !strings.Contains(logs, "defender: banned") || !strings.Contains(logs, "unknown_user x2") ||
		!strings.Contains(logs, "login_failed x2") {
		t.Errorf("no ban for the failed logins in the log:\n%s", logs)
	}
}

// TestAPIConsoleCookieSecure: over HTTPS the session cookie is Secure.
func TestAPIConsoleCookieSecure(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	if err := certs.SelfSigned([]string{"127.0.0.1"}, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	as := startAPIServer(t, fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", cert, key))
	pemBytes, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c := browser(t, as.base, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	r := c.Must(200, "POST", "/v1/login", "", loginBody(consoleAdmin, consolePassword))
	if ck := sessionCookie(t, r); !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie over HTTPS: %+v", ck)
	}
	c.Must(200, "GET", "/v1/me", "", nil)
}

// TestAPIRefusals: every route refuses a request without credentials
// (401), every change refuses a read token and a console session
// without its CSRF token (403), and none of those refusals changed
// anything.
func TestAPIRefusals(t *testing.T) {
	as := startAPIServer(t, "")
	c := apitest.New(t, as.base, nil)
	b := browser(t, as.base, nil)
	b.Must(200, "POST", "/v1/login", "", loginBody(consoleAdmin, consolePassword))
	for _, r := range []struct {
		method, path, body string
	}{
		{"GET", "/v1/me", ""},
		{"GET", "/v1/status", ""},
		{"GET", "/v1/sessions", ""},
		{"DELETE", "/v1/sessions/0123", ""},
		{"GET", "/v1/transfers", ""},
		{"GET", "/v1/passive", ""},
		{"GET", "/v1/doctor", ""},
		{"GET", "/v1/audit", ""},
		{"GET", "/v1/bans", ""},
		{"POST", "/v1/bans", `{"prefix":"203.0.113.1"}`},
		{"DELETE", "/v1/bans/203.0.113.1", ""},
		{"DELETE", "/v1/bans/203.0.113.0/24", ""},
		{"POST", "/v1/reload", ""},
		{"GET", "/v1/users", ""},
		{"POST", "/v1/users", `{"name":"eve","password":"eve-secret"}`},
		{"GET", "/v1/users/alice", ""},
		{"PATCH", "/v1/users/alice", `{"disabled":true}`},
		{"DELETE", "/v1/users/alice", ""},
		{"POST", "/v1/users/alice/password", `{"password":"stolen"}`},
	} {
		var body []byte
		if r.body != "" {
			body = []byte(r.body)
		}
		what := r.method + " " + r.path
		if e := decode[apiError](t, c.Must(401, r.method, r.path, "", body)); e.Code != "unauthorized" {
			t.Errorf("%s without credentials: %+v", what, e)
		}
		if r.method == "GET" {
			continue
		}
		if e := decode[apiError](t, c.Must(403, r.method, r.path, as.read, body)); e.Code != "forbidden" {
			t.Errorf("%s with a read token: %+v", what, e)
		}
		if e := decode[apiError](t, b.MustHeader(403, r.method, r.path, nil, body)); e.Code != "csrf" {
			t.Errorf("%s from the console without CSRF token: %+v", what, e)
		}
	}
	if err := canLogin(as.testServer, "alice", "alice-secret"); err != nil {
		t.Errorf("alice after the refusals: %v", err)
	}
	if bans := decode[struct{ Bans []any }](t, c.Must(200, "GET", "/v1/bans", as.read, nil)).Bans; len(bans) != 0 {
		t.Errorf("bans after the refusals: %v", bans)
	}
	c.Must(404, "GET", "/v1/users/eve", as.read, nil)

	// The control socket needs no token (its permissions are the
	// access control), and its changes are in the same audit ring.
	cc := &control.Client{SocketPath: as.cfg.ControlSocket()}
	var me meAnswer
	if err := cc.Call(t.Context(), "GET", "/v1/me", nil, 200, &me); err != nil || me.Name != api.LocalActor || me.Scope != "admin" {
		t.Errorf("me on the socket: %+v, %v", me, err)
	}
	if err := cc.Call(t.Context(), "POST", "/v1/reload", nil, 200, nil); err != nil {
		t.Fatalf("reload on the socket: %v", err)
	}
	last := decode[struct {
		Events []struct{ Actor, Path string }
	}](t, c.Must(200, "GET", "/v1/audit?limit=1", as.read, nil)).Events
	if len(last) != 1 || last[0].Actor != api.LocalActor || last[0].Path != "/v1/reload" {
		t.Errorf("the socket's reload in the audit ring: %+v", last)
	}
}
