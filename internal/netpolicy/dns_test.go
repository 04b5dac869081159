package netpolicy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// stubResolver answers LookupNetIP from fields the test sets.
type stubResolver struct {
	mu       sync.Mutex
	addrs    []netip.Addr
	err      error
	calls    int
	networks []string
	hosts    []string
	deadline time.Duration // time left before the first call's deadline; 0 without one
}

func newStubResolver(addrs ...string) *stubResolver {
	r := &stubResolver{}
	r.answer(addrs...)
	return r
}

// answer makes later lookups return addrs.
func (r *stubResolver) answer(addrs ...string) {
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	r.mu.Lock()
	r.addrs, r.err = as, nil
	r.mu.Unlock()
}

// fail makes later lookups fail with err.
func (r *stubResolver) fail(err error) {
	r.mu.Lock()
	r.addrs, r.err = nil, err
	r.mu.Unlock()
}

func (r *stubResolver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func (r *stubResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == 0 {
		if d, ok := ctx.Deadline(); ok {
			r.deadline = time.Until(d)
		}
	}
	r.calls++
	r.networks = append(r.networks, network)
	r.hosts = append(r.hosts, host)
	return r.addrs, r.err
}

func dnsPassive(t testing.TB, d *DNSAddress) netip.Addr {
	t.Helper()
	a, err := d.PassiveAddr(context.Background(), netip.MustParseAddr("10.0.0.5"))
	if err != nil {
		t.Fatalf("PassiveAddr: %v", err)
	}
	return a
}

func TestDNSAddressStart(t *testing.T) {
	r := newStubResolver("198.51.100.10")
	d, err := NewDNSAddress(context.Background(), "ftp.example.com", DNSOptions{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dnsPassive(t, d), netip.MustParseAddr("198.51.100.10"); got != want {
		t.Errorf("PassiveAddr = %v, want %v", got, want)
	}
	if got := d.String(); got != "dns:ftp.example.com" {
		t.Errorf("String() = %q", got)
	}
	if len(r.networks) != 1 || r.networks[0] != "ip4" || r.hosts[0] != "ftp.example.com" {
		t.Errorf("lookups = %v %v, want one ip4 lookup of ftp.example.com", r.networks, r.hosts)
	}
	if r.deadline <= 0 || r.deadline > dnsLookupTimeout {
		t.Errorf("start-up lookup deadline %v away, want a bound of at most %v", r.deadline, dnsLookupTimeout)
	}
	// PassiveAddr answers from memory: no lookup per PASV.
	dnsPassive(t, d)
	if r.count() != 1 {
		t.Errorf("%d lookups after PassiveAddr, want 1", r.count())
	}
}

func TestDNSAddressStartErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*stubResolver)
		want  []string
	}{
		{"lookup fails", func(r *stubResolver) { r.fail(errors.New("no such host")) },
			[]string{`"ftp.example.com"`, "no such host"}},
		{"empty answer", func(r *stubResolver) { r.answer() },
			[]string{`"ftp.example.com"`, "no IPv4 address"}},
		{"IPv6 only", func(r *stubResolver) { r.answer("2001:db8::10") },
			[]string{`"ftp.example.com"`, "no IPv4 address", "2001:db8::10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newStubResolver()
			tc.setup(r)
			d, err := NewDNSAddress(context.Background(), "ftp.example.com", DNSOptions{Resolver: r})
			if err == nil {
				t.Fatalf("NewDNSAddress succeeded with %v", d.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := NewDNSAddress(context.Background(), "", DNSOptions{Resolver: newStubResolver("198.51.100.10")}); err == nil {
		t.Error("empty host name accepted")
	}
}

func TestDNSAddressMixedAnswerUsesIPv4(t *testing.T) {
	// A resolver may hand back AAAA records or IPv4-mapped addresses even
	// for "ip4"; only a real IPv4 address fits a PASV reply.
	r := newStubResolver("2001:db8::10", "::ffff:198.51.100.20")
	d, err := NewDNSAddress(context.Background(), "ftp.example.com", DNSOptions{Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dnsPassive(t, d), netip.MustParseAddr("198.51.100.20"); got != want {
		t.Errorf("PassiveAddr = %v, want %v", got, want)
	}
}

func TestDNSAddressRefresh(t *testing.T) {
	logs, logger := newDiscLog()
	r := newStubResolver("198.51.100.10")
	d, err := NewDNSAddress(context.Background(), "ftp.example.com",
		DNSOptions{Resolver: r, Refresh: 2 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	discRun(t, d.Run)

	first, second := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.7")
	r.answer(second.String())
	discWait(t, "the new address", func() bool { return dnsPassive(t, d) == second })
	// The address is in use before its log line is written: wait for it.
	changed := func() int {
		return logs.count("level=INFO", "passive address changed", "old=198.51.100.10", "new=203.0.113.7")
	}
	discWait(t, "the change logged", func() bool { return changed() > 0 })
	if changed() != 1 {
		t.Errorf("change not logged once with old and new:\n%s", logs)
	}

	// A failing resolver keeps the last good address, warns once.
	r.fail(errors.New("server misbehaving"))
	n := r.count()
	discWait(t, "failed lookups", func() bool { return r.count() >= n+5 })
	if got := dnsPassive(t, d); got != second {
		t.Errorf("PassiveAddr during DNS failure = %v, want last good %v", got, second)
	}
	// An IPv6-only answer during refresh is a failure too, not a change.
	r.answer("2001:db8::10")
	n = r.count()
	discWait(t, "more lookups", func() bool { return r.count() >= n+3 })
	if got := dnsPassive(t, d); got != second {
		t.Errorf("PassiveAddr after IPv6-only answer = %v, want last good %v", got, second)
	}
	if c := logs.count("level=WARN", "dns:ftp.example.com"); c != 1 {
		t.Errorf("%d warnings for one failure streak, want 1:\n%s", c, logs)
	}

	r.answer(first.String())
	discWait(t, "recovery", func() bool { return dnsPassive(t, d) == first })
	discWait(t, "recovery logged", func() bool { return logs.count("level=INFO", "recovered", "dns:ftp.example.com") == 1 })
}

func TestDNSAddressRoundRobinIsStable(t *testing.T) {
	// A name with several A records, answered in rotating order, must not
	// flip the advertised address on every refresh.
	logs, logger := newDiscLog()
	r := newStubResolver("198.51.100.10", "198.51.100.11")
	d, err := NewDNSAddress(context.Background(), "ftp.example.com",
		DNSOptions{Resolver: r, Refresh: 2 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	want := dnsPassive(t, d)
	if logs.count("several IPv4 addresses") != 1 {
		t.Errorf("several A records not logged at start:\n%s", logs)
	}
	r.answer("198.51.100.11", "198.51.100.10")
	discRun(t, d.Run)
	n := r.count()
	discWait(t, "refreshes", func() bool { return r.count() >= n+5 })
	if got := dnsPassive(t, d); got != want {
		t.Errorf("PassiveAddr = %v after a reordered answer, want %v", got, want)
	}
	if logs.count("passive address changed") != 0 {
		t.Errorf("change logged for a reordered answer:\n%s", logs)
	}
}
