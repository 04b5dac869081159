package netpolicy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyHeaderTimeout bounds how long a connection from a trusted balancer
// may take to send its PROXY header.
const ProxyHeaderTimeout = 5 * time.Second

// WrapProxyProtocol makes ln read PROXY protocol v1/v2 headers. Policy per
// connection source:
//   - from a trusted prefix: the header is required (a balancer that
//     forgot it would otherwise make every client look like the balancer);
//     CheckProxyHeader tells the caller to drop such a connection;
//   - from anywhere else: the connection is passed through untouched, as
//     without PROXY protocol. Nothing is read from it, so an FTP client,
//     which waits for the greeting, is greeted at once; a header it sends
//     anyway is just an unknown command, and its address is never used.
//
// Header parsing happens on the connection's first use (RemoteAddr, Read),
// not in Accept, so callers must do that outside their accept loop.
func WrapProxyProtocol(ln net.Listener, trusted []netip.Prefix) net.Listener {
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: ProxyHeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if isTrusted(addrFromNet(o.Upstream), trusted) {
				return proxyproto.REQUIRE, nil
			}
			return proxyproto.SKIP, nil
		},
	}
}

// ProxyConn applies WrapProxyProtocol's policy to one connection accepted
// from a plain listener: a server that reloads its config keeps its
// socket and decides per connection, with the settings current at accept,
// whether a header is required.
func ProxyConn(c net.Conn, trusted []netip.Prefix) net.Conn {
	if !isTrusted(addrFromNet(c.RemoteAddr()), trusted) {
		return c
	}
	return proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(ProxyHeaderTimeout))
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ErrProxyHeader is returned by CheckProxyHeader for a connection from a
// trusted balancer that did not send a valid PROXY header.
var ErrProxyHeader = errors.New("trusted balancer sent no valid PROXY protocol header")

// CheckProxyHeader reads the PROXY header of a connection accepted through
// WrapProxyProtocol, if it must carry one, and reports whether it was
// valid. Such a connection must be closed: serving it would attribute the
// client to the balancer's address.
func CheckProxyHeader(c net.Conn) error {
	pc, ok := c.(*proxyproto.Conn)
	if !ok {
		return nil // not from a trusted source: no header expected
	}
	if pc.ProxyHeader() == nil {
		return fmt.Errorf("%w (from %s)", ErrProxyHeader, pc.Raw().RemoteAddr())
	}
	return nil
}

// SocketLocalAddr returns the local address of the socket itself, even when
// c carries a PROXY header (whose destination is the balancer's address).
// Passive ports are bound on this host, and EC2 maps this address to its
// Elastic IP.
func SocketLocalAddr(c net.Conn) netip.Addr {
	if pc, ok := c.(*proxyproto.Conn); ok {
		return addrFromNet(pc.Raw().LocalAddr())
	}
	return addrFromNet(c.LocalAddr())
}

// RemoteAddr returns the client address of c: from the PROXY header when
// there is one, else the socket peer. It may block reading the header.
func RemoteAddr(c net.Conn) netip.Addr { return addrFromNet(c.RemoteAddr()) }

func addrFromNet(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
