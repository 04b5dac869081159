package defender

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// clock is a fake clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTest makes a Defender on a fake clock, closed at the end of the test.
func newTest(t *testing.T, cfg Config) (*Defender, *clock) {
	t.Helper()
	c := newClock()
	if cfg.Now == nil {
		cfg.Now = c.Now
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, c
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestScoreToBan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		events  []Event
		banAt   int // index of the event that bans; -1: none
		wantWhy string
	}{
		{"five wrong passwords", Config{}, repeat(LoginFailed, 5), 4, "10 points in 5m0s: login_failed x5"},
		{"four unknown users", Config{}, repeat(UnknownUser, 4), 3, "unknown_user x4"},
		{"mixed", Config{}, []Event{LoginFailed, UnknownUser, NoCommand, TLSHandshakeFailed, BadCommandBeforeLogin, LoginFailed}, 5,
			"login_failed x2, unknown_user x1, bad_command_before_login x1, tls_handshake_failed x1, no_command x1"},
		{"nine silent connections", Config{}, repeat(NoCommand, 9), -1, ""},
		{"ten silent connections", Config{}, repeat(NoCommand, 10), 9, "no_command x10"},
		{"weight 0 ignores", Config{Weights: map[Event]int{NoCommand: 0}}, repeat(NoCommand, 50), -1, ""},
		{"custom threshold and weight", Config{Threshold: 3, Weights: map[Event]int{LoginFailed: 1}}, repeat(LoginFailed, 3), 2, "3 points"},
		{"unknown event ignored", Config{}, repeat(Event("nonsense"), 20), -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Ban
			tc.cfg.OnBan = func(b Ban) { got = append(got, b) }
			d, c := newTest(t, tc.cfg)
			a := addr("198.51.100.7")
			for i, e := range tc.events {
				d.Score(a, e)
				c.Advance(time.Second)
				if want := tc.banAt < 0 || i < tc.banAt; d.Admit(a) != want {
					t.Fatalf("after event %d (%s): Admit = %v, want %v", i, e, !want, want)
				}
			}
			if tc.banAt < 0 {
				if len(got) != 0 {
					t.Fatalf("bans: %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("OnBan called %d times, want 1", len(got))
			}
			b := got[0]
			if b.Prefix != netip.MustParsePrefix("198.51.100.7/32") || b.Strikes != 1 || b.Manual ||
				b.Until.Sub(b.Since) != DefaultBanTime || !strings.Contains(b.Reason, tc.wantWhy) {
				t.Errorf("ban = %+v, want reason containing %q", b, tc.wantWhy)
			}
			if bans := d.Bans(); len(bans) != 1 || bans[0] != b {
				t.Errorf("Bans() = %+v, want [%+v]", bans, b)
			}
			if !d.Admit(addr("198.51.100.8")) {
				t.Error("a neighbour is refused")
			}
			s := d.Stats()
			if s.Active != 1 || s.Bans != 1 || s.RefusedBanned == 0 || s.Tracked != 0 {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

func repeat(e Event, n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = e
	}
	return out
}

func TestWindow(t *testing.T) {
	a := addr("203.0.113.9")
	for _, tc := range []struct {
		name string
		// steps: wait, then one LoginFailed (2 points of 10)
		waits  []time.Duration
		banned bool
	}{
		{"all within the window", []time.Duration{0, time.Minute, time.Minute, time.Minute, 119 * time.Second}, true},
		{"first one expired", []time.Duration{0, time.Minute, time.Minute, time.Minute, 2 * time.Minute}, false},
		{"sliding: the oldest leaves, a new one completes", []time.Duration{0, 4 * time.Minute, 0, 0, 0, 61 * time.Second, 0}, true},
		{"slow and steady never bans", []time.Duration{0, 75 * time.Second, 75 * time.Second, 75 * time.Second, 75 * time.Second, 75 * time.Second, 75 * time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newTest(t, Config{})
			for _, w := range tc.waits {
				c.Advance(w)
				d.Score(a, LoginFailed)
			}
			if got := !d.Admit(a); got != tc.banned {
				t.Errorf("banned = %v, want %v", got, tc.banned)
			}
		})
	}
}

func TestEscalation(t *testing.T) {
	d, c := newTest(t, Config{})
	a := addr("198.51.100.20")
	ban := func() Ban {
		t.Helper()
		for range 5 {
			d.Score(a, LoginFailed)
		}
		bans := d.Bans()
		if len(bans) != 1 {
			t.Fatalf("bans = %+v", bans)
		}
		return bans[0]
	}
	want := []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour,
		8 * time.Hour, 16 * time.Hour, 24 * time.Hour, 24 * time.Hour}
	for i, w := range want {
		b := ban()
		if got := b.Until.Sub(b.Since); got != w || b.Strikes != i+1 {
			t.Fatalf("ban %d: %v, strikes %d; want %v, strikes %d", i+1, got, b.Strikes, w, i+1)
		}
		// Scores while banned do not count.
		d.Score(a, UnknownUser)
		c.Advance(w - time.Second)
		if d.Admit(a) {
			t.Fatalf("ban %d ended early", i+1)
		}
		c.Advance(time.Second)
		if !d.Admit(a) {
			t.Fatalf("ban %d did not end", i+1)
		}
		// Well within MaxBanTime: the next ban is longer.
		c.Advance(time.Hour)
	}
	// A day after the end of the last ban, its strikes are forgotten.
	c.Advance(DefaultMaxBanTime)
	if b := ban(); b.Strikes != 1 || b.Until.Sub(b.Since) != DefaultBanTime {
		t.Fatalf("after a quiet day: %+v", b)
	}
}

func TestAllowAndDeny(t *testing.T) {
	d, _ := newTest(t, Config{
		Allow: prefixes("10.0.0.0/8", "198.51.100.0/24", "2001:db8:1::/48"),
		Deny:  prefixes("10.9.0.0/16", "0.0.0.0/0", "192.0.2.66/32", "2001:db8::/32"),
	})
	for _, tc := range []struct {
		addr  string
		admit bool
	}{
		{"10.1.2.3", true},         // allow /8
		{"10.9.1.1", false},        // deny /16 inside it
		{"198.51.100.1", true},     // allow /24 inside deny 0/0
		{"203.0.113.1", false},     // deny 0/0
		{"192.0.2.66", false},      // deny /32
		{"::ffff:10.1.2.3", true},  // mapped: as IPv4
		{"::ffff:10.9.1.1", false}, // mapped: as IPv4
		{"2001:db8:1:2::3", true},  // allow /48
		{"2001:db8:2::1", false},   // deny /32
		{"2001:db9::1", true},      // no list
	} {
		if got := d.Admit(addr(tc.addr)); got != tc.admit {
			t.Errorf("Admit(%s) = %v, want %v", tc.addr, got, tc.admit)
		}
	}
	// Allowed addresses are never scored, let alone banned.
	for range 100 {
		d.Score(addr("10.1.2.3"), UnknownUser)
		d.Score(addr("2001:db8:1::7"), UnknownUser)
	}
	if !d.Admit(addr("10.1.2.3")) || !d.Admit(addr("2001:db8:1::7")) || d.Stats().Tracked != 0 || len(d.Bans()) != 0 {
		t.Errorf("allowed addresses were scored: %+v %+v", d.Stats(), d.Bans())
	}
	// A ban by hand inside the allow list would change nothing: refused.
	for _, p := range []string{"10.1.2.3/32", "10.0.0.0/8", "198.51.100.0/25", "2001:db8:1:5::/64"} {
		if _, err := d.Ban(netip.MustParsePrefix(p), time.Hour, "test"); !errors.Is(err, ErrAllowed) {
			t.Errorf("Ban(%s) = %v, want ErrAllowed", p, err)
		}
	}
	// A wider one is made; its allowed part stays admitted.
	if _, err := d.Ban(netip.MustParsePrefix("2001:db8::/31"), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	if !d.Admit(addr("2001:db8:1::1")) || d.Admit(addr("2001:db9::1")) {
		t.Error("wide ban: allowed part refused, or the rest admitted")
	}
	if s := d.Stats(); s.RefusedDenied != 5 || s.RefusedBanned != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Weights: map[Event]int{"login_faild": 2}}, `unknown event "login_faild"`},
		{Config{Weights: map[Event]int{LoginFailed: -1}}, "weights.login_failed = -1"},
		{Config{Allow: prefixes("10.0.0.0/8"), Deny: prefixes("10.0.0.0/8")}, "10.0.0.0/8 is in both allow and deny"},
		{Config{Allow: prefixes("::ffff:10.0.0.0/104"), Deny: prefixes("10.0.0.0/8")}, "10.0.0.0/8 is in both"},
		{Config{Deny: prefixes("10.1.2.3/8")}, "deny: 10.1.2.3/8 has host bits set (the network is 10.0.0.0/8)"},
		{Config{Deny: []netip.Prefix{{}}}, "deny: invalid prefix"},
		{Config{BanTime: time.Hour, MaxBanTime: time.Minute}, "max_ban_time 1m0s is shorter than ban_time 1h0m0s"},
		{Config{Threshold: -1}, "threshold -1"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "defender: ") {
			t.Errorf("New(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestIPv6ByPrefix(t *testing.T) {
	d, _ := newTest(t, Config{})
	// Five guesses from five addresses of one /64 ban the /64.
	for i := range 5 {
		d.Score(addr(fmt.Sprintf("2001:db8:aa:bb:%x::1", i+1)), LoginFailed)
	}
	if bans := d.Bans(); len(bans) != 1 || bans[0].Prefix != netip.MustParsePrefix("2001:db8:aa:bb::/64") {
		t.Fatalf("bans = %+v", bans)
	}
	for _, tc := range []struct {
		addr  string
		admit bool
	}{
		{"2001:db8:aa:bb::1", false},
		{"2001:db8:aa:bb:ffff:ffff:ffff:ffff", false},
		{"fe80::1%eth0", true},
		{"2001:db8:aa:bc::1", true},
	} {
		if got := d.Admit(addr(tc.addr)); got != tc.admit {
			t.Errorf("Admit(%s) = %v, want %v", tc.addr, got, tc.admit)
		}
	}
	// IPv4-mapped addresses count as IPv4: a dual-stack listener's view.
	for range 5 {
		d.Score(addr("::ffff:192.0.2.1"), LoginFailed)
	}
	if d.Admit(addr("192.0.2.1")) || d.Admit(addr("::ffff:192.0.2.1")) {
		t.Error("mapped address not banned as IPv4")
	}
	// Zoned link-local addresses are keyed without their zone.
	for range 5 {
		d.Score(addr("fe80::1%eth0"), LoginFailed)
	}
	if d.Admit(addr("fe80::2%eth1")) {
		t.Error("zoned address not banned by its /64")
	}
	// The zero Addr (a connection not over IP) is admitted, never scored.
	d.Score(netip.Addr{}, UnknownUser)
	if !d.Admit(netip.Addr{}) {
		t.Error("zero Addr refused")
	}
}

func TestParsePrefix(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"203.0.113.7", "203.0.113.7/32", ""},
		{"203.0.113.0/24", "203.0.113.0/24", ""},
		{"::ffff:203.0.113.7", "203.0.113.7/32", ""},
		{"::ffff:203.0.113.0/120", "203.0.113.0/24", ""},
		{"2001:db8::1", "2001:db8::/64", ""},
		{"2001:db8::/48", "2001:db8::/48", ""},
		{"2001:db8::1/128", "2001:db8::/64", ""},
		{"203.0.113.7/24", "", "has host bits set (the network is 203.0.113.0/24)"},
		{"fe80::1%eth0", "", "zoned"},
		{"example.com", "", "not an address or a CIDR prefix"},
		{"1.2.3.4/33", "", "not an address or a CIDR prefix"},
		{"", "", "not an address"},
	} {
		p, err := ParsePrefix(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePrefix(%q) = %v, %v; want error %q", tc.in, p, err, tc.err)
		case tc.err == "" && (err != nil || p.String() != tc.want):
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tc.in, p, err, tc.want)
		}
	}
}

func TestManualBans(t *testing.T) {
	d, c := newTest(t, Config{})
	net24 := netip.MustParsePrefix("203.0.113.0/24")
	b, err := d.Ban(net24, Forever, "scanner")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Until.IsZero() || !b.Manual || b.Reason != "scanner" || b.Strikes != 1 {
		t.Errorf("ban = %+v", b)
	}
	c.Advance(365 * 24 * time.Hour)
	if d.Admit(addr("203.0.113.200")) {
		t.Error("forever ended")
	}
	// Covered addresses are not scored, and have no ban of their own.
	d.Score(addr("203.0.113.5"), UnknownUser)
	if d.Stats().Tracked != 0 {
		t.Error("a banned address was scored")
	}
	err = d.Unban(netip.MustParsePrefix("203.0.113.5/32"))
	if !errors.Is(err, ErrNotBanned) || !strings.Contains(err.Error(), "covered by the ban of 203.0.113.0/24") {
		t.Errorf("Unban(covered) = %v", err)
	}
	if err := d.Unban(net24); err != nil {
		t.Fatal(err)
	}
	if !d.Admit(addr("203.0.113.200")) {
		t.Error("still banned after Unban")
	}
	if err := d.Unban(net24); !errors.Is(err, ErrNotBanned) {
		t.Errorf("second Unban = %v", err)
	}

	// Duration 0: the defender's escalated time. Unban forgets strikes.
	p := netip.MustParsePrefix("2001:db8::7/128")
	for i, want := range []time.Duration{DefaultBanTime, 2 * DefaultBanTime} {
		b, err := d.Ban(p, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if b.Prefix.String() != "2001:db8::/64" || b.Until.Sub(b.Since) != want {
			t.Errorf("ban %d = %+v", i, b)
		}
	}
	d.Unban(p)
	if b, _ := d.Ban(p, 0, ""); b.Strikes != 1 {
		t.Errorf("strikes not forgotten by Unban: %+v", b)
	}
	if _, err := d.Ban(p, -time.Hour, ""); err == nil {
		t.Error("negative duration accepted")
	}
	if _, err := d.Ban(netip.Prefix{}, time.Hour, ""); err == nil {
		t.Error("invalid prefix accepted")
	}
	// Bans are sorted by prefix, IPv4 first.
	d.Ban(netip.MustParsePrefix("198.51.100.9/32"), time.Hour, "")
	d.Ban(netip.MustParsePrefix("198.51.100.0/24"), time.Hour, "")
	var got []string
	for _, b := range d.Bans() {
		got = append(got, b.Prefix.String())
	}
	if want := "198.51.100.0/24 198.51.100.9/32 2001:db8::/64"; strings.Join(got, " ") != want {
		t.Errorf("Bans() = %v, want %s", got, want)
	}
}

func TestOneLogLinePerBan(t *testing.T) {
	var buf bytes.Buffer
	d, _ := newTest(t, Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	a := addr("198.51.100.7")
	for range 5 {
		d.Score(a, LoginFailed)
	}
	for range 1000 {
		d.Admit(a)
		d.Score(a, LoginFailed)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.Contains(buf.String(), `msg="defender: banned" prefix=198.51.100.7/32 strikes=1`) {
		t.Errorf("log:\n%s", buf.String())
	}
}

func TestPersistence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state", "defender.json")
	c := newClock()
	d, err := New(Config{StateFile: file, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		d.Score(addr("198.51.100.1"), LoginFailed) // 15m
	}
	d.Ban(netip.MustParsePrefix("203.0.113.0/24"), Forever, "by hand")
	d.Ban(netip.MustParsePrefix("2001:db8::/64"), 2*time.Hour, "")
	d.Ban(netip.MustParsePrefix("192.0.2.1/32"), time.Minute, "short")
	d.Score(addr("192.0.2.99"), LoginFailed) // a score: not kept
	want := d.Bans()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi, err)
	}

	d2, err := New(Config{StateFile: file, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if got := d2.Bans(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after restart:\n got %+v\nwant %+v", got, want)
	}
	if d2.Stats().Tracked != 0 {
		t.Error("scores were kept")
	}
	d2.Close()

	// 20 minutes later: the two short bans have ended; the 15-minute one's
	// strike is still remembered, so its next ban is longer.
	c.Advance(20 * time.Minute)
	d3, err := New(Config{StateFile: file, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer d3.Close()
	var got []string
	for _, b := range d3.Bans() {
		got = append(got, b.Prefix.String())
	}
	if strings.Join(got, " ") != "203.0.113.0/24 2001:db8::/64" {
		t.Errorf("after 20 minutes: %v", got)
	}
	for range 5 {
		d3.Score(addr("198.51.100.1"), LoginFailed)
	}
	for _, b := range d3.Bans() {
		if b.Prefix.String() == "198.51.100.1/32" && (b.Strikes != 2 || b.Until.Sub(b.Since) != 30*time.Minute) {
			t.Errorf("escalation lost across the restart: %+v", b)
		}
	}
	// Leftovers of the atomic write: none.
	entries, _ := os.ReadDir(filepath.Dir(file))
	if len(entries) != 1 {
		t.Errorf("state dir: %v", entries)
	}
}

func TestCorruptStateFile(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":       "{not json",
		"truncated":     `{"version": 1, "bans": [{"prefix": "203.0.113.7/32"`,
		"bad prefix":    `{"version": 1, "bans": [{"prefix": "203.0.113.700/32", "since": "2025-01-01T00:00:00Z", "until": null, "forget": null, "strikes": 1}]}`,
		"not canonical": `{"version": 1, "bans": [{"prefix": "2001:db8::1/128", "since": "2025-01-01T00:00:00Z", "until": null, "forget": null, "strikes": 1}]}`,
		"future":        `{"version": 2, "bans": []}`,
		"unknown field": `{"version": 1, "bans": [], "extra": 1}`,
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "defender.json")
			os.WriteFile(file, []byte(content), 0o600)
			var log bytes.Buffer
			d, _ := newTest(t, Config{StateFile: file, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if len(d.Bans()) != 0 {
				t.Error("bans from a corrupt file")
			}
			if kept, err := os.ReadFile(file + ".corrupt"); err != nil || string(kept) != content {
				t.Errorf("corrupt file not kept aside: %q %v", kept, err)
			}
			if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), "defender.json.corrupt") {
				t.Errorf("log: %s", log.String())
			}
			// The defender works and writes a fresh file.
			d.Ban(netip.MustParsePrefix("198.51.100.1/32"), time.Hour, "")
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(file); !bytes.Contains(data, []byte("198.51.100.1/32")) {
				t.Errorf("new state file: %s", data)
			}
		})
	}
}

// TestStateWrittenSoon checks that a ban reaches the disk within a second
// without Close, and that a burst of bans makes one write. The bubble's
// clock is fake, so the test takes no real time.
func TestStateWrittenSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "defender.json")
		d, err := New(Config{StateFile: file})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for i := range 50 {
			d.Ban(netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 32), time.Hour, "")
		}
		synctest.Wait()
		if _, err := os.Stat(file); err == nil {
			t.Fatal("written before the flush delay")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(data, []byte(`"prefix"`)); n != 50 {
			t.Errorf("%d bans on disk, want 50", n)
		}
		// Expiry needs no write; Unban does.
		d.Unban(netip.MustParsePrefix("198.51.100.0/32"))
		time.Sleep(time.Second)
		synctest.Wait()
		data, _ = os.ReadFile(file)
		if n := bytes.Count(data, []byte(`"prefix"`)); n != 49 {
			t.Errorf("%d bans on disk after Unban, want 49", n)
		}
	})
}

func TestStateWriteFailureRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "defender.json")
		var log clienttest.LogBuffer
		d, err := New(Config{StateFile: file, Logger: slog.New(slog.NewTextHandler(&log, nil))})
		if err != nil {
			t.Fatal(err)
		}
		// A directory where the file should be: every write fails.
		os.Mkdir(file, 0o700)
		d.Ban(netip.MustParsePrefix("198.51.100.1/32"), time.Hour, "")
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := strings.Count(log.String(), "cannot write the state file"); n != 1 {
			t.Errorf("%d error lines in a minute of failures, want 1:\n%s", n, log.String())
		}
		os.Remove(file)
		time.Sleep(retryDelay)
		synctest.Wait()
		if _, err := os.Stat(file); err != nil {
			t.Errorf("not written after the problem went away: %v", err)
		}
		if err := d.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
}

func TestBoundedMemory(t *testing.T) {
	const n, max = 100_000, 1000
	d, c := newTest(t, Config{MaxTracked: max, MaxBans: max})
	a4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range n {
		d.Score(a4(i), NoCommand)
	}
	s := d.Stats()
	if s.Tracked != max || s.Evicted != n-max {
		t.Errorf("after %d distinct addresses: %+v", n, s)
	}
	// The most recent are the ones kept.
	for range 9 {
		d.Score(a4(n-1), NoCommand)
	}
	if d.Admit(a4(n - 1)) {
		t.Error("the most recent score was forgotten")
	}
	// IPv6: a flood of distinct /64s, each guessing user names until
	// banned. A ban by hand is never evicted.
	manual := netip.MustParsePrefix("192.0.2.0/24")
	d.Ban(manual, time.Hour, "by hand")
	a6 := func(i int) netip.Addr {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 15: 1})
	}
	for i := range 5 * max {
		for range 4 {
			d.Score(a6(i), UnknownUser)
		}
		c.Advance(time.Millisecond)
	}
	if got := d.bans.len(); got > max {
		t.Errorf("%d bans kept, cap %d", got, max)
	}
	if d.Admit(a6(5*max-1)) || d.Admit(addr("192.0.2.1")) {
		t.Error("the newest ban, or the manual one, was evicted")
	}
	if d.Admit(a6(5*max - 2)) {
		t.Error("the second newest ban was evicted")
	}
	// Sweeping forgets what expired.
	c.Advance(DefaultWindow + 2*DefaultMaxBanTime)
	d.sweep()
	if s := d.Stats(); s.Tracked != 0 || s.Active != 0 || d.bans.len() != 0 {
		t.Errorf("after the sweep: %+v, %d entries", s, d.bans.len())
	}
}

func TestConcurrency(t *testing.T) {
	d, c := newTest(t, Config{MaxTracked: 500, MaxBans: 200})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 3000 {
				a := netip.AddrFrom4([4]byte{198, 51, byte(g), byte(i % 64)})
				switch i % 7 {
				case 0:
					d.Score(a, LoginFailed)
				case 1:
					d.Score(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, byte(g), byte(i), 15: 1}), UnknownUser)
				case 2:
					d.Ban(netip.PrefixFrom(a, 24).Masked(), time.Minute, "")
				case 3:
					d.Unban(netip.PrefixFrom(a, 24).Masked())
				case 4:
					c.Advance(time.Second)
				case 5:
					if i%100 == 5 {
						d.Bans()
						d.Stats()
						d.sweep()
					}
				}
				d.Admit(a)
			}
		})
	}
	wg.Wait()
	if s := d.Stats(); s.Bans == 0 || s.RefusedBanned == 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestAdmitAllocs(t *testing.T) {
	d, _ := newTest(t, Config{Allow: prefixes("10.0.0.0/8"), Deny: prefixes("192.0.2.0/24")})
	d.Ban(netip.MustParsePrefix("198.51.100.1/32"), time.Hour, "")
	d.Ban(netip.MustParsePrefix("2001:db8::/64"), Forever, "")
	for _, a := range []string{"198.51.100.1", "198.51.100.2", "10.0.0.1", "192.0.2.1", "2001:db8::1", "::ffff:198.51.100.1", "fe80::1%eth0"} {
		ip := addr(a)
		if n := testing.AllocsPerRun(100, func() { d.Admit(ip) }); n != 0 {
			t.Errorf("Admit(%s): %v allocations", a, n)
		}
	}
}

// TestReconfigure: a reload changes scoring and the lists at once and
// keeps what the defender knows: scores go on counting, bans in force
// stay, and a newly allowed address is admitted whatever its ban.
func TestReconfigure(t *testing.T) {
	base := Config{Threshold: 10, Weights: map[Event]int{LoginFailed: 2}}
	d, _ := newTest(t, base)
	a, b := addr("198.51.100.7"), addr("203.0.113.9")
	for range 5 {
		d.Score(a, LoginFailed)
	}
	if d.Admit(a) {
		t.Fatal("a not banned after 10 points")
	}
	for range 2 {
		d.Score(b, LoginFailed) // 4 of 10 points
	}

	// Lower the threshold: b's 4 points count, so one more failure bans it.
	next := base
	next.Threshold = 6
	next.Allow = prefixes("198.51.100.0/24")
	next.Deny = prefixes("192.0.2.0/24")
	if err := d.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	if !d.Admit(a) {
		t.Error("a is on the new allow list but still refused")
	}
	if len(d.Bans()) != 1 {
		t.Errorf("bans after reload = %v, want a's ban kept", d.Bans())
	}
	if d.Admit(addr("192.0.2.1")) {
		t.Error("the new deny list is not applied")
	}
	d.Score(b, LoginFailed)
	if d.Admit(b) {
		t.Error("b has 6 points and the threshold is now 6, but it is admitted")
	}

	// A bad config changes nothing.
	bad := next
	bad.Threshold = 3
	bad.Weights = map[Event]int{"made_up": 1}
	if err := d.Reconfigure(bad); err == nil || CheckReconfigure(bad) == nil {
		t.Fatal("Reconfigure took an unknown event")
	}
	if !d.Admit(a) || d.Admit(addr("192.0.2.1")) {
		t.Error("a failed Reconfigure changed the lists")
	}
}
