// Package netpolicy decides how data connections are made: which address a
// PASV reply advertises to which client, which passive ports are used and
// shared, and whether an active-mode (PORT/EPRT) target is acceptable.
//
// It offers:
//   - Policy, one listener's data-connection rules, parsed once at start-up;
//   - Rule and AddressSource, the passive-address rules chosen by client network;
//   - PortPool and Reservation, the bounded, shareable passive port range;
//   - CheckActiveTarget, FTP bounce protection for PORT/EPRT.
//
// It knows nothing of storage or of the FTP command set.
package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// AddressSource yields the address to advertise in PASV replies. Static
// addresses, DNS names and cloud metadata implement it.
type AddressSource interface {
	// PassiveAddr returns the address to advertise to a client that
	// reached the server at local (sources such as EC2 metadata map each
	// private address to its own public one). It must answer from memory
	// or within ctx: it runs while the client waits for the PASV reply.
	PassiveAddr(ctx context.Context, local netip.Addr) (netip.Addr, error)
	// String names the source for logs ("198.51.100.10", "dns:ftp.example.com").
	String() string
}

// StaticAddress is an AddressSource that always returns the same address.
type StaticAddress netip.Addr

// PassiveAddr implements AddressSource.
func (a StaticAddress) PassiveAddr(context.Context, netip.Addr) (netip.Addr, error) {
	return netip.Addr(a), nil
}

func (a StaticAddress) String() string { return netip.Addr(a).String() }

// Rule maps client networks to the address advertised to them. A nil Source
// means "control": the local address the client connected to.
type Rule struct {
	Clients []netip.Prefix
	Source  AddressSource
	// PortOffset is added to the bound passive port in the replies to
	// these clients: a port mapping between them and the server (a
	// Kubernetes Service, a DNAT of a public range) means they connect
	// to another port than the one the server listens on.
	PortOffset int
}

// Matches reports whether client falls in one of the rule's networks.
func (r Rule) Matches(client netip.Addr) bool {
	client = client.Unmap()
	for _, p := range r.Clients {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// Policy is one listener's data-connection policy.
type Policy struct {
	Rules []Rule
	Ports *PortPool
	// ActiveAllowed permits PORT/EPRT.
	ActiveAllowed bool
}

// PassiveAddr chooses the address advertised to client, which reached the
// server at local. The first rule matching client wins; without a match the
// local address is used.
func (p *Policy) PassiveAddr(ctx context.Context, client, local netip.Addr) (netip.Addr, error) {
	client, local = client.Unmap(), local.Unmap()
	for _, r := range p.Rules {
		if !r.Matches(client) {
			continue
		}
		if r.Source == nil {
			return local, nil
		}
		a, err := r.Source.PassiveAddr(ctx, local)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("netpolicy: passive address from %s: %w", r.Source, err)
		}
		return a.Unmap(), nil
	}
	return local, nil
}

// AdvertisedPort is the port to send client for the passive port bound
// at port: shifted by the first matching rule's PortOffset, the same rule
// PassiveAddr picks. Without a match it is port itself.
func (p *Policy) AdvertisedPort(client netip.Addr, port uint16) uint16 {
	client = client.Unmap()
	for _, r := range p.Rules {
		if r.Matches(client) {
			return uint16(int(port) + r.PortOffset)
		}
	}
	return port
}

// NeedsWarning reports whether advertising addr to client is the classic
// NAT failure: a private or loopback address sent to a client on a public
// one, which then cannot open the data connection.
func NeedsWarning(client, addr netip.Addr) bool {
	client, addr = client.Unmap(), addr.Unmap()
	return isPublic(client) && !isPublic(addr)
}

func isPublic(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !isSharedAddressSpace(a)
}

// isSharedAddressSpace reports 100.64.0.0/10 (RFC 6598, carrier-grade NAT),
// which netip does not count as private.
func isSharedAddressSpace(a netip.Addr) bool {
	return netip.MustParsePrefix("100.64.0.0/10").Contains(a)
}

// ErrBounce is returned for an active-mode target other than the client.
var ErrBounce = errors.New("active-mode data connections may only go to the client's own address")

// CheckActiveTarget enforces FTP bounce protection: PORT/EPRT may only name
// the control connection's client address, and never a privileged port.
func CheckActiveTarget(client netip.Addr, target netip.AddrPort) error {
	if target.Addr().Unmap() != client.Unmap() {
		return ErrBounce
	}
	if target.Port() < 1024 {
		return fmt.Errorf("active-mode port %d is privileged: %w", target.Port(), ErrBounce)
	}
	return nil
}
