package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// dnsLookupTimeout bounds each lookup, at start-up and in Run: a resolver
// that does not answer must not hold the server's start.
const dnsLookupTimeout = 5 * time.Second

// Resolver is the part of *net.Resolver that DNSAddress needs; tests pass
// a stub.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DNSOptions configures a DNSAddress. The zero value is usable.
type DNSOptions struct {
	// Refresh is the period at which Run resolves the name again;
	// DefaultRefresh when zero.
	Refresh time.Duration
	// Resolver answers the lookups; net.DefaultResolver when nil.
	Resolver Resolver
	// Logger receives refresh failures and address changes; nothing is
	// logged when nil.
	Logger *slog.Logger
}

// DNSAddress is an AddressSource that advertises the IPv4 address a host
// name resolves to (address = "ftp.example.com"). It suits a server whose
// public address is published in DNS, possibly by a dynamic DNS client:
// the name is resolved at start-up and again every Refresh by Run, and
// PASV replies use the last good answer without waiting on DNS.
type DNSAddress struct {
	host     string
	refresh  time.Duration
	resolver Resolver
	logger   *slog.Logger
	addr     atomic.Pointer[netip.Addr] // never nil after NewDNSAddress
}

// NewDNSAddress resolves host once, within ctx and at most five seconds.
// It fails, naming host, when the name does not resolve to an IPv4
// address: a server that would advertise nothing usable refuses to start.
func NewDNSAddress(ctx context.Context, host string, opts DNSOptions) (*DNSAddress, error) {
	if host == "" {
		return nil, errors.New("netpolicy: passive address host name is empty")
	}
	d := &DNSAddress{
		host:     host,
		refresh:  opts.Refresh,
		resolver: opts.Resolver,
		logger:   orDiscard(opts.Logger),
	}
	if d.refresh <= 0 {
		d.refresh = DefaultRefresh
	}
	if d.resolver == nil {
		d.resolver = net.DefaultResolver
	}
	a, all, err := d.lookup(ctx, netip.Addr{})
	if err != nil {
		return nil, err
	}
	if len(all) > 1 {
		// PASV can name one address only. Say which, since a name with
		// several A records often belongs to a fleet, not to this host.
		d.logger.Info("passive address host name has several IPv4 addresses; advertising the first",
			"source", d.String(), "address", a, "all", all)
	}
	d.addr.Store(&a)
	return d, nil
}

// lookup resolves d.host to IPv4 addresses and picks one: current when it
// is still among them, so that round-robin answers do not flip the
// advertised address on every refresh, and the first one otherwise.
func (d *DNSAddress) lookup(ctx context.Context, current netip.Addr) (netip.Addr, []netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsLookupTimeout)
	defer cancel()
	answer, err := d.resolver.LookupNetIP(ctx, "ip4", d.host)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("netpolicy: resolve passive address host %q: %w", d.host, err)
	}
	var v4 []netip.Addr
	for _, a := range answer {
		if a = a.Unmap(); a.Is4() {
			v4 = append(v4, a)
		}
	}
	if len(v4) == 0 {
		return netip.Addr{}, nil, fmt.Errorf("netpolicy: passive address host %q has no IPv4 address (answer %v); PASV replies need one", d.host, answer)
	}
	for _, a := range v4 {
		if a == current {
			return a, v4, nil
		}
	}
	return v4[0], v4, nil
}

// Run resolves the name again every Refresh until ctx ends; the owner
// starts it with go. A failed lookup keeps the last good address.
func (d *DNSAddress) Run(ctx context.Context) {
	refreshLoop(ctx, d.refresh, d.logger, d.String(), d.refreshOnce)
}

func (d *DNSAddress) refreshOnce(ctx context.Context) error {
	old := *d.addr.Load()
	a, _, err := d.lookup(ctx, old)
	if err != nil {
		return err
	}
	if a != old {
		d.addr.Store(&a)
		d.logger.Info("passive address changed", "source", d.String(), "old", old, "new", a)
	}
	return nil
}

// PassiveAddr implements AddressSource. It answers from memory; local is
// not used, since a DNS name has one address for every client.
func (d *DNSAddress) PassiveAddr(context.Context, netip.Addr) (netip.Addr, error) {
	return *d.addr.Load(), nil
}

func (d *DNSAddress) String() string { return "dns:" + d.host }
