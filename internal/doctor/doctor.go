// Package doctor checks a cloudftpd config against the machine it is to
// run on, without serving it (cloudftpd doctor): the users file, the
// storage and the server's write access to it, each listener's address,
// certificate and passive port range, and the address PASV replies would
// give each kind of client. It finds what makes a server that starts fine
// fail its clients, above all a private address sent to internet clients
// behind NAT.
//
// It builds the config with server.Wire, as serve and check-config do, so
// what it calls a failure is exactly what stops serve; its other checks
// (ports, permissions, PASV addresses) look further than serve can.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
	"github.com/cloudftpd/cloudftpd/internal/server"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Options adjusts Diagnose.
type Options struct {
	// LocalAddrs lists this machine's addresses, for listeners on a
	// wildcard address; nil reads the network interfaces.
	LocalAddrs func() ([]netip.Addr, error)
	Logger     *slog.Logger
}

// internetClient stands for a client on the internet when Diagnose works
// out what PASV replies say (TEST-NET-3, RFC 5737: public in form, never
// a real client).
var internetClient = netip.MustParseAddr("203.0.113.7")

// Diagnose checks cfg against this machine without serving it. Every part
// server.Wire fails to build is a failed check named after the part; the
// parts it builds are examined further.
func Diagnose(ctx context.Context, cfg *config.Config, opts Options) []diag.Check {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	localAddrs := opts.LocalAddrs
	if localAddrs == nil {
		localAddrs = interfaceAddrs
	}
	w, err := server.Wire(ctx, cfg, server.Options{Logger: logger})
	defer w.Close()
	failed := map[string]*server.PartError{}
	var werr *server.WiringError
	switch {
	case errors.As(err, &werr):
		for _, pe := range werr.Parts {
			if failed[pe.Part] == nil {
				failed[pe.Part] = pe
			}
		}
	case err != nil:
		return []diag.Check{{Step: "config", Status: diag.Fail, Detail: err.Error()}}
	}
	// part returns the failed check of a part, and takes it off the list
	// of failures still to report.
	part := func(name string) (diag.Check, bool) {
		pe := failed[name]
		if pe == nil {
			return diag.Check{}, false
		}
		delete(failed, name)
		return diag.Check{Step: name, Status: diag.Fail, Detail: pe.Error()}, true
	}

	var checks []diag.Check
	if c, ok := part("users"); ok {
		checks = append(checks, c)
	} else {
		checks = append(checks, checkUsers(w))
	}
	if c, ok := part("storage"); ok {
		checks = append(checks, c)
	} else {
		checks = append(checks, checkStorage(ctx, w))
	}
	discovered := true
	if c, ok := part("passive addresses"); ok {
		c.Fix = "serve refuses to start until this address can be discovered"
		checks = append(checks, c)
		discovered = false
	}
	if cfg.Metrics.Address != "" {
		checks = append(checks, checkBind("metrics", cfg.Metrics.Address))
	}
	for _, lw := range w.Listeners {
		c := checkBind(lw.Name, lw.Config.AddrPort().String())
		if p := lw.Config.PublicPort; p != 0 && p != lw.Config.AddrPort().Port() {
			c.Detail += fmt.Sprintf("; clients connect to port %d (public_port), which the balancer, Service or NAT in front maps onto %d", p, lw.Config.AddrPort().Port())
		}
		checks = append(checks, c)
		if c, ok := part(lw.Name + " TLS"); ok {
			checks = append(checks, c)
		} else if lw.Certs != nil {
			checks = append(checks, checkCert(lw.Name, lw.Certs))
		}
		if c, ok := part(lw.Name + " passive ports"); ok {
			checks = append(checks, c)
		} else {
			checks = append(checks, checkPassivePorts(lw.Name, lw.Config))
		}
		if discovered {
			checks = append(checks, checkPassiveReplies(ctx, lw, localAddrs))
		}
	}
	if onEC2(cfg) {
		checks = append(checks, checkSecurityGroups(ctx, cfg))
	}
	// Any part this file does not know yet still fails the diagnosis.
	if werr != nil {
		for _, pe := range werr.Parts {
			if failed[pe.Part] == pe {
				delete(failed, pe.Part)
				checks = append(checks, diag.Check{Step: pe.Part, Status: diag.Fail, Detail: pe.Error()})
			}
		}
	}
	return checks
}

func checkUsers(w *server.Wiring) diag.Check {
	cfg := w.Config
	c := diag.Check{Step: "users", Status: diag.OK}
	if cfg.Auth.Store == config.StoreHTTP {
		// The hook is not called: a test login would need a real user.
		c.Detail = "identity hook " + redactURL(cfg.Auth.HTTP.URL) + " (not called by doctor)"
	}
	if w.Users != nil {
		n := len(w.Users.Users())
		c.Detail = fmt.Sprintf("%d in %s", n, cfg.Path(cfg.Auth.UsersFile))
		if n == 0 && cfg.Auth.AnonymousPolicy() == config.PolicyOff {
			c.Status = diag.Warn
			c.Fix = "nobody can log in: add a user with \"cloudftpd user add NAME\""
		}
	}
	switch cfg.Auth.AnonymousPolicy() {
	case config.PolicyOptional:
		c.Detail += "; anonymous logins allowed"
	case config.PolicyRequired:
		c.Detail = "no users file: anonymous logins only"
	}
	return c
}

func checkStorage(ctx context.Context, w *server.Wiring) diag.Check {
	cfg := w.Config
	c := diag.Check{Step: "storage"}
	where := cfg.Path(cfg.Storage.Root)
	if cfg.Storage.Backend == "s3" {
		where = "s3://" + cfg.Storage.Bucket + "/" + cfg.Storage.Prefix
	}
	if wc, ok := w.Storage.(storage.WriteChecker); ok {
		if err := wc.CheckWrite(ctx); err != nil {
			c.Status, c.Detail = diag.Fail, err.Error()
			c.Fix = "uploads will fail: give the account the server runs as write access " +
				"(local: the root's owner and mode; S3: s3:PutObject and s3:AbortMultipartUpload on the prefix)"
			return c
		}
		c.Status, c.Detail = diag.OK, where+": readable and writable"
		return c
	}
	c.Status, c.Detail = diag.OK, where+": reachable"
	return c
}

// checkBind opens a listening address the way serve will.
func checkBind(name, address string) diag.Check {
	c := diag.Check{Step: name, Detail: address}
	ln, err := net.Listen("tcp", address)
	switch {
	case err == nil:
		ln.Close()
		c.Status, c.Detail = diag.OK, address+": free to listen on"
	case errors.Is(err, syscall.EADDRINUSE):
		c.Status, c.Detail = diag.Warn, address+": in use"
		c.Fix = "fine if that is this cloudftpd running; otherwise another server holds the port (ss -ltnp shows which)"
	case errors.Is(err, syscall.EACCES):
		c.Status, c.Detail = diag.Fail, address+": "+err.Error()
		c.Fix = "ports below 1024 need root or CAP_NET_BIND_SERVICE: setcap cap_net_bind_service=+ep on the binary, " +
			"or AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		c.Status, c.Detail = diag.Fail, address+": this machine has no such address"
		c.Fix = "listen on 0.0.0.0 or on one of this machine's own addresses; behind 1:1 NAT (an EC2 Elastic IP) the " +
			"public address is never on an interface: it belongs in a passive rule"
	default:
		c.Status, c.Detail = diag.Fail, address+": "+err.Error()
	}
	return c
}

func checkCert(name string, st *certs.Store) diag.Check {
	c := diag.Check{Step: name + " TLS"}
	leaf := st.Leaf()
	c.Status = diag.OK
	c.Detail = fmt.Sprintf("certificate for %s, valid until %s", strings.Join(certs.Names(leaf), ", "), leaf.NotAfter.UTC().Format(time.DateOnly))
	if leaf.Issuer.String() == leaf.Subject.String() {
		c.Detail += " (self-signed: partners' clients must be told to trust it)"
	}
	switch left := time.Until(leaf.NotAfter); {
	case left <= 0:
		c.Status, c.Fix = diag.Fail, "the certificate has expired: renew it, then send SIGHUP"
	case left < certs.RenewWithin:
		c.Status, c.Fix = diag.Warn, fmt.Sprintf("the certificate expires within %d days: renew it, then send SIGHUP", certs.RenewWithin/(24*time.Hour))
	}
	return c
}

// checkPassivePorts binds every port of the range on the listener's
// address, as the server will when it needs them.
func checkPassivePorts(name string, lc *config.Listener) diag.Check {
	c := diag.Check{Step: name + " passive ports"}
	lo, hi, ok := lc.PortRange()
	if !ok {
		c.Status = diag.Warn
		c.Detail = "passive_ports is not set: the kernel picks any free port for each transfer"
		c.Fix = "a firewall or security group in front must then open every high port; set a range " +
			"(passive_ports = \"50000-50100\") and open only it"
		return c
	}
	host := lc.AddrPort().Addr()
	var busy []uint16
	for p := uint32(lo); p <= uint32(hi); p++ {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(host, uint16(p)).String())
		if err != nil {
			if !errors.Is(err, syscall.EADDRINUSE) {
				// Not this port's fault (no such address, no permission):
				// every port would fail alike.
				c.Status, c.Detail = diag.Fail, fmt.Sprintf("%d-%d: %v", lo, hi, err)
				return c
			}
			busy = append(busy, uint16(p))
			continue
		}
		ln.Close()
	}
	n := int(hi) - int(lo) + 1
	c.Status = diag.OK
	c.Detail = fmt.Sprintf("%d-%d: %d ports, all free; open them, with the control port, in the firewall", lo, hi, n)
	if len(busy) > 0 {
		c.Status = diag.Warn
		c.Detail = fmt.Sprintf("%d-%d: %d of %d ports in use (first %d)", lo, hi, len(busy), n, busy[0])
		c.Fix = "fine if that is this cloudftpd running (its passive sockets); otherwise another program " +
			"holds them and passive transfers have fewer ports: choose a range nothing else uses"
	}
	return c
}

// clientClass is a kind of client Diagnose works out PASV replies for.
type clientClass struct {
	label  string
	client netip.Addr
}

// checkPassiveReplies works out, for each kind of client and each address
// of this machine it may connect to, the address PASV replies would carry,
// with the real policy and discovered addresses.
func checkPassiveReplies(ctx context.Context, lw *server.ListenerWiring, localAddrs func() ([]netip.Addr, error)) diag.Check {
	lc := lw.Config
	c := diag.Check{Step: lw.Name + " PASV"}
	var locals []netip.Addr
	switch a := lc.AddrPort().Addr().Unmap(); {
	case a.IsLoopback():
		c.Status, c.Detail = diag.OK, "listens on loopback only: reachable from this machine alone"
		return c
	case a.Is6() && !a.IsUnspecified():
		c.Status, c.Detail = diag.OK, "an IPv6 listener: clients use EPSV, which carries no address"
		return c
	case !a.IsUnspecified():
		locals = []netip.Addr{a}
	default:
		all, err := localAddrs()
		if err != nil {
			c.Status, c.Detail = diag.Fail, "listing this machine's addresses: "+err.Error()
			return c
		}
		for _, a := range all {
			a = a.Unmap()
			if a.Is4() && !a.IsLoopback() && !a.IsLinkLocalUnicast() {
				locals = append(locals, a)
			}
		}
	}
	if len(locals) == 0 {
		c.Status, c.Detail = diag.OK, "this machine has no IPv4 address but loopback: PASV only serves local clients"
		return c
	}

	policy := &netpolicy.Policy{Rules: lw.Rules}
	var classes []clientClass
	var shadowed []string
	coveredInternet := false
	for j, r := range lc.Passive {
		// A client of the rule: the internet stand-in when the rule covers
		// it, else the first host of its first IPv4 range (PASV is IPv4).
		var sample netip.Addr
		var strs []string
		for _, p := range r.ClientPrefixes() {
			strs = append(strs, p.String())
			switch {
			case p.Contains(internetClient):
				sample, coveredInternet = internetClient, true
			case p.Addr().Is4() && !sample.IsValid():
				sample = p.Masked().Addr().Next()
			}
		}
		if !sample.IsValid() {
			continue
		}
		label := fmt.Sprintf("clients in %s (rule %d, address = %q)", strings.Join(strs, ", "), j, r.Address)
		switch k := firstMatch(policy.Rules, sample); {
		case k == j:
		case shadowedBy(policy.Rules[:j], r.ClientPrefixes()):
			label += fmt.Sprintf(", but rule %d matches them first", k)
			shadowed = append(shadowed, fmt.Sprintf("rule %d", j))
		default:
			label += fmt.Sprintf(", of which %s matches rule %d first", sample, k)
		}
		classes = append(classes, clientClass{label, sample})
	}
	if !coveredInternet {
		classes = append(classes, clientClass{"other clients (no rule matches)", internetClient})
	}

	c.Status = diag.OK
	var lines []string
	var private []string
	for _, cl := range classes {
		for _, local := range locals {
			addr, err := policy.PassiveAddr(ctx, cl.client, local)
			if err != nil {
				c.Status = diag.Fail
				lines = append(lines, fmt.Sprintf("%s connecting to %s: %v", cl.label, local, err))
				continue
			}
			line := fmt.Sprintf("%s, connecting to %s: PASV names %s", cl.label, local, addr)
			// A rule's ports: the range these clients are told to use
			// is not the one the server binds.
			if lo, hi, ok := lc.PortRange(); ok {
				if plo, phi := policy.AdvertisedPort(cl.client, lo), policy.AdvertisedPort(cl.client, hi); plo != lo {
					line += fmt.Sprintf(" and ports %d-%d (mapped to the bound %d-%d: open %d-%d towards these clients, and forward them)", plo, phi, lo, hi, plo, phi)
				}
			}
			lines = append(lines, line)
			if netpolicy.NeedsWarning(cl.client, addr) && !slices.Contains(private, addr.String()) {
				private = append(private, addr.String())
			}
		}
	}
	c.Detail = strings.Join(lines, "\n")
	var fixes []string
	if len(private) > 0 {
		fixes = append(fixes, fmt.Sprintf("internet clients would be sent the private address %s in PASV replies. "+
			"If they reach this machine through NAT (an EC2 Elastic IP, a router's port forward), they log in and "+
			"then every listing and transfer hangs: add a passive rule for them with address = \"aws\" on EC2 or "+
			"the public address (see README, \"Passive mode and NAT\"). If only private networks reach this server, "+
			"nothing is wrong.", strings.Join(private, ", ")))
	}
	if len(shadowed) > 0 {
		fixes = append(fixes, strings.Join(shadowed, ", ")+" never applies to its clients: an earlier rule catches them. "+
			"The first matching rule wins, so list narrow ranges (VPN, partners) before \"0.0.0.0/0\".")
	}
	if len(fixes) > 0 {
		if c.Status == diag.OK {
			c.Status = diag.Warn
		}
		c.Fix = strings.Join(fixes, "\n")
	}
	return c
}

// firstMatch is the index of the first rule whose clients include client.
func firstMatch(rules []netpolicy.Rule, client netip.Addr) int {
	for k, r := range rules {
		if r.Matches(client) {
			return k
		}
	}
	return -1
}

// shadowedBy reports whether every range in prefixes lies inside a range
// of one of the earlier rules, so that the rule never applies.
func shadowedBy(earlier []netpolicy.Rule, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		covered := false
		for _, r := range earlier {
			for _, q := range r.Clients {
				if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
					covered = true
				}
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// interfaceAddrs lists the addresses on this machine's interfaces.
func interfaceAddrs() ([]netip.Addr, error) {
	ifAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range ifAddrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// redactURL hides a password in a URL's user info.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad URL)"
	}
	return u.Redacted()
}
