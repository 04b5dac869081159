package defender

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// prefixMap maps prefixes to values, and finds the prefixes containing an
// address with one map lookup per prefix length in use, longest first.
// Admit's cost is these lookups, so the keys are integers rather than
// netip.Prefix values, which hash three times slower: an IPv4 prefix is
// its address as a uint64, an IPv6 prefix of at most /64 its upper half,
// and only a longer IPv6 prefix (allow and deny lists may hold a /128)
// needs both halves.
type prefixMap[V any] struct {
	v4, v6 []*level[V] // longest first; replaced, never changed in place
	n      int
}

// level holds the prefixes of one length and family.
type level[V any] struct {
	bits  int
	short map[uint64]V    // IPv4, and IPv6 of at most 64 bits
	long  map[[2]uint64]V // IPv6 longer than 64 bits
}

// levels returns the levels to search for a (unmapped), longest first.
func (m *prefixMap[V]) levels(a netip.Addr) []*level[V] {
	if a.Is4() {
		return m.v4
	}
	return m.v6
}

// find looks a up (unmapped, same family) at this level's length.
func (l *level[V]) find(a netip.Addr) (V, bool) {
	if l.long != nil {
		v, ok := l.long[key2(a, l.bits)]
		return v, ok
	}
	v, ok := l.short[key1(a, l.bits)]
	return v, ok
}

// key1 is the key of a masked to bits, for IPv4 and IPv6 up to /64.
func key1(a netip.Addr, bits int) uint64 {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) & mask(32, bits)
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]) & mask(64, bits)
}

// key2 is the key of a masked to bits, for IPv6 longer than /64.
func key2(a netip.Addr, bits int) [2]uint64 {
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]) & mask(64, bits-64)}
}

// mask keeps the top bits of a width-bit number.
func mask(width, bits int) uint64 {
	if bits <= 0 {
		return 0
	}
	return (1<<width - 1) &^ (1<<(width-bits) - 1)
}

// level returns the level of p's length, creating it when add is set.
func (m *prefixMap[V]) level(p netip.Prefix, add bool) *level[V] {
	list := &m.v6
	if p.Addr().Is4() {
		list = &m.v4
	}
	i, found := slices.BinarySearchFunc(*list, p.Bits(), func(l *level[V], bits int) int { return bits - l.bits })
	if found {
		return (*list)[i]
	}
	if !add {
		return nil
	}
	l := &level[V]{bits: p.Bits()}
	if p.Addr().Is6() && p.Bits() > 64 {
		l.long = make(map[[2]uint64]V)
	} else {
		l.short = make(map[uint64]V)
	}
	// A new slice: a reader holding the old one under the lock's read
	// side is not disturbed, and the slice stays sorted.
	*list = slices.Insert(slices.Clone(*list), i, l)
	return l
}

// get returns the value of p (masked, unmapped).
func (m *prefixMap[V]) get(p netip.Prefix) (V, bool) {
	if l := m.level(p, false); l != nil {
		return l.find(p.Addr())
	}
	var zero V
	return zero, false
}

// set maps p (masked, unmapped) to v.
func (m *prefixMap[V]) set(p netip.Prefix, v V) {
	l := m.level(p, true)
	a, n := p.Addr(), 0
	if l.long != nil {
		k := key2(a, l.bits)
		if _, ok := l.long[k]; !ok {
			n = 1
		}
		l.long[k] = v
	} else {
		k := key1(a, l.bits)
		if _, ok := l.short[k]; !ok {
			n = 1
		}
		l.short[k] = v
	}
	m.n += n
}

// del removes p (masked, unmapped), dropping its level when it empties.
func (m *prefixMap[V]) del(p netip.Prefix) {
	l := m.level(p, false)
	if l == nil {
		return
	}
	a, size := p.Addr(), 0
	if l.long != nil {
		k := key2(a, l.bits)
		if _, ok := l.long[k]; ok {
			m.n--
		}
		delete(l.long, k)
		size = len(l.long)
	} else {
		k := key1(a, l.bits)
		if _, ok := l.short[k]; ok {
			m.n--
		}
		delete(l.short, k)
		size = len(l.short)
	}
	if size == 0 {
		list := &m.v6
		if a.Is4() {
			list = &m.v4
		}
		*list = slices.DeleteFunc(slices.Clone(*list), func(x *level[V]) bool { return x == l })
	}
}

// len is the number of prefixes.
func (m *prefixMap[V]) len() int { return m.n }

// all yields every prefix and its value, in no order. The map must not be
// changed while iterating.
func (m *prefixMap[V]) all(yield func(netip.Prefix, V) bool) {
	for _, l := range m.v4 {
		for k, v := range l.short {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], uint32(k))
			if !yield(netip.PrefixFrom(netip.AddrFrom4(b), l.bits), v) {
				return
			}
		}
	}
	for _, l := range m.v6 {
		for k, v := range l.short {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], k)
			if !yield(netip.PrefixFrom(netip.AddrFrom16(b), l.bits), v) {
				return
			}
		}
		for k, v := range l.long {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:8], k[0])
			binary.BigEndian.PutUint64(b[8:], k[1])
			if !yield(netip.PrefixFrom(netip.AddrFrom16(b), l.bits), v) {
				return
			}
		}
	}
}
