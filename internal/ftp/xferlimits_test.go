package ftp

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/bandwidth"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// sameLimitsAuth gives every user it logs in the same Limits, as a users
// file with those keys would.
type sameLimitsAuth struct {
	auth.Authenticator
	limits auth.Limits
}

func (a sameLimitsAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	u, err := a.Authenticator.Authenticate(ctx, name, password)
	if u != nil {
		u.Limits = a.limits
	}
	return u, err
}

func withLimits(l auth.Limits) func(*Config) {
	return func(c *Config) { c.Auth = sameLimitsAuth{c.Auth, l} }
}

// TestMaxFileSize: an upload whose file would end larger than
// max_file_size gets 552 and leaves nothing of itself; one that ends at
// the limit or below is stored. Appends and resumed uploads count the
// bytes they keep.
func TestMaxFileSize(t *testing.T) {
	t.Parallel()
	const limit = 1000
	const refused = "File exceeds the maximum size of 1000 bytes for this account; upload discarded."
	old := strings.Repeat("o", 600)
	for _, tc := range []struct {
		name     string
		existing *string // alice/f before the upload
		cmds     []string
		data     int
		code     int
		want     string // reply text, when it matters
		after    *string
	}{
		{name: "STOR at the limit", data: limit, code: 226, after: ptr(strings.Repeat("x", limit))},
		{name: "STOR past the limit", data: limit + 1, code: 552, want: refused},
		{name: "STOR far past the limit", data: 50 * limit, code: 552, want: refused},
		{name: "STOR replacing a file", existing: &old, data: 2 * limit, code: 552, want: refused, after: &old},
		{name: "APPE within", existing: &old, cmds: []string{"APPE f"}, data: limit - 600, code: 226, after: ptr(old + strings.Repeat("x", limit-600))},
		{name: "APPE across", existing: &old, cmds: []string{"APPE f"}, data: limit - 599, code: 552, want: refused, after: &old},
		{name: "APPE to a new file", cmds: []string{"APPE f"}, data: limit + 1, code: 552, want: refused},
		{name: "REST+STOR across", existing: &old, cmds: []string{"REST 500", "STOR f"}, data: limit - 499, code: 552, want: refused, after: &old},
		{name: "REST+STOR within", existing: &old, cmds: []string{"REST 500", "STOR f"}, data: limit - 500, code: 226, after: ptr(old[:500] + strings.Repeat("x", limit-500))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{config: withLimits(auth.Limits{MaxFileSize: limit})})
			if tc.existing != nil {
				h.put("alice/f", *tc.existing)
			}
			h.login()
			cmds := tc.cmds
			if cmds == nil {
				cmds = []string{"STOR f"}
			}
			for _, c := range cmds[:len(cmds)-1] {
				h.expect(350, c)
			}
			data := strings.Repeat("x", tc.data)
			r := h.xfer(cmds[len(cmds)-1], &data)
			if r.code != tc.code || !strings.Contains(r.msg, tc.want) {
				t.Fatalf("%s of %d bytes: %d %q, want %d %q", cmds[len(cmds)-1], tc.data, r.code, r.msg, tc.code, tc.want)
			}
			switch {
			case tc.after != nil:
				if got := h.file("alice/f"); got != *tc.after {
					t.Errorf("file after: %d bytes %.20q..., want %d bytes %.20q...", len(got), got, len(*tc.after), *tc.after)
				}
			case h.exists("alice/f"):
				t.Errorf("a refused upload left a file of %d bytes", h.stat("alice/f").Size)
			}
			h.expect(200, "NOOP") // the session carries on
		})
	}
}

// TestMaxFileSizeAtOnce: the refusal comes as soon as the limit is
// crossed, while the client is still sending, not when it has sent
// everything.
func TestMaxFileSizeAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{config: withLimits(auth.Limits{MaxFileSize: 1 << 20})})
	h.login()
	addr := h.epsv()
	h.expect(150, "STOU")
	data := h.dial(addr)
	// 1 MiB + 1 byte, and the data connection stays open: a server
	// waiting for the end would never answer.
	go data.Write(make([]byte, 1<<20+1))
	msg := h.expectReply(552)
	if !strings.Contains(msg, "maximum size of 1MiB for this account; upload discarded") {
		t.Errorf("552 text %q", msg)
	}
	// The data connection was closed by the server.
	data.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := io.Copy(io.Discard, data); err != nil && !isReset(err) {
		t.Errorf("data connection after the refusal: %v", err)
	}
	if lines := h.list("NLST"); len(lines) != 0 {
		t.Errorf("refused STOU left %q", lines)
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe")
}

// TestMaxFileSizeBeyondAlready: an append or a resume that starts past
// the limit cannot end within it, and is refused before the data
// connection is used.
func TestMaxFileSizeBeyondAlready(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{config: withLimits(auth.Limits{MaxFileSize: 100})})
	big := strings.Repeat("b", 200)
	h.put("alice/big", big)
	h.login()
	h.expect(229, "EPSV")
	if msg := h.expect(552, "APPE big"); !strings.Contains(msg, "already larger (200 bytes) than the maximum size of 100 bytes") {
		t.Errorf("APPE reply %q", msg)
	}
	h.expect(350, "REST 150")
	if msg := h.expect(552, "STOR big"); !strings.Contains(msg, "Restart offset 150 is beyond the maximum file size of 100 bytes") {
		t.Errorf("REST+STOR reply %q", msg)
	}
	// A plain STOR may still replace it with a smaller file.
	h.stor("big", "small")
	if got := h.file("alice/big"); got != "small" {
		t.Errorf("big = %q", got)
	}
}

// TestNoGatesWhenUnlimited: without any limit no gate is built, so
// copyData takes its unlimited path (zero-copy for local files) exactly
// as before limits existed. With limits, each one is a gate.
func TestNoGatesWhenUnlimited(t *testing.T) {
	unlimitedListener := bandwidth.New(0)
	for _, tc := range []struct {
		name     string
		limits   auth.Limits
		cfg      Config
		up, down int
	}{
		{name: "nothing", up: 0, down: 0},
		{name: "listener buckets at rate 0", cfg: Config{UploadLimit: unlimitedListener, DownloadLimit: unlimitedListener}},
		{name: "unrelated limits", limits: auth.Limits{QuotaBytes: 1 << 30, MaxSessions: 2}},
		{name: "max file size", limits: auth.Limits{MaxFileSize: 10}, up: 1},
		{name: "user rates", limits: auth.Limits{UploadRate: 1000, DownloadRate: 1000}, up: 1, down: 1},
		{name: "download rate only", limits: auth.Limits{DownloadRate: 1000}, down: 1},
		{name: "listener rates", cfg: Config{UploadLimit: bandwidth.New(1000), DownloadLimit: bandwidth.New(1000)}, up: 1, down: 1},
		{name: "all", limits: auth.Limits{MaxFileSize: 10, UploadRate: 1000, DownloadRate: 1000},
			cfg: Config{UploadLimit: bandwidth.New(1000), DownloadLimit: bandwidth.New(1000)}, up: 3, down: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Session{cfg: &tc.cfg, user: &auth.User{Name: "alice", Limits: tc.limits}, ctx: t.Context()}
			up, ok := s.uploadGates("/f", storage.CreateOptions{})
			if !ok {
				t.Fatal("upload refused")
			}
			if len(up) != tc.up {
				t.Errorf("upload gates: %d, want %d", len(up), tc.up)
			}
			if tc.up == 0 && up != nil {
				t.Error("upload gates: an empty slice instead of nil")
			}
			if down := s.downloadGates(); len(down) != tc.down || (tc.down == 0 && down != nil) {
				t.Errorf("download gates: %v, want %d", down, tc.down)
			}
		})
	}
}

// TestUserBucketShared: a user's sessions draw on one bucket, whichever
// session asks; another user has another.
func TestUserBucketShared(t *testing.T) {
	shared := &bandwidth.Shared{}
	cfg := &Config{UserRates: shared}
	lim := auth.Limits{UploadRate: 1 << 20, DownloadRate: 2 << 20}
	a1 := &Session{cfg: cfg, user: &auth.User{Name: "alice", Limits: lim}}
	a2 := &Session{cfg: cfg, user: &auth.User{Name: "alice", Limits: lim}}
	b := &Session{cfg: cfg, user: &auth.User{Name: "bob", Limits: lim}}
	g1, _ := a1.uploadGates("/f", storage.CreateOptions{})
	g2, _ := a2.uploadGates("/f", storage.CreateOptions{})
	g3, _ := b.uploadGates("/f", storage.CreateOptions{})
	if g1[0].(rateGate).l != g2[0].(rateGate).l {
		t.Error("two sessions of alice have two upload buckets")
	}
	if g1[0].(rateGate).l == g3[0].(rateGate).l {
		t.Error("alice and bob share a bucket")
	}
	if d := a1.downloadGates(); d[0].(rateGate).l == g1[0].(rateGate).l || d[0].(rateGate).l.Rate() != 2<<20 {
		t.Error("the download bucket is not a bucket of its own at the download rate")
	}
}

// TestSizeGate: the gate lets one byte past the limit through, and fails
// on it.
func TestSizeGate(t *testing.T) {
	g := &sizeGate{limit: 10, size: 4}
	if n, _ := g.allow(t.Context(), 100); n != 7 {
		t.Errorf("allow = %d, want 7 (6 to the limit + 1)", n)
	}
	if err := g.moved(6); err != nil {
		t.Fatalf("moved to the limit: %v", err)
	}
	if n, _ := g.allow(t.Context(), 100); n != 1 {
		t.Errorf("allow at the limit = %d, want 1", n)
	}
	if err := g.moved(0); err != nil {
		t.Errorf("end of data at the limit: %v", err)
	}
	if err := g.moved(1); err == nil {
		t.Error("one byte past the limit did not fail")
	}
}

// TestCommandPacing: with CommandRate set, pipelined commands are
// answered at that pace after the burst.
func TestCommandPacing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{config: func(c *Config) { c.CommandRate, c.CommandBurst = 50, 5 }})
	start := time.Now()
	var b strings.Builder
	for range 30 {
		b.WriteString("NOOP\r\n")
	}
	if _, err := io.WriteString(h.conn, b.String()); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		h.expectReply(200)
	}
	// 30 commands, 5 at once, 25 more at 50/s: at least 0.5 s.
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("30 NOOPs answered in %v, want at least 0.5s at 50/s after a burst of 5", d)
	}
}
