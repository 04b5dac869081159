package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/defender"
)

// fakeService records calls and answers with err when set.
type fakeService struct {
	mu    sync.Mutex
	bans  []defender.Ban
	calls []string
	err   error
}

func (f *fakeService) Bans(context.Context) ([]defender.Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bans, nil
}

func (f *fakeService) Ban(_ context.Context, p netip.Prefix, d time.Duration, reason string) (defender.Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("ban %s %v %q", p, d, reason))
	if f.err != nil {
		return defender.Ban{}, f.err
	}
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	b := defender.Ban{Prefix: p, Reason: reason, Since: since, Strikes: 1, Manual: true}
	if d > 0 {
		b.Until = since.Add(d)
	}
	return b, nil
}

func (f *fakeService) Unban(_ context.Context, p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("unban %s", p))
	return f.err
}

func TestHandler(t *testing.T) {
	since := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	listed := []defender.Ban{
		{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Reason: "10 points in 5m0s: login_failed x5", Since: since, Until: since.Add(15 * time.Minute), Strikes: 1},
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Reason: "by hand", Since: since, Strikes: 2, Manual: true},
	}
	internal := errors.New("disk on fire at /var/lib/secret")
	for _, tc := range []struct {
		name       string
		method     string
		path, body string
		svcErr     error
		status     int
		want       string // substring of the answer
		call       string // the Service call made; "" for none
	}{
		{"list", "GET", "/v1/bans", "", nil, 200,
			`{"bans":[{"prefix":"198.51.100.7/32","reason":"10 points in 5m0s: login_failed x5","since":"2025-01-02T03:04:05Z","until":"2025-01-02T03:19:05Z","strikes":1,"manual":false},` +
				`{"prefix":"2001:db8::/64","reason":"by hand","since":"2025-01-02T03:04:05Z","until":null,"strikes":2,"manual":true}]}`, ""},
		{"ban address", "POST", "/v1/bans", `{"prefix": "203.0.113.7", "duration": "1h", "reason": "scanner"}`, nil, 201,
			`{"prefix":"203.0.113.7/32","reason":"scanner","since":"2025-01-02T03:04:05Z","until":"2025-01-02T04:04:05Z","strikes":1,"manual":true}`,
			`ban 203.0.113.7/32 1h0m0s "scanner"`},
		{"ban IPv6 address by /64", "POST", "/v1/bans", `{"prefix": "2001:db8:1:2:3::4"}`, nil, 201, `"prefix":"2001:db8:1:2::/64"`, `ban 2001:db8:1:2::/64 0s ""`},
		{"ban forever", "POST", "/v1/bans", `{"prefix": "203.0.113.0/24", "duration": "forever"}`, nil, 201, `"until":null`, `ban 203.0.113.0/24 -1ns ""`},
		{"bad prefix", "POST", "/v1/bans", `{"prefix": "203.0.113.300"}`, nil, 400, `{"error":"defender: \"203.0.113.300\" is not an address or a CIDR prefix","code":"bad_request"}`, ""},
		{"host bits", "POST", "/v1/bans", `{"prefix": "203.0.113.7/24"}`, nil, 400, `the network is 203.0.113.0/24`, ""},
		{"bad duration", "POST", "/v1/bans", `{"prefix": "203.0.113.7", "duration": "1 hour"}`, nil, 400, `duration \"1 hour\"`, ""},
		{"negative duration", "POST", "/v1/bans", `{"prefix": "203.0.113.7", "duration": "-1h"}`, nil, 400, `positive duration`, ""},
		{"missing prefix", "POST", "/v1/bans", `{"duration": "1h"}`, nil, 400, `\"prefix\" is required`, ""},
		{"unknown field", "POST", "/v1/bans", `{"prefix": "203.0.113.7", "for": "1h"}`, nil, 400, `unknown field \"for\"`, ""},
		{"not JSON", "POST", "/v1/bans", `prefix=1.2.3.4`, nil, 400, `"code":"bad_request"`, ""},
		{"reason too long", "POST", "/v1/bans", `{"prefix": "203.0.113.7", "reason": "` + strings.Repeat("x", 600) + `"}`, nil, 400, `reason: longer than 512 bytes`, ""},
		{"body too large", "POST", "/v1/bans", `{"prefix": "203.0.113.7", "reason": "` + strings.Repeat("x", 70000) + `"}`, nil, 400, `request body too large`, ""},
		{"allowed", "POST", "/v1/bans", `{"prefix": "10.0.0.1"}`, fmt.Errorf("defender: 10.0.0.1/32 is inside 10.0.0.0/8 of the allow list: %w", defender.ErrAllowed), 409,
			`{"error":"defender: 10.0.0.1/32 is inside 10.0.0.0/8 of the allow list: in the allow list","code":"allowed"}`, `ban 10.0.0.1/32 0s ""`},
		{"unavailable", "POST", "/v1/bans", `{"prefix": "10.0.0.1"}`, fmt.Errorf("the defender is disabled: %w", ErrUnavailable), 503, `"code":"unavailable"`, `ban 10.0.0.1/32 0s ""`},
		{"internal error not sent", "POST", "/v1/bans", `{"prefix": "10.0.0.1"}`, internal, 500,
			`{"error":"internal error (see the server's log)","code":"internal"}`, `ban 10.0.0.1/32 0s ""`},
		{"unban", "DELETE", "/v1/bans/203.0.113.0/24", "", nil, 204, "", "unban 203.0.113.0/24"},
		{"unban IPv6 address", "DELETE", "/v1/bans/2001:db8::1", "", nil, 204, "", "unban 2001:db8::/64"},
		{"unban escaped", "DELETE", "/v1/bans/203.0.113.0%2F24", "", nil, 204, "", "unban 203.0.113.0/24"},
		{"unban not banned", "DELETE", "/v1/bans/203.0.113.7", "", fmt.Errorf("defender: 203.0.113.7/32: %w", defender.ErrNotBanned), 404,
			`{"error":"defender: 203.0.113.7/32: not banned","code":"not_banned"}`, "unban 203.0.113.7/32"},
		{"unban bad prefix", "DELETE", "/v1/bans/nonsense", "", nil, 400, `"code":"bad_request"`, ""},
		{"wrong method", "PUT", "/v1/bans", "{}", nil, 405, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &fakeService{bans: listed, err: tc.svcErr}
			var log bytes.Buffer
			h := NewHandler(svc, slog.New(slog.NewTextHandler(&log, nil)))
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := strings.TrimSpace(rec.Body.String())
			if rec.Code != tc.status || !strings.Contains(got, tc.want) {
				t.Errorf("%s %s: %d %s\nwant %d with %s", tc.method, tc.path, rec.Code, got, tc.status, tc.want)
			}
			if rec.Code != 405 && rec.Code != 204 && rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
			}
			if calls := strings.Join(svc.calls, "; "); calls != tc.call {
				t.Errorf("calls: %q, want %q", calls, tc.call)
			}
			if tc.svcErr == internal && !strings.Contains(log.String(), "disk on fire") {
				t.Errorf("internal error not logged: %s", log.String())
			}
		})
	}
}

func TestEmptyListIsArray(t *testing.T) {
	rec := httptest.NewRecorder()
	NewHandler(&fakeService{}, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/v1/bans", nil))
	if got := strings.TrimSpace(rec.Body.String()); got != `{"bans":[]}` {
		t.Errorf("got %s", got)
	}
}

// serve runs Serve on a socket in a temporary directory until the test
// ends, and checks that it returned nil and removed the socket.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "control.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, l, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	return path
}

// TestRoundTrip drives a real Defender through the socket with the Client.
func TestRoundTrip(t *testing.T) {
	d, err := defender.New(defender.Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	path := serve(t, NewHandler(Local(d), nil))

	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != SocketMode {
		t.Errorf("socket mode %v, want socket %v", fi.Mode(), SocketMode)
	}
	if dfi, _ := os.Stat(filepath.Dir(path)); dfi.Mode().Perm() != 0o750 {
		t.Errorf("socket directory mode %v", dfi.Mode())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("socket directory holds %v", entries)
	}

	ctx := context.Background()
	c := &Client{SocketPath: path}
	if bans, err := c.ListBans(ctx); err != nil || len(bans) != 0 {
		t.Fatalf("ListBans = %v, %v", bans, err)
	}
	b, err := c.Ban(ctx, netip.MustParsePrefix("203.0.113.0/24"), time.Hour, "scanner")
	if err != nil {
		t.Fatal(err)
	}
	if b.Prefix.String() != "203.0.113.0/24" || b.Until.Sub(b.Since) != time.Hour || !b.Manual || b.Reason != "scanner" {
		t.Errorf("Ban = %+v", b)
	}
	if _, err := c.Ban(ctx, netip.MustParsePrefix("2001:db8::/64"), defender.Forever, ""); err != nil {
		t.Fatal(err)
	}
	bans, err := c.ListBans(ctx)
	if err != nil || len(bans) != 2 || bans[0].Prefix != b.Prefix || !bans[1].Until.IsZero() {
		t.Fatalf("ListBans = %+v, %v", bans, err)
	}
	if !bans[0].Since.Equal(b.Since) || !bans[0].Until.Equal(b.Until) {
		t.Errorf("times changed on the way: %+v vs %+v", bans[0], b)
	}
	if d.Admit(netip.MustParseAddr("203.0.113.9")) {
		t.Error("the ban did not reach the defender")
	}

	_, err = c.Ban(ctx, netip.MustParsePrefix("10.1.2.3/32"), 0, "")
	var apiErr *Error
	if !errors.Is(err, defender.ErrAllowed) || !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Errorf("Ban(allowed) = %v", err)
	}
	if err := c.Unban(ctx, netip.MustParsePrefix("203.0.113.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := c.Unban(ctx, netip.MustParsePrefix("203.0.113.0/24")); !errors.Is(err, defender.ErrNotBanned) {
		t.Errorf("second Unban = %v", err)
	}
	if err := c.Unban(ctx, netip.MustParsePrefix("2001:db8::/64")); err != nil {
		t.Fatal(err)
	}
	if bans, _ := c.ListBans(ctx); len(bans) != 0 {
		t.Errorf("left: %+v", bans)
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()

	// A stale socket, as a crashed server leaves it, is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l, err := Listen(stale)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}

	// A live one is not taken over...
	if _, err := Listen(stale); err == nil || !strings.Contains(err.Error(), "another server is listening") {
		t.Errorf("live socket: %v", err)
	}
	// ... and survives the attempt.
	if c, err := net.Dial("unix", stale); err != nil {
		t.Errorf("live socket broken by the attempt: %v", err)
	} else {
		c.Close()
	}
	l.Close()
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the socket: %v", err)
	}

	// A regular file is never deleted.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("precious"), 0o600)
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if data, _ := os.ReadFile(file); string(data) != "precious" {
		t.Error("regular file changed")
	}

	// Closing does not remove a socket that another server put in its place.
	path := filepath.Join(dir, "replaced.sock")
	l1, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	l2, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	l1.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("closing the old listener removed the new socket: %v", err)
	}
	l2.Close()
}

func TestClientErrors(t *testing.T) {
	c := &Client{SocketPath: filepath.Join(t.TempDir(), "none.sock")}
	_, err := c.ListBans(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is the server running?") {
		t.Errorf("no socket: %v", err)
	}

	// Something that is not this API on the socket.
	path := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "teapot", http.StatusTeapot)
	}))
	c = &Client{SocketPath: path}
	_, err = c.ListBans(context.Background())
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 418 || !strings.Contains(err.Error(), "GET /v1/bans: 418 I'm a teapot: teapot") {
		t.Errorf("foreign server: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"forever", defender.Forever, true}, {"90m", 90 * time.Minute, true},
		{"0s", 0, false}, {"-1h", 0, false}, {"1 day", 0, false}, {"Forever", 0, false},
	} {
		d, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || d != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tc.in, d, err)
		}
		if tc.ok && formatDuration(d) != tc.in && tc.in != "90m" {
			t.Errorf("formatDuration(%v) = %q", d, formatDuration(d))
		}
	}
}

// The JSON of a ban is the documented one, field for field.
func TestBanJSONShape(t *testing.T) {
	data, _ := json.Marshal(toJSON(defender.Ban{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Since: time.Unix(0, 0)}))
	var m map[string]any
	json.Unmarshal(data, &m)
	for _, k := range []string{"prefix", "reason", "since", "until", "strikes", "manual"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing from %s", k, data)
		}
	}
	if len(m) != 6 {
		t.Errorf("extra fields: %s", data)
	}
}
