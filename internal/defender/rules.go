package defender

import (
	"fmt"
	"net/netip"
)

// verdict is what the static lists say about an address.
type verdict uint8

const (
	unlisted verdict = iota
	allowed
	denied
)

// rules are the allow and deny lists, looked up once per prefix length in
// use, longest first, so the longest match wins.
type rules struct {
	m prefixMap[verdict]
}

func newRules(allow, deny []netip.Prefix) (rules, error) {
	var r rules
	for _, l := range []struct {
		name string
		list []netip.Prefix
		v    verdict
	}{{"allow", allow, allowed}, {"deny", deny, denied}} {
		for _, p := range l.list {
			if !p.IsValid() {
				return r, fmt.Errorf("defender: %s: invalid prefix %v", l.name, p)
			}
			if p.Masked() != p {
				return r, fmt.Errorf("defender: %s: %s has host bits set (the network is %s)", l.name, p, p.Masked())
			}
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			if v, ok := r.m.get(p); ok && v != l.v {
				return r, fmt.Errorf("defender: %s is in both allow and deny", p)
			}
			r.m.set(p, l.v)
		}
	}
	return r, nil
}

// match returns the verdict of the longest prefix containing a
// (unmapped).
func (r *rules) match(a netip.Addr) verdict {
	for _, l := range r.m.levels(a) {
		if v, ok := l.find(a); ok {
			return v
		}
	}
	return unlisted
}

// allowedPrefix reports whether all of p is decided by an allow prefix
// (the longest list entry containing p is an allow one), so that a ban of
// p would change nothing, and returns that entry.
func (r *rules) allowedPrefix(p netip.Prefix) (netip.Prefix, bool) {
	for _, l := range r.m.levels(p.Addr()) {
		if l.bits > p.Bits() {
			continue
		}
		if v, ok := l.find(p.Addr()); ok {
			q, _ := p.Addr().Prefix(l.bits)
			return q, v == allowed
		}
	}
	return netip.Prefix{}, false
}
