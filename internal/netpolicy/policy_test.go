package netpolicy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// fakeSource is an AddressSource with a fixed answer that records the local
// address it was asked about.
type fakeSource struct {
	addr  netip.Addr
	err   error
	name  string
	local *netip.Addr
}

func (f fakeSource) PassiveAddr(_ context.Context, local netip.Addr) (netip.Addr, error) {
	if f.local != nil {
		*f.local = local
	}
	return f.addr, f.err
}

func (f fakeSource) String() string { return f.name }

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestPolicyPassiveAddr(t *testing.T) {
	t.Parallel()
	eip := StaticAddress(ip("203.0.113.10"))
	vpnEIP := StaticAddress(ip("198.51.100.7"))
	rules := []Rule{
		{Clients: pfx("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")}, // control
		{Clients: pfx("100.64.0.0/10"), Source: vpnEIP},
		{Clients: pfx("203.0.113.0/24"), Source: nil},
		{Clients: pfx("0.0.0.0/0"), Source: eip},
		{Clients: pfx("0.0.0.0/0"), Source: vpnEIP}, // never reached
	}
	local := ip("10.0.1.5")
	tests := []struct {
		name          string
		rules         []Rule
		client, local netip.Addr
		want          netip.Addr
	}{
		{"vpn client gets control", rules, ip("10.9.9.9"), local, local},
		{"second prefix of the rule", rules, ip("172.31.255.1"), local, local},
		{"third prefix of the rule", rules, ip("192.168.1.1"), local, local},
		{"cgnat rule", rules, ip("100.64.0.1"), local, ip("198.51.100.7")},
		{"just outside cgnat", rules, ip("100.128.0.1"), local, ip("203.0.113.10")},
		{"nil source in a later rule", rules, ip("203.0.113.99"), local, local},
		{"internet client, first match wins", rules, ip("8.8.8.8"), local, ip("203.0.113.10")},
		{"mapped client unmapped before matching", rules, ip("::ffff:10.1.2.3"), local, local},
		{"mapped client, public", rules, ip("::ffff:8.8.8.8"), local, ip("203.0.113.10")},
		{"mapped local unmapped", rules, ip("10.1.2.3"), ip("::ffff:10.0.1.5"), local},
		{"ipv6 client matches no ipv4 rule", rules, ip("2001:db8::1"), ip("2001:db8::5"), ip("2001:db8::5")},
		{"no rules: local", nil, ip("8.8.8.8"), local, local},
		{"no rules, mapped local", nil, ip("8.8.8.8"), ip("::ffff:10.0.1.5"), local},
		{"no match: local", []Rule{{Clients: pfx("192.0.2.0/24"), Source: eip}}, ip("8.8.8.8"), local, local},
		{"rule with no clients never matches", []Rule{{Source: eip}}, ip("8.8.8.8"), local, local},
		{"unmasked prefix", []Rule{{Clients: pfx("10.1.2.3/8"), Source: eip}}, ip("10.200.0.1"), local, ip("203.0.113.10")},
		{"ipv6 rule", []Rule{{Clients: pfx("2001:db8::/32"), Source: eip}}, ip("2001:db8:1::1"), local, ip("203.0.113.10")},
		{"source answer unmapped", []Rule{{Clients: pfx("0.0.0.0/0"), Source: StaticAddress(ip("::ffff:203.0.113.10"))}}, ip("8.8.8.8"), local, ip("203.0.113.10")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Policy{Rules: tc.rules}
			got, err := p.PassiveAddr(context.Background(), tc.client, tc.local)
			if err != nil {
				t.Fatalf("PassiveAddr(%v, %v): %v", tc.client, tc.local, err)
			}
			if got != tc.want {
				t.Fatalf("PassiveAddr(%v, %v) = %v, want %v", tc.client, tc.local, got, tc.want)
			}
		})
	}
}

func TestPolicyPassesLocalToSource(t *testing.T) {
	t.Parallel()
	var asked netip.Addr
	p := &Policy{Rules: []Rule{{
		Clients: pfx("0.0.0.0/0"),
		Source:  fakeSource{addr: ip("198.51.100.1"), name: "fake", local: &asked},
	}}}
	got, err := p.PassiveAddr(context.Background(), ip("8.8.8.8"), ip("::ffff:10.0.0.7"))
	if err != nil {
		t.Fatal(err)
	}
	if got != ip("198.51.100.1") {
		t.Fatalf("got %v", got)
	}
	if asked != ip("10.0.0.7") {
		t.Fatalf("source was asked about local %v, want the unmapped 10.0.0.7", asked)
	}
}

func TestPolicySourceErrorWrapped(t *testing.T) {
	t.Parallel()
	boom := errors.New("imds unreachable")
	p := &Policy{Rules: []Rule{
		{Clients: pfx("0.0.0.0/0"), Source: fakeSource{err: boom, name: "aws"}},
		{Clients: pfx("0.0.0.0/0")}, // no silent fallback to a later rule
	}}
	got, err := p.PassiveAddr(context.Background(), ip("8.8.8.8"), ip("10.0.0.7"))
	if err == nil {
		t.Fatalf("PassiveAddr = %v, want an error", got)
	}
	if !errors.Is(err, boom) {
		t.Fatalf("error %q does not wrap the source's error", err)
	}
	if !strings.Contains(err.Error(), "aws") || !strings.HasPrefix(err.Error(), "netpolicy:") {
		t.Fatalf("error %q should name the package and the source", err)
	}
	if got.IsValid() {
		t.Fatalf("address %v returned with an error", got)
	}
}

func TestStaticAddress(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"203.0.113.10", "10.0.0.1", "2001:db8::1"} {
		a := StaticAddress(ip(s))
		for _, local := range []netip.Addr{ip("10.0.0.5"), ip("192.168.1.1"), {}} {
			got, err := a.PassiveAddr(context.Background(), local)
			if err != nil || got != ip(s) {
				t.Fatalf("StaticAddress(%s).PassiveAddr(%v) = %v, %v", s, local, got, err)
			}
		}
		if a.String() != s {
			t.Fatalf("String() = %q, want %q", a.String(), s)
		}
	}
	var _ AddressSource = StaticAddress{}
}

func TestRuleMatches(t *testing.T) {
	t.Parallel()
	r := Rule{Clients: pfx("10.0.0.0/8", "2001:db8::/32")}
	tests := []struct {
		client string
		want   bool
	}{
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"11.0.0.0", false},
		{"::ffff:10.0.0.1", true},
		{"2001:db8::1", true},
		{"2001:db9::1", false},
	}
	for _, tc := range tests {
		if got := r.Matches(ip(tc.client)); got != tc.want {
			t.Errorf("Matches(%s) = %v, want %v", tc.client, got, tc.want)
		}
	}
	if (Rule{}).Matches(ip("10.0.0.1")) {
		t.Error("a rule without clients matched")
	}
}

func TestNeedsWarning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		client, addr string
		want         bool
	}{
		// Public client, non-public address: the NAT failure.
		{"203.0.113.50", "10.0.1.5", true},
		{"203.0.113.50", "172.16.0.1", true},
		{"203.0.113.50", "192.168.1.10", true},
		{"203.0.113.50", "127.0.0.1", true},
		{"203.0.113.50", "100.64.0.1", true},
		{"203.0.113.50", "100.127.255.254", true},
		{"203.0.113.50", "169.254.169.254", true},
		{"203.0.113.50", "0.0.0.0", true},
		{"198.51.100.1", "::ffff:10.0.0.1", true},
		{"::ffff:198.51.100.1", "10.0.0.1", true},
		{"2001:db8::1", "fd00::1", true},
		{"2001:db8::1", "::1", true},
		// Public address: fine for everyone.
		{"203.0.113.50", "198.51.100.10", false},
		{"203.0.113.50", "100.128.0.1", false}, // just past 100.64/10
		{"203.0.113.50", "100.63.255.255", false},
		{"10.0.0.9", "198.51.100.10", false},
		{"2001:db8::1", "2001:db8::5", false},
		// Private, loopback or CGNAT client: it can reach private addresses.
		{"10.0.0.9", "10.0.1.5", false},
		{"192.168.1.2", "10.0.1.5", false},
		{"127.0.0.1", "127.0.0.1", false},
		{"100.64.1.1", "10.0.1.5", false},
		{"::ffff:10.0.0.9", "10.0.1.5", false},
		{"fd00::2", "fd00::1", false},
	}
	for _, tc := range tests {
		if got := NeedsWarning(ip(tc.client), ip(tc.addr)); got != tc.want {
			t.Errorf("NeedsWarning(%s, %s) = %v, want %v", tc.client, tc.addr, got, tc.want)
		}
	}
}

func TestCheckActiveTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		client, target string
		wantErr        bool
		privileged     bool
	}{
		{"203.0.113.5", "203.0.113.5:50000", false, false},
		{"203.0.113.5", "203.0.113.5:1024", false, false},
		{"203.0.113.5", "203.0.113.5:65535", false, false},
		{"203.0.113.5", "203.0.113.5:1023", true, true},
		{"203.0.113.5", "203.0.113.5:21", true, true},
		{"203.0.113.5", "203.0.113.5:0", true, true},
		{"203.0.113.5", "203.0.113.6:50000", true, false},
		{"203.0.113.5", "10.0.0.1:50000", true, false},
		{"203.0.113.5", "127.0.0.1:50000", true, false},
		{"::ffff:203.0.113.5", "203.0.113.5:50000", false, false},
		{"203.0.113.5", "[::ffff:203.0.113.5]:50000", false, false},
		{"::ffff:203.0.113.5", "203.0.113.6:50000", true, false},
		{"2001:db8::1", "[2001:db8::1]:50000", false, false},
		{"2001:db8::1", "[2001:db8::2]:50000", true, false},
		{"2001:db8::1", "[2001:db8::1]:80", true, true},
	}
	for _, tc := range tests {
		err := CheckActiveTarget(ip(tc.client), netip.MustParseAddrPort(tc.target))
		if !tc.wantErr {
			if err != nil {
				t.Errorf("CheckActiveTarget(%s, %s): %v, want ok", tc.client, tc.target, err)
			}
			continue
		}
		if !errors.Is(err, ErrBounce) {
			t.Errorf("CheckActiveTarget(%s, %s): %v, want ErrBounce", tc.client, tc.target, err)
			continue
		}
		if tc.privileged && !strings.Contains(err.Error(), "privileged") {
			t.Errorf("CheckActiveTarget(%s, %s): %q should say the port is privileged", tc.client, tc.target, err)
		}
	}
}

func TestAdvertisedPort(t *testing.T) {
	p := &Policy{Rules: []Rule{
		{Clients: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Clients: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, PortOffset: -20000},
		{Clients: []netip.Prefix{netip.MustParsePrefix("::/0")}, PortOffset: 1000},
	}}
	for _, tc := range []struct {
		client string
		port   uint16
		want   uint16
	}{
		{"10.1.2.3", 50000, 50000},           // first rule: no mapping
		{"203.0.113.7", 50000, 30000},        // the public range
		{"::ffff:203.0.113.7", 50009, 30009}, // mapped IPv4 counts as IPv4
		{"2001:db8::1", 50000, 51000},
	} {
		if got := p.AdvertisedPort(netip.MustParseAddr(tc.client), tc.port); got != tc.want {
			t.Errorf("AdvertisedPort(%s, %d) = %d, want %d", tc.client, tc.port, got, tc.want)
		}
	}
	if got := (&Policy{}).AdvertisedPort(netip.MustParseAddr("203.0.113.7"), 50000); got != 50000 {
		t.Errorf("no rules: %d, want the bound port", got)
	}
}
