package defender

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// benchDefender has 10,000 bans of IPv4 addresses and 10,000 of IPv6 /64s,
// a manual /24, and short allow and deny lists: a server under attack.
func benchDefender(b *testing.B) *Defender {
	d, err := New(Config{
		Allow: prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"),
		Deny:  prefixes("192.0.2.0/24"),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	for i := range 10_000 {
		d.Ban(netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32), time.Hour, "")
		d.Ban(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, byte(i >> 8), byte(i)}), 64), time.Hour, "")
	}
	d.Ban(netip.MustParsePrefix("203.0.113.0/24"), time.Hour, "")
	return d
}

func benchAdmit(b *testing.B, a netip.Addr, want bool) {
	d := benchDefender(b)
	if d.Admit(a) != want {
		b.Fatalf("Admit(%s) != %v", a, want)
	}
	b.ReportAllocs()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			d.Admit(a)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.Admit(a)
			}
		})
	})
}

// BenchmarkAdmitBanned is the cost of refusing a banned address.
func BenchmarkAdmitBanned(b *testing.B) { benchAdmit(b, addr("198.18.1.1"), false) }

// BenchmarkAdmitBannedIPv6 is the same for an address in a banned /64.
func BenchmarkAdmitBannedIPv6(b *testing.B) { benchAdmit(b, addr("2001:db8:101::abcd"), false) }

// BenchmarkAdmitClean is the cost of admitting an address with no ban,
// which looks at the /32 and the /24 ban lengths.
func BenchmarkAdmitClean(b *testing.B) { benchAdmit(b, addr("198.51.100.1"), true) }

// BenchmarkAdmitAllowed is an address of the allow list: no lock at all.
func BenchmarkAdmitAllowed(b *testing.B) { benchAdmit(b, addr("10.1.2.3"), true) }

// BenchmarkScore is the cost of a failed login that does not ban.
func BenchmarkScore(b *testing.B) {
	d, err := New(Config{Threshold: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		d.Score(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), NoCommand)
	}
}

// TestMemoryPerAddress measures the heap a score costs, so the memory
// bound stated by MaxTracked is a number: at the default cap, a flood of
// one-event addresses holds MaxTracked times this.
func TestMemoryPerAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 scores")
	}
	d, _ := newTest(t, Config{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range DefaultMaxTracked {
		d.Score(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), NoCommand)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / DefaultMaxTracked
	t.Logf("%.0f bytes per tracked address; %.1f MiB at MaxTracked=%d", per, per*DefaultMaxTracked/(1<<20), DefaultMaxTracked)
	if per > 512 {
		t.Errorf("%.0f bytes per tracked address", per)
	}
	runtime.KeepAlive(d)
}
