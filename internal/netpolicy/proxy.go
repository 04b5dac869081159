package netpolicy

import (
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
//   - from anywhere else: a header is refused and the connection closed,
//     so a client cannot forge its address; plain connections work as
//     without PROXY protocol.
//
// Header parsing happens on the connection's first use (RemoteAddr, Read),
// not in Accept, so callers must do that outside their accept loop.
func WrapProxyProtocol(ln net.Listener, trusted []netip.Prefix) net.Listener {
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: ProxyHeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			up := addrFromNet(o.Upstream)
			for _, p := range trusted {
				if p.Contains(up) {
					return proxyproto.REQUIRE, nil
				}
			}
			return proxyproto.REJECT, nil
		},
	}
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
