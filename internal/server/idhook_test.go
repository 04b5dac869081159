package server_test

// Users from an HTTP identity hook, end to end: a real HTTP server plays
// the hook (checking every request's signature) and real FTP clients
// (jlaffaye/ftp, curl, raw sockets from chosen loopback addresses) log in
// through a running cloudftpd with auth.store = "http".

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
)

const hookSecret = "test-hook-secret-0123456789"

// identityHook is the test's hook: accounts by name, each with its
// password and answer; anything else is refused with 403. Requests with a
// bad signature are answered 400 (which cloudftpd must never cause).
type identityHook struct {
	t        *testing.T
	srv      *httptest.Server
	calls    atomic.Int64
	badSigs  atomic.Int64
	mu       sync.Mutex
	accounts map[string][2]string // name -> password, answer JSON
	requests []map[string]any
	// delay, when set, holds every answer that long (or until the
	// request is given up).
	delay time.Duration
}

func startHook(t *testing.T) *identityHook {
	h := &identityHook{t: t, accounts: map[string][2]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *identityHook) account(name, password, answer string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.accounts[name] = [2]string{password, answer}
}

func (h *identityHook) serve(w http.ResponseWriter, r *http.Request) {
	h.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	ts, err := strconv.ParseInt(r.Header.Get(delivery.HeaderTimestamp), 10, 64)
	want := "t=" + strconv.FormatInt(ts, 10) + ",v1=" + delivery.Signature([]byte(hookSecret), ts, body)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute || !hmac.Equal([]byte(r.Header.Get(delivery.HeaderSignature)), []byte(want)) {
		h.badSigs.Add(1)
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.requests = append(h.requests, req)
	acct, ok := h.accounts[req["username"].(string)]
	delay := h.delay
	h.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if !ok || req["password"] != acct[0] {
		http.Error(w, `{"message": "denied"}`, http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, acct[1])
}

// hookServer starts a defended cloudftpd (loopback clients are scored)
// whose users come from hook.
func hookServer(t *testing.T, hook *identityHook, mutate func(*config.HTTPHook)) *testServer {
	return defended(t, t.TempDir(), func(c *config.Config) {
		c.Auth.UsersFile = ""
		c.Auth.Store = config.StoreHTTP
		c.Auth.HTTP = config.HTTPHook{URL: hook.srv.URL + "/login", Secret: hookSecret, ServerID: "s-test", HomeDirectoryRoot: "/bucket"}
		if mutate != nil {
			mutate(&c.Auth.HTTP)
		}
	})
}

// TestHookLogin: the hook's home, permissions and limits are what the
// session gets: a read-only user in a shared home lists and downloads its
// files and cannot upload (550); a writer is held to its max_file_size
// (552) and its uploads land in its home on disk. The hook saw every
// request field, signed.
func TestHookLogin(t *testing.T) {
	hook := startHook(t)
	hook.account("reader", "r-pw", `{"home": "shared/reports", "permissions": ["read"]}`)
	hook.account("writer", "w-pw", `{"home": "partners/acme", "permissions": ["all"], "max_file_size": 10}`)
	ts := hookServer(t, hook, nil)
	if err := os.MkdirAll(filepath.Join(ts.Root, "shared/reports"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts.Root, "shared/reports/q1.csv"), []byte("a,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	c, conv := dialJlaffaye(t, ts, "reader", "r-pw")
	names, err := c.NameList("/")
	check(t, "NLST", err)
	if len(names) != 1 || !strings.HasSuffix(names[0], "q1.csv") {
		t.Errorf("reader sees %v, want the shared home's q1.csv", names)
	}
	if got := retr(t, c, "q1.csv", 0); string(got) != "a,b\n" {
		t.Errorf("RETR %q", got)
	}
	err = c.Stor("new.csv", strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("upload by a read-only user: %v, want 550\n%s", err, conv)
	}

	w, _ := dialJlaffaye(t, ts, "writer", "w-pw")
	check(t, "small STOR", w.Stor("ok.txt", strings.NewReader("12345")))
	err = w.Stor("big.txt", strings.NewReader(strings.Repeat("x", 100)))
	if err == nil || !strings.Contains(err.Error(), "552") {
		t.Errorf("upload over max_file_size: %v, want 552", err)
	}
	if b, err := os.ReadFile(filepath.Join(ts.Root, "partners/acme/ok.txt")); err != nil || string(b) != "12345" {
		t.Errorf("the writer's upload is not in its home: %q %v", b, err)
	}

	if n := hook.badSigs.Load(); n != 0 {
		t.Errorf("%d requests with a bad signature", n)
	}
	hook.mu.Lock()
	req := hook.requests[0]
	hook.mu.Unlock()
	for k, v := range map[string]any{"username": "reader", "password": "r-pw", "protocol": "FTP", "server_id": "s-test", "serverId": "s-test",
		"source_ip": "127.0.0.1", "sourceIp": "127.0.0.1", "listener": "127.0.0.1:0"} {
		if req[k] != v {
			t.Errorf("request %s = %v, want %v", k, req[k], v)
		}
	}
}

// TestHookTransferFamilyAnswers: answers written for Transfer Family's
// custom identity provider (Role and PosixProfile ignored) log in to the
// home their HomeDirectory or single chroot mapping names, below
// home_directory_root; more than one mapping (virtual folders, not built
// yet) fails with 421 and a log line that says so. curl is the client.
func TestHookTransferFamilyAnswers(t *testing.T) {
	curl := clienttest.Need(t, "curl")
	hook := startHook(t)
	hook.account("alice", "a-pw", `{"Role": "arn:aws:iam::123456789012:role/ftp", "PosixProfile": {"Uid": 1000, "Gid": 1000},
		"HomeDirectoryType": "LOGICAL", "HomeDirectoryDetails": "[{\"Entry\": \"/\", \"Target\": \"/bucket/homes/alice\"}]"}`)
	hook.account("bob", "b-pw", `{"Role": "arn:aws:iam::123456789012:role/ftp", "HomeDirectoryType": "PATH", "HomeDirectory": "/bucket/homes/bob"}`)
	hook.account("carol", "c-pw", `{"Role": "r", "HomeDirectoryType": "LOGICAL", "HomeDirectoryDetails": [{"Entry": "/in", "Target": "/bucket/in/carol"}, {"Entry": "/out", "Target": "/bucket/out/carol"}]}`)
	ts := hookServer(t, hook, nil)

	for _, u := range []struct{ name, pw string }{{"alice", "a-pw"}, {"bob", "b-pw"}} {
		src := filepath.Join(t.TempDir(), "up.txt")
		os.WriteFile(src, []byte("from "+u.name), 0o644)
		out, err := exec.Command(curl, "-sS", "--max-time", "20", "-T", src, "ftp://"+u.name+":"+u.pw+"@"+ts.Addr+"/up.txt").CombinedOutput()
		if err != nil {
			t.Fatalf("curl upload as %s: %v\n%s", u.name, err, out)
		}
		if b, err := os.ReadFile(filepath.Join(ts.Root, "homes", u.name, "up.txt")); err != nil || string(b) != "from "+u.name {
			t.Errorf("%s's upload is not in homes/%s: %q %v", u.name, u.name, b, err)
		}
	}

	rc := dialRaw(t, ts.Addr)
	rc.must(331, "USER carol")
	if msg := rc.must(421, "PASS c-pw"); msg != "Login service unavailable, try again later." {
		t.Errorf("carol: %q", msg)
	}
	if !logLineWith(ts.logs.String(), "level=ERROR", "user=carol", "virtual folders are not supported yet") {
		t.Errorf("no log line says why carol cannot log in:\n%s", ts.logs)
	}
}

// TestHookRefusalScored: the hook's refusal is a wrong password: 530
// after the failure delay, logged, and scored until the defender bans the
// address.
func TestHookRefusalScored(t *testing.T) {
	hook := startHook(t)
	hook.account("alice", "a-pw", `{"home": "alice"}`)
	ts := hookServer(t, hook, nil)
	const guesser = "127.0.0.5"
	attempts := 0
	for attempts < 5 {
		rc := dialRawFrom(t, guesser, ts.Addr)
		for attempts < 5 {
			rc.must(331, "USER alice")
			rc.tp.PrintfLine("PASS guess-%d", attempts)
			attempts++
			code, msg, err := rc.tp.ReadResponse(0)
			switch {
			case err != nil && attempts == 5:
				// closed by the ban
			case code == 530 && msg == "Login incorrect.":
				continue
			case code == 421 && attempts == 3:
				// max_login_failures ends the session
			default:
				t.Fatalf("refusal %d: %d %q %v, want 530", attempts, code, msg, err)
			}
			break
		}
	}
	waitFor(t, func() bool { return strings.Contains(ts.logs.String(), `msg="defender: banned"`) })
	if !logLineWith(ts.logs.String(), `msg="defender: banned"`, "prefix="+guesser+"/32", "login_failed x5") {
		t.Errorf("the ban does not count 5 failed logins:\n%s", ts.logs)
	}
	if greeted(t, guesser, ts.Addr) {
		t.Error("the banned address is still greeted")
	}
}

// TestHookFailures: a hook that is down, answers 500, or is slower than
// its timeout gives 421 "Login service unavailable" within about the
// timeout, an ERROR line naming the cause, and no score: ten such logins
// from one address do not ban it, and it logs in once the hook is back.
func TestHookFailures(t *testing.T) {
	hook := startHook(t)
	hook.account("alice", "a-pw", `{"home": "alice"}`)
	const timeout = 500 * time.Millisecond
	var mode atomic.Value // "down", "500", "slow", "ok"
	mode.Store("down")
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the whole body first lets net/http notice a client
		// that gives up (the request's context ends).
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		switch mode.Load() {
		case "500":
			http.Error(w, "database is down", http.StatusInternalServerError)
			return
		case "slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		hook.serve(w, r)
	}))
	t.Cleanup(front.Close)
	// "down" is a port nothing listens on any more.
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	ts := hookServer(t, hook, func(h *config.HTTPHook) {
		h.URL = goneURL + "/login"
		h.Timeout = config.Duration(timeout)
		zero := config.Duration(0)
		h.CacheTTL = &zero
	})
	const client = "127.0.0.6"
	tryLogin := func(phase string) time.Duration {
		t.Helper()
		rc := dialRawFrom(t, client, ts.Addr)
		rc.must(331, "USER alice")
		start := time.Now()
		code, msg := rc.cmd("PASS a-pw")
		took := time.Since(start)
		if code != 421 || msg != "Login service unavailable, try again later." {
			t.Fatalf("%s: %d %q, want 421 Login service unavailable", phase, code, msg)
		}
		return took
	}
	for range 4 {
		tryLogin("hook down")
	}
	if !logLineWith(ts.logs.String(), "level=ERROR", `msg="login error: the user store failed"`, "user=alice", "connection refused") {
		t.Errorf("no ERROR line for a hook that is down:\n%s", ts.logs)
	}

	// The same server, now pointed at a hook that answers 500 or is slow.
	ts.reload(func(c *config.Config) { c.Auth.HTTP.URL = front.URL + "/login" })
	mode.Store("500")
	for range 3 {
		tryLogin("hook answers 500")
	}
	if !logLineWith(ts.logs.String(), "level=ERROR", "500 Internal Server Error", "database is down") {
		t.Errorf("no ERROR line for a 500:\n%s", ts.logs)
	}
	mode.Store("slow")
	for range 3 {
		if took := tryLogin("slow hook"); took < timeout || took > timeout+time.Second {
			t.Errorf("slow hook answered after %v, want about the %v timeout", took, timeout)
		}
	}
	if !logLineWith(ts.logs.String(), "level=ERROR", "no answer within 500ms") {
		t.Errorf("no ERROR line for a slow hook:\n%s", ts.logs)
	}
	// Ten failures, no score: not banned, and logs in now the hook works.
	if strings.Contains(ts.logs.String(), "defender: banned") {
		t.Fatalf("hook failures were scored:\n%s", ts.logs)
	}
	mode.Store("ok")
	rc := dialRawFrom(t, client, ts.Addr)
	rc.login("alice", "a-pw")
}

// TestHookCache: two logins within cache_ttl call the hook once; with
// jlaffaye/ftp as the client.
func TestHookCache(t *testing.T) {
	hook := startHook(t)
	hook.account("alice", "a-pw", `{"home": "alice", "permissions": ["all"]}`)
	ts := hookServer(t, hook, nil) // cache_ttl defaults to 60s
	for range 2 {
		c, _ := dialJlaffaye(t, ts, "alice", "a-pw")
		check(t, "STOR", c.Stor("f.txt", bytes.NewReader([]byte("x"))))
		c.Quit()
	}
	if n := hook.calls.Load(); n != 1 {
		t.Errorf("%d hook calls for two logins within cache_ttl, want 1", n)
	}
	// A wrong password is never answered from the cache.
	_, err := ftpLogin(ts, "alice", "wrong")
	if err == nil || !strings.Contains(err.Error(), "530") {
		t.Errorf("wrong password: %v, want 530", err)
	}
	if n := hook.calls.Load(); n != 2 {
		t.Errorf("%d hook calls, want 2", n)
	}
}

// ftpLogin dials and logs in with jlaffaye/ftp, returning the login's
// error instead of failing the test.
func ftpLogin(ts *testServer, user, pass string) (*ftp.ServerConn, error) {
	c, err := ftp.Dial(ts.Addr, ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, pass); err != nil {
		c.Quit()
		return nil, err
	}
	return c, nil
}
