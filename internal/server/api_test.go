package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/api/apitest"
	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// apiServer is a server with the operations API on, started from a
// config file on disk (so that POST /v1/reload has one to re-read).
type apiServer struct {
	*testServer
	cfgFile, cfgText string
	audit            string
	base             string // http(s)://host:port of the API
	admin, read      string // tokens
	adminsFile       string // console accounts: consoleAdmin, consolePassword
}

// The console account startAPIServer makes.
const (
	consoleAdmin    = "root"
	consolePassword = "console-secret"
)

// startAPIServer writes a config with [api] (and extra TOML appended),
// a users file and a tokens file with an admin and a read token, and
// starts the server.
func startAPIServer(t *testing.T, extra string) *apiServer {
	t.Helper()
	return startAPIServerWith(t, extra, nil, nil)
}

// startAPIServerWith is startAPIServer with the config text changed by
// edit before it is written, and the server's options by opts (nil:
// unchanged).
func startAPIServerWith(t *testing.T, extra string, edit func(string) string, opts func(*server.Options)) *apiServer {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "files")
	usersFile := filepath.Join(dir, "users.toml")
	tokensFile := filepath.Join(dir, "api-tokens.toml")
	audit := filepath.Join(dir, "audit.jsonl")
	uf := &auth.UsersFile{}
	for _, u := range defaultUsers {
		p, _ := auth.ParsePermissions(u.perms)
		if err := uf.Add(u.name, hashFor(t, u.password), u.home, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := uf.SetLimits("bob", func(l *auth.LimitsEntry) { l.MaxSessions = 2; l.AllowedNetworks = []string{"127.0.0.0/8"} }); err != nil {
		t.Fatal(err)
	}
	if err := uf.Save(usersFile); err != nil {
		t.Fatal(err)
	}
	tf := &api.TokensFile{}
	admin, err := tf.Add("ops", api.ScopeAdmin, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	read, err := tf.Add("grafana", api.ScopeRead, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.Save(tokensFile); err != nil {
		t.Fatal(err)
	}
	adminsFile := filepath.Join(dir, "api-admins.toml")
	af := &api.AdminsFile{}
	if err := af.Add(consoleAdmin, consolePassword, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := af.Save(adminsFile); err != nil {
		t.Fatal(err)
	}
	cfgText := fmt.Sprintf(`
[server]
idle_timeout = "30s"
data_timeout = "5s"
login_failure_delay = "10ms"
state_dir = %q

[[listener]]
address = "127.0.0.1:0"
# slow enough that a download is seen in progress
download_rate = "512KiB"

[storage]
backend = "local"
root = %q

[auth]
users_file = %q

[[events.sink]]
name = "audit"
kind = "audit"
path = %q

[api]
enabled = true
address = "127.0.0.1:0"
tokens_file = %q
%s
`, filepath.Join(dir, "state"), root, usersFile, audit, tokensFile, extra)
	if edit != nil {
		cfgText = edit(cfgText)
	}
	cfgFile := filepath.Join(dir, "cloudftpd.toml")
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := &clienttest.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	so := server.Options{Logger: logger, Version: "v9.9.9-test"}
	if opts != nil {
		opts(&so)
	}
	srv, err := server.New(t.Context(), cfg, so)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	scheme := "http"
	if cfg.API.TLS() {
		scheme = "https"
	}
	ts := &testServer{t: t, srv: srv, cfg: cfg, Addr: srv.Addrs()[0].String(), Root: root, backend: localDisk,
		store: diskStore{root: root}, logs: logs}
	return &apiServer{testServer: ts, cfgFile: cfgFile, cfgText: cfgText, audit: audit,
		base: scheme + "://" + srv.APIAddr().String(), admin: admin, read: read, adminsFile: adminsFile}
}

func decode[T any](t *testing.T, r *apitest.Response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("%s: %v", r.Body, err)
	}
	return v
}

type apiError struct {
	Error, Code string
}

type apiSession struct {
	ID, User, Client, Listener, Command string
	TLS                                 bool
	IdleSeconds                         float64 `json:"idle_seconds"`
	BytesDownloaded                     int64   `json:"bytes_downloaded"`
	Transfer                            *apiTransfer
}

type apiTransfer struct {
	Session, User, Command, Direction, Path string
	Bytes                                   int64
	Size                                    *int64
	Rate                                    float64  `json:"rate_bytes_per_second"`
	ETA                                     *float64 `json:"eta_seconds"`
}

func (as *apiServer) sessions(c *apitest.Client) []apiSession {
	as.t.Helper()
	return decode[struct{ Sessions []apiSession }](as.t, c.Must(200, "GET", "/v1/sessions", as.read, nil)).Sessions
}

// TestAPI drives every endpoint of the operations API against a real
// server with a real FTP client (jlaffaye) logged in, each request and
// response validated against openapi.yaml: the refusals (no token, a
// wrong one, a read token changing something, an unknown session or
// user), the session and its download in progress, ending it, bans,
// users, reload, and the audit trail of every change.
func TestAPI(t *testing.T) {
	as := startAPIServer(t, "")
	c := apitest.New(t, as.base, nil)

	// The document is public and is the embedded one.
	if r := c.Must(200, "GET", "/v1/openapi.yaml", "", nil); !bytes.Equal(r.Body, api.OpenAPI) {
		t.Error("/v1/openapi.yaml is not the embedded document")
	}

	// Refusals: no token, a wrong one, a token of another server.
	for _, tok := range []string{"", "cftpd_wrong", "not-even-a-token"} {
		r := c.Must(401, "GET", "/v1/status", tok, nil)
		if e := decode[apiError](t, r); e.Code != "unauthorized" || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("token %q: %s, WWW-Authenticate %q", tok, r.Body, r.Header.Get("WWW-Authenticate"))
		}
	}
	other := &api.TokensFile{}
	stranger, _ := other.Add("ops", api.ScopeAdmin, time.Now())
	c.Must(401, "DELETE", "/v1/sessions/x", stranger, nil)

	// Status.
	st := decode[struct {
		Version    string
		ConfigFile string  `json:"config_file"`
		Uptime     float64 `json:"uptime_seconds"`
		Listeners  []struct{ Address, Bound, TLS string }
	}](t, c.Must(200, "GET", "/v1/status", as.read, nil))
	if st.Version != "v9.9.9-test" || st.ConfigFile != as.cfgFile || len(st.Listeners) != 1 ||
		st.Listeners[0].Bound != as.Addr || st.Listeners[0].Address != "127.0.0.1:0" || st.Listeners[0].TLS != "off" || st.Uptime < 0 {
		t.Errorf("status: %+v (want bound %s)", st, as.Addr)
	}

	// A real session, idle after login; then a download in progress.
	if got := as.sessions(c); len(got) != 0 {
		t.Fatalf("sessions before any client: %+v", got)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 128<<10) // 2 MiB: 4 s at 512KiB/s
	as.write("alice/big.bin", data)
	fc, _ := dialJlaffaye(t, as.testServer, "alice", "alice-secret")
	ss := as.sessions(c)
	if len(ss) != 1 || ss[0].User != "alice" || ss[0].Client != "127.0.0.1" || ss[0].Listener != "127.0.0.1:0" ||
		ss[0].TLS || ss[0].Command == "" || ss[0].Transfer != nil {
		t.Fatalf("sessions with alice logged in: %+v", ss)
	}
	if got := decode[struct{ Transfers []apiTransfer }](t, c.Must(200, "GET", "/v1/transfers", as.read, nil)).Transfers; len(got) != 0 {
		t.Fatalf("transfers with none running: %+v", got)
	}
	rd, err := fc.Retr("big.bin")
	check(t, "RETR", err)
	if _, err := io.ReadFull(rd, make([]byte, 256<<10)); err != nil {
		t.Fatalf("reading the download: %v", err)
	}
	var xf []apiTransfer
	deadline := time.Now().Add(5 * time.Second)
	for {
		xf = decode[struct{ Transfers []apiTransfer }](t, c.Must(200, "GET", "/v1/transfers", as.read, nil)).Transfers
		if len(xf) == 1 && xf[0].Bytes > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(xf) != 1 {
		t.Fatalf("transfers during the download: %+v", xf)
	}
	x := xf[0]
	if x.Session != ss[0].ID || x.User != "alice" || x.Command != "RETR" || x.Direction != "download" || x.Path != "/big.bin" ||
		x.Size == nil || *x.Size != int64(len(data)) || x.Bytes <= 0 || x.Bytes >= int64(len(data)) || x.Rate <= 0 || x.ETA == nil || *x.ETA <= 0 {
		t.Errorf("transfer in progress: %+v (size %v, eta %v)", x, x.Size, x.ETA)
	}
	ss = as.sessions(c)
	if len(ss) != 1 || ss[0].Transfer == nil || ss[0].Transfer.Path != "/big.bin" || ss[0].Command != "RETR" || ss[0].BytesDownloaded <= 0 {
		t.Errorf("session during the download: %+v", ss)
	}

	// Ending it: a read token may not, an unknown id is 404, the admin
	// token ends it and the client's download breaks off.
	if e := decode[apiError](t, c.Must(403, "DELETE", "/v1/sessions/"+ss[0].ID, as.read, nil)); e.Code != "forbidden" {
		t.Errorf("read token ending a session: %+v", e)
	}
	if len(as.sessions(c)) != 1 {
		t.Fatal("the session was ended by a read token")
	}
	if e := decode[apiError](t, c.Must(404, "DELETE", "/v1/sessions/0123456789", as.admin, nil)); e.Code != "no_session" {
		t.Errorf("unknown session: %+v", e)
	}
	ended := decode[apiSession](t, c.Must(200, "DELETE", "/v1/sessions/"+ss[0].ID, as.admin, nil))
	if ended.ID != ss[0].ID || ended.User != "alice" {
		t.Errorf("ended session: %+v", ended)
	}
	if _, err := io.ReadAll(rd); err == nil {
		// The data connection may deliver what was in flight, but the
		// download cannot complete: the final reply never comes.
		if err := rd.Close(); err == nil {
			t.Error("the download completed after its session was ended")
		}
	}
	deadline = time.Now().Add(5 * time.Second)
	for len(as.sessions(c)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("session still listed after it was ended: %+v", as.sessions(c))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Bans, through the control socket's own handler.
	if b := decode[struct{ Bans []any }](t, c.Must(200, "GET", "/v1/bans", as.read, nil)); len(b.Bans) != 0 {
		t.Errorf("bans at start: %+v", b)
	}
	c.Must(403, "POST", "/v1/bans", as.read, []byte(`{"prefix":"203.0.113.7"}`))
	c.Must(400, "POST", "/v1/bans", as.admin, []byte(`{"prefix":"not-an-address"}`))
	ban := decode[struct{ Prefix, Reason string }](t, c.Must(201, "POST", "/v1/bans", as.admin,
		[]byte(`{"prefix":"203.0.113.7","duration":"1h","reason":"guessing"}`)))
	if ban.Prefix != "203.0.113.7/32" || ban.Reason != "guessing" {
		t.Errorf("ban: %+v", ban)
	}
	c.Must(201, "POST", "/v1/bans", as.admin, []byte(`{"prefix":"198.51.100.0/24","duration":"forever"}`))
	bans := decode[struct{ Bans []struct{ Prefix string } }](t, c.Must(200, "GET", "/v1/bans", as.read, nil)).Bans
	if len(bans) != 2 {
		t.Errorf("bans: %+v", bans)
	}
	c.Must(403, "DELETE", "/v1/bans/203.0.113.7", as.read, nil)
	c.Must(204, "DELETE", "/v1/bans/203.0.113.7", as.admin, nil)
	if e := decode[apiError](t, c.Must(404, "DELETE", "/v1/bans/203.0.113.7", as.admin, nil)); e.Code != "not_banned" {
		t.Errorf("lifting a lifted ban: %+v", e)
	}
	c.Must(204, "DELETE", "/v1/bans/198.51.100.0/24", as.admin, nil)

	// Users, from the running users file.
	users := decode[struct {
		Users []struct {
			Name, Home  string
			Permissions []string
			Limits      struct {
				MaxSessions     int      `json:"max_sessions"`
				AllowedNetworks []string `json:"allowed_networks"`
			}
		}
	}](t, c.Must(200, "GET", "/v1/users", as.read, nil)).Users
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, []string{"alice", "bob", "drop", "reader"}) {
		t.Errorf("users: %v", names)
	}
	bob := decode[struct {
		Name   string
		Limits struct {
			MaxSessions     int      `json:"max_sessions"`
			AllowedNetworks []string `json:"allowed_networks"`
		}
	}](t, c.Must(200, "GET", "/v1/users/bob", as.read, nil))
	if bob.Name != "bob" || bob.Limits.MaxSessions != 2 || !slices.Equal(bob.Limits.AllowedNetworks, []string{"127.0.0.0/8"}) {
		t.Errorf("bob: %+v", bob)
	}
	if e := decode[apiError](t, c.Must(404, "GET", "/v1/users/nobody", as.read, nil)); e.Code != "unknown_user" {
		t.Errorf("unknown user: %+v", e)
	}

	// Reload: the re-read file's banner greets the next client; a broken
	// file changes nothing and says why.
	c.Must(403, "POST", "/v1/reload", as.read, nil)
	if err := os.WriteFile(as.cfgFile, []byte(strings.Replace(as.cfgText, "[server]\n", "[server]\nbanner = \"reloaded through the API\"\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	rl := decode[struct {
		File     string
		Reloaded bool
	}](t, c.Must(200, "POST", "/v1/reload", as.admin, nil))
	if rl.File != as.cfgFile || !rl.Reloaded {
		t.Errorf("reload: %+v", rl)
	}
	if code, msg := greeting(t, as.Addr); code != 220 || !strings.Contains(msg, "reloaded through the API") {
		t.Errorf("greeting after reload: %d %q", code, msg)
	}
	if err := os.WriteFile(as.cfgFile, []byte(as.cfgText+"\n[server]\nbanner = \"twice\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e := decode[apiError](t, c.Must(422, "POST", "/v1/reload", as.admin, nil)); e.Code != "reload_failed" || !strings.Contains(e.Error, "server") {
		t.Errorf("reload of a broken file: %+v", e)
	}
	if code, msg := greeting(t, as.Addr); code != 220 || !strings.Contains(msg, "reloaded through the API") {
		t.Errorf("greeting after a failed reload: %d %q", code, msg)
	}

	// The audit trail: every change request, allowed or refused, with
	// the token's name; reads are not recorded.
	type action struct {
		actor, method, path string
		code                int
	}
	want := []action{
		{"grafana", "DELETE", "/v1/sessions/" + ss[0].ID, 403},
		{"ops", "DELETE", "/v1/sessions/0123456789", 404},
		{"ops", "DELETE", "/v1/sessions/" + ss[0].ID, 200},
		{"grafana", "POST", "/v1/bans", 403},
		{"ops", "POST", "/v1/bans", 400},
		{"ops", "POST", "/v1/bans", 201},
		{"ops", "POST", "/v1/bans", 201},
		{"grafana", "DELETE", "/v1/bans/203.0.113.7", 403},
		{"ops", "DELETE", "/v1/bans/203.0.113.7", 204},
		{"ops", "DELETE", "/v1/bans/203.0.113.7", 404},
		{"ops", "DELETE", "/v1/bans/198.51.100.0/24", 204},
		{"grafana", "POST", "/v1/reload", 403},
		{"ops", "POST", "/v1/reload", 200},
		{"ops", "POST", "/v1/reload", 422},
	}
	var got []action
	var admin []events.Event
	deadline = time.Now().Add(10 * time.Second)
	for {
		got, admin = nil, nil
		for _, e := range readAudit(t, as.audit) {
			if e.Type == events.AdminAction {
				admin = append(admin, e)
				got = append(got, action{e.Actor, e.Method, e.Path, e.Code})
			}
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Equal(got, want) {
		t.Errorf("admin.action events:\n got %v\nwant %v", got, want)
	}
	for _, e := range admin {
		wantResult := events.ResultOK
		if e.Code >= 400 {
			wantResult = events.ResultFailed
		}
		if e.Client != "127.0.0.1" || e.Result != wantResult || e.Code >= 400 && e.Reason == "" {
			t.Errorf("admin.action: %+v", e)
		}
	}
	if !strings.Contains(as.logs.String(), `msg="api: admin action" token=ops`) {
		t.Error("no audit log line")
	}

	// A tokens file broken by hand accepts no token, and says so.
	if err := os.WriteFile(as.cfg.APITokensFile(), []byte("[[token]]\nname = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e := decode[apiError](t, c.Must(503, "GET", "/v1/status", as.admin, nil)); e.Code != "unavailable" {
		t.Errorf("broken tokens file: %+v", e)
	}
}

// TestAPIAuthFailuresBan: requests with wrong tokens are scored by the
// defender like failed FTP logins, and the address is banned: its next
// connection to the API (and to FTP) is closed at accept.
func TestAPIAuthFailuresBan(t *testing.T) {
	as := startAPIServer(t, "\n[defender]\nallow = []\n") // loopback is allow-listed by default
	c := apitest.New(t, as.base, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}})
	c.Must(200, "GET", "/v1/status", as.read, nil)
	// 2 points each against a threshold of 10.
	for range 5 {
		c.Must(401, "GET", "/v1/sessions", "cftpd_guess", nil)
	}
	if _, err := c.Do("GET", "/v1/status", as.read, nil); err == nil {
		t.Fatal("a banned address still reaches the API")
	}
	if !strings.Contains(as.logs.String(), "defender: banned") || !strings.Contains(as.logs.String(), "api_auth_failed x5") {
		t.Errorf("no ban for api_auth_failed in the log")
	}
}

// TestAPITLS: with tls_cert and tls_key the API is HTTPS only, with the
// certificate given.
func TestAPITLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	if err := certs.SelfSigned([]string{"127.0.0.1"}, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	as := startAPIServer(t, fmt.Sprintf("tls_cert = %q\ntls_key = %q\n", cert, key))
	if !strings.HasPrefix(as.base, "https://") {
		t.Fatalf("base %s", as.base)
	}
	pemBytes, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c := apitest.New(t, as.base, &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}})
	c.Must(200, "GET", "/v1/status", as.read, nil)
	c.Must(401, "GET", "/v1/status", "", nil)
	// Not validated: the TLS layer answers a clear request, not the API.
	if r, err := http.Get("http://" + strings.TrimPrefix(as.base, "https://") + "/v1/openapi.yaml"); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Error("plain HTTP answered on the HTTPS API")
		}
	}
}
