// Package firewall derives from a cloudftpd config the network rules it
// needs (each listener's control port, the passive ranges, the metrics
// listener towards private networks only, outbound connections for active
// mode) and writes them for the firewalls people use: an EC2 security
// group (aws-cli, CloudFormation, Terraform), nftables, iptables, ufw and
// firewalld.
//
// FTP needs more than its control port: every listing and transfer opens a
// data connection to a passive port, and a security group has no FTP
// helper, so a range missing there shows as "login works, ls hangs".
// Rules come from the config itself, so they cannot drift from it.
package firewall

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cloudftpd/cloudftpd/internal/config"
)

// Everyone are the sources of a public rule.
var Everyone = []string{"0.0.0.0/0", "::/0"}

// Private are the sources of a rule that only private networks may use
// (RFC 1918 and IPv6 unique local addresses).
var Private = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}

// KernelPorts is Linux's default ephemeral range
// (net.ipv4.ip_local_port_range), where passive ports come from when a
// listener sets no passive_ports.
const KernelPorts = "32768-60999"

// SGQuota is the default number of inbound rules per security group (per
// address family). Each port range and source is one rule.
const SGQuota = 60

// Rule allows TCP to a port range from some sources (inbound) or to some
// destinations (outbound).
type Rule struct {
	Lo, Hi   uint16
	Sources  []string // CIDRs; for an outbound rule, the destinations
	Outbound bool
	Why      []string // what needs it: "listener[0] control (0.0.0.0:21)"
}

// Ports is "21" or "50000-50100".
func (r Rule) Ports() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Description is the rule's reasons, for a comment or description.
func (r Rule) Description() string { return "cloudftpd " + strings.Join(r.Why, ", ") }

// Set is the rules a config needs and the warnings about them.
type Set struct {
	Rules    []Rule
	Warnings []string
}

// FromConfig derives the rules. cfg must be validated.
func FromConfig(cfg *config.Config) *Set {
	s := &Set{}
	var active []string // the families of the listeners that allow PORT/EPRT
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		ap := l.AddrPort()
		if ap.Addr().IsLoopback() {
			s.Warnings = append(s.Warnings, fmt.Sprintf("listener[%d] listens on %s, reached from this machine only: no rule", i, l.Address))
			continue
		}
		src := sources(ap.Addr())
		what := "control"
		if l.TLS == config.TLSImplicit {
			what = "implicit FTPS"
		}
		s.Rules = append(s.Rules, Rule{Lo: ap.Port(), Hi: ap.Port(), Sources: src,
			Why: []string{fmt.Sprintf("listener[%d] %s (%s)", i, what, l.Address)}})
		lo, hi, ok := l.PortRange()
		if !ok {
			lo, hi, _ = config.ParsePortRange(KernelPorts)
			s.Warnings = append(s.Warnings, fmt.Sprintf("listener[%d] has no passive_ports: passive ports are chosen by the kernel (%s by default), all of which must be open; set listener.passive_ports to a small range", i, KernelPorts))
		}
		s.Rules = append(s.Rules, Rule{Lo: lo, Hi: hi, Sources: src,
			Why: []string{fmt.Sprintf("listener[%d] passive ports", i)}})
		if p := l.PublicPort; p != 0 && p != ap.Port() {
			s.Warnings = append(s.Warnings, fmt.Sprintf("listener[%d] is reached on port %d (public_port), mapped onto %d: these rules open %d on this machine; open %d where the mapping happens (the balancer's listener, the Kubernetes Service, the NAT)", i, p, ap.Port(), ap.Port(), p))
		}
		for j := range l.Passive {
			if off := l.Passive[j].PortOffset(); off != 0 && ok {
				s.Warnings = append(s.Warnings, fmt.Sprintf("listener[%d].passive[%d] tells its clients ports %d-%d (ports = %q), mapped onto the bound %d-%d: these rules open the bound range on this machine; open %d-%d where the mapping happens (the balancer's listeners, the Kubernetes Service, the NAT)",
					i, j, int(lo)+off, int(hi)+off, l.Passive[j].Ports, lo, hi, int(lo)+off, int(hi)+off))
			}
		}
		if l.ActiveAllowed() {
			for _, f := range src {
				if !slices.Contains(active, f) {
					active = append(active, f)
				}
			}
		}
	}
	if a := cfg.Metrics.Address; a != "" {
		if ap, err := netip.ParseAddrPort(normalize(a)); err == nil && !ap.Addr().IsLoopback() {
			s.Rules = append(s.Rules, Rule{Lo: ap.Port(), Hi: ap.Port(), Sources: privateFor(ap.Addr()),
				Why: []string{fmt.Sprintf("metrics (%s), private networks only", a)}})
		}
	}
	if len(active) > 0 {
		// Active-mode data connections go from an ephemeral port of
		// this machine to the client's port >= 1024 (never from port 20,
		// and never to a port below 1024: bounce protection).
		s.Rules = append(s.Rules, Rule{Lo: 1024, Hi: 65535, Sources: active, Outbound: true,
			Why: []string{"active mode data connections (PORT/EPRT) to clients, from ephemeral ports"}})
	}
	s.Rules = Merge(s.Rules)
	for _, fam := range []string{"IPv4", "IPv6"} {
		if n := s.count(fam == "IPv6", false); n > SGQuota {
			s.Warnings = append(s.Warnings, fmt.Sprintf("%d inbound %s rules: more than a security group's default quota of %d; merge the passive ranges, or ask AWS for a higher quota (Service Quotas: \"Inbound or outbound rules per security group\")", n, fam, SGQuota))
		}
	}
	return s
}

// count is the number of security group rules: one per range and source.
func (s *Set) count(ipv6, outbound bool) int {
	n := 0
	for _, r := range s.Rules {
		if r.Outbound != outbound {
			continue
		}
		for _, src := range r.Sources {
			if strings.Contains(src, ":") == ipv6 {
				n++
			}
		}
	}
	return n
}

// normalize turns ":9121" into "[::]:9121" for netip.
func normalize(a string) string {
	if strings.HasPrefix(a, ":") {
		return "[::]" + a
	}
	return a
}

// sources are everyone who can reach a listener on addr: IPv4 only for an
// IPv4 address, both for "::" (dual stack).
func sources(a netip.Addr) []string {
	switch {
	case a.Is4():
		return Everyone[:1]
	case a.IsUnspecified():
		return Everyone
	}
	return Everyone[1:]
}

func privateFor(a netip.Addr) []string {
	switch {
	case a.Is4():
		return Private[:3]
	case a.IsUnspecified():
		return Private
	}
	return Private[3:]
}

// Merge joins rules for the same sources and direction whose ranges
// overlap or touch (21 and 22; 50000-50100 and 50101-50200), and the same
// range needed twice, so each firewall gets as few rules as it can.
func Merge(rules []Rule) []Rule {
	key := func(r Rule) string { return fmt.Sprint(r.Outbound, r.Sources) }
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b Rule) int {
		return cmp.Or(cmp.Compare(key(a), key(b)), cmp.Compare(a.Lo, b.Lo))
	})
	var out []Rule
	for _, r := range sorted {
		if n := len(out); n > 0 && key(out[n-1]) == key(r) && int(r.Lo) <= int(out[n-1].Hi)+1 {
			last := &out[n-1]
			last.Hi = max(last.Hi, r.Hi)
			for _, w := range r.Why {
				if !slices.Contains(last.Why, w) {
					last.Why = append(last.Why, w)
				}
			}
			continue
		}
		r.Sources = slices.Clone(r.Sources)
		r.Why = slices.Clone(r.Why)
		out = append(out, r)
	}
	// Keep the order a reader expects: inbound public, inbound private,
	// outbound; by port within each.
	slices.SortStableFunc(out, func(a, b Rule) int {
		rank := func(r Rule) int {
			switch {
			case r.Outbound:
				return 2
			case slices.Contains(r.Sources, "0.0.0.0/0") || slices.Contains(r.Sources, "::/0"):
				return 0
			}
			return 1
		}
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Lo, b.Lo))
	})
	return out
}

// Inbound and Outbound split the rules.
func (s *Set) Inbound() []Rule  { return filter(s.Rules, false) }
func (s *Set) Outbound() []Rule { return filter(s.Rules, true) }

func filter(rs []Rule, out bool) []Rule {
	var o []Rule
	for _, r := range rs {
		if r.Outbound == out {
			o = append(o, r)
		}
	}
	return o
}
