package ftp

import (
	"crypto/tls"
	"net"
)

// tcpConnOf finds the TCP socket under c (a TLS connection, the PROXY
// protocol wrapper), or nil.
func tcpConnOf(c net.Conn) *net.TCPConn {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		case *recordBoundConn:
			c = v.Conn
		case interface{ TCPConn() (*net.TCPConn, bool) }: // PROXY protocol
			tc, ok := v.TCPConn()
			if !ok {
				return nil
			}
			return tc
		default:
			return nil
		}
	}
}
