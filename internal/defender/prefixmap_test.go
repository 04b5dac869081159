package defender

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestPrefixMap(t *testing.T) {
	var m prefixMap[string]
	all := []string{"0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3/32", "::/0", "2001:db8::/32",
		"2001:db8:1::/64", "2001:db8:1::1/128", "2001:db8:1::/127"}
	for _, s := range all {
		m.set(netip.MustParsePrefix(s), s)
	}
	m.set(netip.MustParsePrefix("10.0.0.0/8"), "10.0.0.0/8") // replacing does not count twice
	if m.len() != len(all) {
		t.Errorf("len = %d, want %d", m.len(), len(all))
	}
	longest := func(a string) string {
		ip := netip.MustParseAddr(a)
		var hits []string
		for _, l := range m.levels(ip) {
			if v, ok := l.find(ip); ok {
				hits = append(hits, v)
			}
		}
		return fmt.Sprint(hits)
	}
	for _, tc := range []struct{ addr, want string }{
		{"10.1.2.3", "[10.1.2.3/32 10.1.0.0/16 10.0.0.0/8 0.0.0.0/0]"},
		{"10.1.2.4", "[10.1.0.0/16 10.0.0.0/8 0.0.0.0/0]"},
		{"192.0.2.1", "[0.0.0.0/0]"},
		{"2001:db8:1::1", "[2001:db8:1::1/128 2001:db8:1::/127 2001:db8:1::/64 2001:db8::/32 ::/0]"},
		{"2001:db8:1::ffff", "[2001:db8:1::/64 2001:db8::/32 ::/0]"},
		{"2001:db9::", "[::/0]"},
	} {
		if got := longest(tc.addr); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.addr, got, tc.want)
		}
	}
	var got []string
	for p, v := range m.all {
		if p.String() != v {
			t.Errorf("all: %s holds %s", p, v)
		}
		got = append(got, v)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(all))
	if !slices.Equal(got, want) {
		t.Errorf("all = %v", got)
	}
	for _, s := range all {
		m.del(netip.MustParsePrefix(s))
		m.del(netip.MustParsePrefix(s))
	}
	if m.len() != 0 || len(m.v4) != 0 || len(m.v6) != 0 {
		t.Errorf("after deleting all: %d entries, %d+%d levels", m.len(), len(m.v4), len(m.v6))
	}
}
