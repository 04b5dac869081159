package idhook

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
)

const testSecret = "0123456789abcdef-secret"

// fakeHook is an identity hook over real HTTP: it checks the request's
// signature and answers with what the test sets.
type fakeHook struct {
	t      *testing.T
	calls  atomic.Int64
	mu     sync.Mutex
	last   map[string]any
	header http.Header
	answer func(req map[string]any) (int, string)
}

func (f *fakeHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	ts, _ := strconv.ParseInt(r.Header.Get(delivery.HeaderTimestamp), 10, 64)
	want := "t=" + strconv.FormatInt(ts, 10) + ",v1=" + delivery.Signature([]byte(testSecret), ts, body)
	if r.Method != http.MethodPost || !hmac.Equal([]byte(r.Header.Get(delivery.HeaderSignature)), []byte(want)) {
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.last, f.header = req, r.Header.Clone()
	f.mu.Unlock()
	code, answer := f.answer(req)
	w.WriteHeader(code)
	io.WriteString(w, answer)
}

func newFake(t *testing.T, answer func(req map[string]any) (int, string)) (*fakeHook, *httptest.Server) {
	f := &fakeHook{t: t, answer: answer}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func hookFor(t *testing.T, url string, mutate func(*Options)) *Hook {
	t.Helper()
	o := Options{URL: url, Timeout: 2 * time.Second, CacheTTL: time.Minute, Secret: testSecret, BearerToken: "tok",
		ServerID: "s-test", DefaultPermissions: auth.PermList | auth.PermDownload, HomeDirectoryRoot: "/bucket"}
	if mutate != nil {
		mutate(&o)
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func loginCtx(t *testing.T, tls bool) context.Context {
	return auth.WithLoginInfo(t.Context(), auth.LoginInfo{TLS: tls, Client: netip.MustParseAddr("203.0.113.7"), Listener: "0.0.0.0:21"})
}

// TestRequest: the hook gets every field, in both naming styles, signed,
// with the bearer token.
func TestRequest(t *testing.T) {
	f, srv := newFake(t, func(map[string]any) (int, string) { return 200, `{"home": "h"}` })
	h := hookFor(t, srv.URL, nil)
	if _, err := h.Authenticate(loginCtx(t, true), "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"username": "alice", "password": "pw", "protocol": "FTPS", "server_id": "s-test", "serverId": "s-test",
		"source_ip": "203.0.113.7", "sourceIp": "203.0.113.7", "listener": "0.0.0.0:21"}
	for k, v := range want {
		if f.last[k] != v {
			t.Errorf("request %s = %v, want %v", k, f.last[k], v)
		}
	}
	if len(f.last) != len(want) {
		t.Errorf("request %v has other fields", f.last)
	}
	if g := f.header.Get("Authorization"); g != "Bearer tok" {
		t.Errorf("Authorization %q", g)
	}
	// A clear control connection is FTP.
	h2 := hookFor(t, srv.URL, func(o *Options) { o.CacheTTL = 0 })
	h2.Authenticate(loginCtx(t, false), "alice", "pw")
	if f.last["protocol"] != "FTP" {
		t.Errorf("protocol %v, want FTP", f.last["protocol"])
	}
}

// TestOutcomes: which answers refuse (ErrBadCredentials, a 530) and which
// fail (any other error, a 421), and that a failure is quick.
func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int
		body   string
		refuse bool
		err    string
	}{
		{"403", 403, `{"message": "no"}`, true, ""},
		{"401", 401, ``, true, ""},
		{"204", 204, ``, true, ""},
		{"empty 200", 200, ``, true, ""},
		{"{}", 200, `{}`, true, ""},
		{"500", 500, `boom`, false, `500 Internal Server Error: "boom"`},
		{"502", 502, ``, false, "502"},
		{"404 is a wrong URL, not a refusal", 404, `not found`, false, "404"},
		{"redirect is not followed", 302, ``, false, "302"},
		{"unparseable", 200, `{"home": `, false, "not a JSON object"},
		{"bad key", 200, `{"quota": 5}`, false, `unknown key "quota"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newFake(t, func(map[string]any) (int, string) { return tc.code, tc.body })
			h := hookFor(t, srv.URL, nil)
			u, err := h.Authenticate(loginCtx(t, false), "alice", "pw")
			switch {
			case tc.refuse && !errors.Is(err, auth.ErrBadCredentials):
				t.Fatalf("got %+v, %v; want a refusal", u, err)
			case !tc.refuse && (err == nil || errors.Is(err, auth.ErrBadCredentials) || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %+v, %v; want a failure with %q", u, err, tc.err)
			}
		})
	}
}

// TestHookDown: a hook that refuses connections fails at once; one that
// does not answer fails after the timeout, not later.
func TestHookDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	h := hookFor(t, "http://"+addr+"/hook", nil)
	_, err = h.Authenticate(loginCtx(t, false), "alice", "pw")
	if err == nil || errors.Is(err, auth.ErrBadCredentials) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("hook down: %v", err)
	}

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	h = hookFor(t, slow.URL, func(o *Options) { o.Timeout = 300 * time.Millisecond })
	start := time.Now()
	_, err = h.Authenticate(loginCtx(t, false), "alice", "pw")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Errorf("slow hook: %v", err)
	}
	if took < 300*time.Millisecond || took > 2*time.Second {
		t.Errorf("slow hook failed after %v, want about the 300ms timeout", took)
	}
}

// TestCache: an accepted login is reused within the TTL for the same
// request only; refusals are not cached; the TTL ends reuse.
func TestCache(t *testing.T) {
	var refuse atomic.Bool
	f, srv := newFake(t, func(req map[string]any) (int, string) {
		if refuse.Load() || req["password"] != "pw" {
			return 403, ""
		}
		return 200, `{"home": "h", "permissions": ["all"]}`
	})
	h := hookFor(t, srv.URL, nil)
	now := time.Now()
	h.cache.now = func() time.Time { return now }
	ctx := loginCtx(t, false)
	for range 2 {
		u, err := h.Authenticate(ctx, "alice", "pw")
		if err != nil || u.Home != "h" {
			t.Fatal(u, err)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d hook calls for two logins within the TTL, want 1", n)
	}
	// Another password, another client or TLS: the hook is asked.
	h.Authenticate(ctx, "alice", "other")
	h.Authenticate(loginCtx(t, true), "alice", "pw")
	h.Authenticate(auth.WithLoginInfo(t.Context(), auth.LoginInfo{Client: netip.MustParseAddr("198.51.100.1")}), "alice", "pw")
	if n := f.calls.Load(); n != 4 {
		t.Errorf("%d hook calls, want 4: the cache must not answer a different request", n)
	}
	// Refusals are asked every time.
	for range 2 {
		if _, err := h.Authenticate(ctx, "alice", "wrong"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	if n := f.calls.Load(); n != 6 {
		t.Errorf("%d hook calls, want 6: refusals are not cached", n)
	}
	// After the TTL, the hook decides again (and now refuses).
	now = now.Add(time.Minute)
	refuse.Store(true)
	if _, err := h.Authenticate(ctx, "alice", "pw"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("after the TTL: %v, want the hook's refusal", err)
	}
	// cache_ttl = 0 caches nothing.
	refuse.Store(false)
	h0 := hookFor(t, srv.URL, func(o *Options) { o.CacheTTL = 0 })
	before := f.calls.Load()
	h0.Authenticate(ctx, "alice", "pw")
	h0.Authenticate(ctx, "alice", "pw")
	if n := f.calls.Load() - before; n != 2 || h0.cache.len() != 0 {
		t.Errorf("cache_ttl 0: %d calls, %d cached; want 2 and 0", n, h0.cache.len())
	}
}

// TestCacheBounded: the cache never holds more than its size.
func TestCacheBounded(t *testing.T) {
	c := newAnswerCache(time.Minute, 3)
	for i := range 10 {
		c.add(c.sum(Request{Username: "u" + strconv.Itoa(i)}), auth.User{})
	}
	if c.len() != 3 {
		t.Errorf("%d entries, want 3", c.len())
	}
	if _, ok := c.get(c.sum(Request{Username: "u9"})); !ok {
		t.Error("the newest entry was dropped")
	}
	if _, ok := c.get(c.sum(Request{Username: "u0"})); ok {
		t.Error("the oldest entry was kept")
	}
}

// TestAnonymousAndNames: anonymous names are answered locally when
// allowed; names no account can have are refused without a call.
func TestAnonymousAndNames(t *testing.T) {
	f, srv := newFake(t, func(map[string]any) (int, string) { return 200, `{"permissions": ["all"]}` })
	h := hookFor(t, srv.URL, func(o *Options) { o.Anonymous = true })
	u, err := h.Authenticate(loginCtx(t, false), "Anonymous", "me@example.com")
	if err != nil || !u.Anonymous || u.Home != "pub" || u.Perms != auth.PermList|auth.PermDownload {
		t.Errorf("anonymous: %+v, %v", u, err)
	}
	for _, name := range []string{"..", "a/b", `a\b`, "a b", "a\x00b", ""} {
		if _, err := h.Authenticate(loginCtx(t, false), name, "pw"); !errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("name %q: %v, want ErrUnknownUser", name, err)
		}
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("%d hook calls, want none", n)
	}
}
