package ftp

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// offences records what a session reports to its Guard.
type offences struct {
	mu   sync.Mutex
	list []string
}

func (o *offences) Offend(client netip.Addr, off Offence) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = append(o.list, client.String()+" "+string(off))
}

func (o *offences) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.list, ",")
}

func (l *eventLog) last(t events.Type) (events.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.evs) - 1; i >= 0; i-- {
		if l.evs[i].Type == t {
			return l.evs[i], true
		}
	}
	return events.Event{}, false
}

// TestLoginAccessLimits: a disabled or expired account, or a client
// outside allowed_networks or inside denied_networks, gets the reply of
// a wrong password (530 "Login incorrect.") after the same delay, scores
// login_failed, and the log says why and that the password was right.
func TestLoginAccessLimits(t *testing.T) {
	t.Parallel()
	nets := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	const delay = 150 * time.Millisecond
	for _, tc := range []struct {
		name   string
		limits auth.Limits
		client string
		reason string // "" = logs in
	}{
		{"no limits", auth.Limits{}, "198.51.100.9", ""},
		{"disabled", auth.Limits{Disabled: true}, "198.51.100.9", "alice is disabled"},
		{"expired", auth.Limits{Expires: time.Now().Add(-time.Minute)}, "198.51.100.9", "alice expired at"},
		{"expires tomorrow", auth.Limits{Expires: time.Now().Add(24 * time.Hour)}, "198.51.100.9", ""},
		{"outside allowed", auth.Limits{AllowedNetworks: nets("203.0.113.0/24")}, "198.51.100.9", "client 198.51.100.9 is not in alice's allowed_networks"},
		{"inside allowed", auth.Limits{AllowedNetworks: nets("203.0.113.0/24", "198.51.100.0/24")}, "198.51.100.9", ""},
		{"denied inside allowed", auth.Limits{AllowedNetworks: nets("198.51.100.0/24"), DeniedNetworks: nets("198.51.100.8/30")}, "198.51.100.9", "client 198.51.100.9 is in alice's denied_networks (198.51.100.8/30)"},
		{"IPv6 client", auth.Limits{AllowedNetworks: nets("203.0.113.0/24")}, "2001:db8::7", "client 2001:db8::7 is not in alice's allowed_networks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			guard := &offences{}
			evs := &eventLog{}
			h := newHarness(t, harnessOpts{client: netip.MustParseAddr(tc.client), config: func(c *Config) {
				c.Auth = limitsAuth{c.Auth, map[string]auth.Limits{"alice": tc.limits}}
				c.Guard, c.Events = guard, evs
				c.LoginFailureDelay = delay
			}})
			if tc.reason == "" {
				h.loginAs("alice")
				if g := guard.String(); g != "" {
					t.Errorf("offences after a good login: %s", g)
				}
				return
			}
			// A wrong password first: what the refusal must look like.
			h.expect(331, "USER alice")
			start := time.Now()
			wrongMsg := h.expect(530, "PASS wrong")
			if d := time.Since(start); d < delay {
				t.Errorf("wrong password answered after %v, before login_failure_delay %v", d, delay)
			}
			h.expect(331, "USER alice")
			start = time.Now()
			msg := h.expect(530, "PASS alice-pw")
			if d := time.Since(start); d < delay {
				t.Errorf("refusal answered after %v, before login_failure_delay %v", d, delay)
			}
			if msg != wrongMsg || msg != "Login incorrect." {
				t.Errorf("refusal %q, wrong password %q: want both \"Login incorrect.\"", msg, wrongMsg)
			}
			want := tc.client + " login_failed," + tc.client + " login_failed"
			if g := guard.String(); g != want {
				t.Errorf("offences %q, want %q", g, want)
			}
			if !logLine(h.logs.String(), `msg="login refused"`, "user=alice", `reason="`+tc.reason, "password=right") {
				t.Errorf("log does not say why (%q):\n%s", tc.reason, h.logs.String())
			}
			if e, ok := evs.last(events.LoginFailed); !ok || e.Code != 530 || !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("login.failed event %+v, want code 530 and reason %q", e, tc.reason)
			}
			// The third failure closes the session, as for wrong passwords.
			h.expect(331, "USER alice")
			h.expect(421, "PASS alice-pw")
			h.closed()
		})
	}
}

// logLine reports whether one line of logs holds every one of parts.
func logLine(logs string, parts ...string) bool {
	for _, l := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// countSessions is a SessionCounter as the server's: one count per user.
type countSessions struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countSessions) Acquire(user string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if max > 0 && c.n[user] >= max {
		return false
	}
	c.n[user]++
	return true
}

func (c *countSessions) Release(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[user]--; c.n[user] <= 0 {
		delete(c.n, user)
	}
}

func (c *countSessions) count(user string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[user]
}

// waitCount waits until user holds want slots.
func (c *countSessions) waitCount(t *testing.T, user string, want int) {
	t.Helper()
	deadline := time.Now().Add(replyTimeout)
	for c.count(user) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d session slots, want %d", user, c.count(user), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMaxSessions: the session over a user's max_sessions gets 421 and is
// closed, without scoring; the slot comes back on QUIT, REIN, a client
// that goes away, the server closing the session, a panic and the idle
// timeout; other users are not affected.
func TestMaxSessions(t *testing.T) {
	t.Parallel()
	counter := &countSessions{}
	guard := &offences{}
	open := func() *harness {
		return newHarness(t, harnessOpts{config: func(c *Config) {
			c.Auth = limitsAuth{c.Auth, map[string]auth.Limits{"alice": {MaxSessions: 2}}}
			c.UserSessions, c.Guard = counter, guard
		}})
	}
	a1, a2 := open(), open()
	a1.login()
	a2.login()
	over := open()
	over.expect(331, "USER alice")
	msg := over.expect(421, "PASS alice-pw")
	if msg != "Too many sessions for alice (at most 2 at a time); try again later." {
		t.Errorf("over the limit: %q", msg)
	}
	over.closed()
	if !strings.Contains(over.logs.String(), "alice already has max_sessions = 2 sessions open") {
		t.Errorf("log does not say why:\n%s", over.logs.String())
	}
	// Another user of the same home is not counted as alice.
	open().loginAs("reader")
	counter.waitCount(t, "alice", 2)

	// QUIT gives the slot back.
	a1.expect(221, "QUIT")
	counter.waitCount(t, "alice", 1)
	b := open()
	b.login()
	// REIN logs out: the slot comes back at once.
	b.expect(220, "REIN")
	counter.waitCount(t, "alice", 1)
	b.login()
	// A client that vanishes (no QUIT).
	b.raw.Close()
	counter.waitCount(t, "alice", 1)
	// A panic ends the session and frees its slot.
	p := open()
	p.login()
	counter.waitCount(t, "alice", 2)
	p.fs.SetHook(func(op memstore.Op, _ string) error {
		if op == memstore.OpMkdir {
			panic("boom")
		}
		return nil
	})
	p.expect(421, "MKD d")
	p.closed()
	counter.waitCount(t, "alice", 1)
	// Closed by the server (a ban, shutdown).
	a2.sess.Close()
	counter.waitCount(t, "alice", 0)
	// Ended by idle_timeout.
	idle := newHarness(t, harnessOpts{config: func(c *Config) {
		c.Auth = limitsAuth{c.Auth, map[string]auth.Limits{"alice": {MaxSessions: 2}}}
		c.UserSessions, c.Guard = counter, guard
		c.IdleTimeout = 100 * time.Millisecond
	}})
	idle.login()
	counter.waitCount(t, "alice", 1)
	if msg := idle.expectReply(421); !strings.Contains(msg, "Idle timeout") {
		t.Errorf("idle session: %q", msg)
	}
	idle.closed()
	counter.waitCount(t, "alice", 0)
	if g := guard.String(); g != "" {
		t.Errorf("max_sessions scored offences: %s", g)
	}
}

// TestNameRules: uploads, renames and new directories whose name the
// user's patterns refuse get 553 with the reason, before anything is
// created or changed; allowed names go through.
func TestNameRules(t *testing.T) {
	t.Parallel()
	limits := auth.Limits{Dirs: []auth.DirRule{
		{Dir: "/", DeniedPatterns: []string{"*.exe"}},
		{Dir: "/incoming", AllowedPatterns: []string{"*.csv"}},
	}}
	newH := func(t *testing.T) *harness {
		h := newHarness(t, harnessOpts{config: func(c *Config) {
			c.Auth = limitsAuth{c.Auth, map[string]auth.Limits{"alice": limits}}
		}})
		h.put("alice/incoming/old.csv", "old data")
		h.put("alice/setup.exe", "was here before the rule")
		h.login()
		return h
	}
	const exeMsg = "File name not allowed here: *.exe files are refused."
	const csvMsg = "File name not allowed here: only *.csv files are accepted in /incoming."
	for _, tc := range []struct {
		name  string
		steps []step
		gone  []string // must not exist afterwards
	}{
		{"STOR", []step{{"STOR tool.exe", 553, exeMsg}}, []string{"alice/tool.exe"}},
		{"STOR upper case", []step{{"STOR TOOL.EXE", 553, exeMsg}}, []string{"alice/TOOL.EXE"}},
		{"STOR in a subdirectory", []step{{"STOR incoming/report.xls", 553, csvMsg}}, []string{"alice/incoming/report.xls"}},
		{"STOR deny applies under allow", []step{{"CWD incoming", 250, ""}, {"STOR x.exe", 553, exeMsg}}, []string{"alice/incoming/x.exe"}},
		{"STOR over an old file", []step{{"STOR setup.exe", 553, exeMsg}}, nil},
		{"APPE", []step{{"APPE setup.exe", 553, exeMsg}}, nil},
		{"REST STOR", []step{{"REST 3", 350, ""}, {"STOR setup.exe", 553, exeMsg}}, nil},
		{"STOU", []step{{"CWD incoming", 250, ""}, {"STOU", 553, csvMsg}}, nil},
		{"MKD", []step{{"MKD incoming/sub", 553, csvMsg}}, []string{"alice/incoming/sub"}},
		{"MKD deny", []step{{"MKD bin.exe", 553, exeMsg}}, []string{"alice/bin.exe"}},
		{"RNTO", []step{{"RNFR incoming/old.csv", 350, ""}, {"RNTO incoming/old.exe", 553, exeMsg}}, []string{"alice/incoming/old.exe"}},
		{"RNTO into a ruled directory", []step{{"RNFR setup.exe", 350, ""}, {"RNTO incoming/setup.txt", 553, csvMsg}}, []string{"alice/incoming/setup.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newH(t)
			h.script(tc.steps...)
			for _, p := range tc.gone {
				if h.exists(p) {
					t.Errorf("%s exists after the refusal", p)
				}
			}
			if got := h.file("alice/incoming/old.csv"); got != "old data" {
				t.Errorf("old.csv = %q", got)
			}
			if got := h.file("alice/setup.exe"); got != "was here before the rule" {
				t.Errorf("setup.exe = %q", got)
			}
			if !logLine(h.logs.String(), `msg="file name refused"`, "user=alice", "reason=") {
				t.Errorf("no log line for the refusal:\n%s", h.logs.String())
			}
		})
	}
	t.Run("allowed names", func(t *testing.T) {
		t.Parallel()
		h := newH(t)
		h.stor("incoming/new.csv", "a,b")
		h.stor("incoming/NEW2.CSV", "c,d")
		h.stor("notes.txt", "n")
		h.expect(257, "MKD docs")
		h.script(step{"RNFR incoming/old.csv", 350, ""}, step{"RNTO incoming/renamed.csv", 250, ""})
		for p, want := range map[string]string{"alice/incoming/new.csv": "a,b", "alice/incoming/NEW2.CSV": "c,d", "alice/notes.txt": "n", "alice/incoming/renamed.csv": "old data"} {
			if got := h.file(p); got != want {
				t.Errorf("%s = %q, want %q", p, got, want)
			}
		}
	})
}
