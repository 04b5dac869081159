package defender

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordShare is a Share that records what it is told.
type recordShare struct {
	mu  sync.Mutex
	log []string
}

func (r *recordShare) add(format string, args ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recordShare) Scored(key netip.Prefix, points int) { r.add("scored %s %d", key, points) }
func (r *recordShare) Banned(b Ban)                        { r.add("banned %s manual=%v", b.Prefix, b.Manual) }
func (r *recordShare) Unbanned(p netip.Prefix)             { r.add("unbanned %s", p) }

func (r *recordShare) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.log, "; ")
}

// TestShareHearsOwnDecisions: Share hears of the points that did not ban,
// of the bans made by scoring and by hand, and of unbans; not of bans
// applied from elsewhere, nor of events of allowed or banned addresses.
func TestShareHearsOwnDecisions(t *testing.T) {
	d, _ := newTest(t, Config{Allow: prefixes("10.0.0.0/8")})
	r := &recordShare{}
	d.SetShare(r)
	a := addr("2001:db8::1")
	for range 5 {
		d.Score(a, LoginFailed)
	}
	d.Score(a, LoginFailed)                // banned: not scored
	d.Score(addr("10.1.1.1"), LoginFailed) // allowed
	d.Ban(netip.MustParsePrefix("192.0.2.0/24"), time.Hour, "")
	d.Unban(netip.MustParsePrefix("192.0.2.0/24"))
	d.Apply(Ban{Prefix: netip.MustParsePrefix("198.51.100.1/32"), Since: time.Now(), Strikes: 1})
	d.Lift(netip.MustParsePrefix("198.51.100.1/32"))
	want := "scored 2001:db8::/64 2; scored 2001:db8::/64 2; scored 2001:db8::/64 2; scored 2001:db8::/64 2; " +
		"banned 2001:db8::/64 manual=false; banned 192.0.2.0/24 manual=true; unbanned 192.0.2.0/24"
	if r.String() != want {
		t.Errorf("Share heard:\n%s\nwant:\n%s", r, want)
	}
	d.SetShare(nil)
	d.Score(addr("192.0.2.9"), LoginFailed)
	if strings.Contains(r.String(), "192.0.2.9") {
		t.Error("Share heard after SetShare(nil)")
	}
}

// TestApply: a ban from elsewhere is taken with its times and strikes, is
// logged and given to OnBan once, refuses at accept, ends the address's
// score, and feeds the escalation of the next local ban.
func TestApply(t *testing.T) {
	var buf bytes.Buffer
	var onBan []Ban
	d, c := newTest(t, Config{Logger: slog.New(slog.NewTextHandler(&buf, nil)), OnBan: func(b Ban) { onBan = append(onBan, b) }})
	a := addr("203.0.113.5")
	d.Score(a, LoginFailed)
	now := c.Now()
	b := Ban{Prefix: netip.MustParsePrefix("203.0.113.5/32"), Reason: "10 points in 5m0s on 2 nodes", Since: now.Add(-time.Minute),
		Until: now.Add(time.Hour), Strikes: 3, Node: "node-2"}
	d.Apply(b)
	d.Apply(b) // again, as a notification of the node's own write brings it back
	if d.Admit(a) {
		t.Fatal("admitted under an applied ban")
	}
	got := d.Bans()
	if len(got) != 1 || got[0].Strikes != 3 || !got[0].Since.Equal(b.Since) || !got[0].Until.Equal(b.Until) || got[0].Node != "node-2" {
		t.Errorf("Bans() = %+v, want %+v", got, b)
	}
	if len(onBan) != 1 || strings.Count(buf.String(), `msg="defender: banned"`) != 1 || !strings.Contains(buf.String(), "node=node-2") {
		t.Errorf("OnBan %d times; log:\n%s", len(onBan), buf.String())
	}
	if d.Stats().Tracked != 0 {
		t.Error("the score of an address banned from elsewhere was kept")
	}
	// A longer ban of the same prefix changes it without a new OnBan.
	b.Until = now.Add(2 * time.Hour)
	d.Apply(b)
	if len(onBan) != 1 || !d.Bans()[0].Until.Equal(b.Until) {
		t.Errorf("renewed ban: OnBan %d, bans %+v", len(onBan), d.Bans())
	}
	// Ended: remembered, so the next local ban is strike 4, 8x ban_time.
	c.Advance(3 * time.Hour)
	if !d.Admit(a) {
		t.Fatal("refused after the applied ban ended")
	}
	for range 5 {
		d.Score(a, LoginFailed)
	}
	if got := d.Bans(); len(got) != 1 || got[0].Strikes != 4 || got[0].Until.Sub(got[0].Since) != 8*DefaultBanTime {
		t.Errorf("local ban after an applied one: %+v, want strike 4 for %v", got, 8*DefaultBanTime)
	}
	// A ban whose strikes are long forgotten is not kept at all.
	old := Ban{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Since: c.Now().Add(-72 * time.Hour), Until: c.Now().Add(-48 * time.Hour), Strikes: 1}
	d.Apply(old)
	if d.bans.len() != 1 {
		t.Errorf("%d entries, want the forgotten ban left out", d.bans.len())
	}
}

// TestLiftAndReplace: Lift removes a ban and its strikes; Replace makes
// the list exactly the given one, calling OnBan for the new bans alone.
func TestLiftAndReplace(t *testing.T) {
	var onBan []string
	d, c := newTest(t, Config{OnBan: func(b Ban) { onBan = append(onBan, b.Prefix.String()) }})
	now := c.Now()
	ban := func(p string) Ban {
		return Ban{Prefix: netip.MustParsePrefix(p), Since: now, Until: now.Add(time.Hour), Strikes: 1}
	}
	d.Ban(netip.MustParsePrefix("192.0.2.1/32"), time.Hour, "")
	if !d.Lift(netip.MustParsePrefix("192.0.2.1/32")) || !d.Admit(addr("192.0.2.1")) {
		t.Error("Lift did not lift")
	}
	if d.Lift(netip.MustParsePrefix("192.0.2.1/32")) {
		t.Error("second Lift reported a ban")
	}
	d.Ban(netip.MustParsePrefix("192.0.2.2/32"), time.Hour, "local only")
	d.Apply(ban("192.0.2.3/32"))
	onBan = nil
	d.Replace([]Ban{ban("192.0.2.3/32"), ban("198.51.100.0/24"), {Prefix: netip.MustParsePrefix("2001:db8::/64"), Since: now, Strikes: 2}})
	var got []string
	for _, b := range d.Bans() {
		got = append(got, b.Prefix.String())
	}
	if want := "192.0.2.3/32 198.51.100.0/24 2001:db8::/64"; strings.Join(got, " ") != want {
		t.Errorf("after Replace: %v, want %s", got, want)
	}
	if strings.Join(onBan, " ") != "198.51.100.0/24 2001:db8::/64" {
		t.Errorf("OnBan after Replace: %v, want the two new bans", onBan)
	}
	if !d.Admit(addr("192.0.2.2")) {
		t.Error("a ban missing from the list Replace got still refuses")
	}
}

func TestBanLength(t *testing.T) {
	l := Limits{BanTime: 15 * time.Minute, MaxBanTime: 24 * time.Hour}
	for strikes, want := range map[int]time.Duration{1: 15 * time.Minute, 2: 30 * time.Minute, 4: 2 * time.Hour, 7: 16 * time.Hour, 8: 24 * time.Hour, 100: 24 * time.Hour} {
		if got := l.BanLength(strikes); got != want {
			t.Errorf("BanLength(%d) = %v, want %v", strikes, got, want)
		}
	}
}
