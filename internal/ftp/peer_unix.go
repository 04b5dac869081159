//go:build unix

package ftp

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether the peer has closed or reset c, without
// consuming anything: a non-blocking MSG_PEEK reads 0 bytes after a FIN
// and fails with ECONNRESET after a reset. Pending data or nothing yet
// both mean the peer is there. It does not take the socket's read lock
// (RawConn.Control, not Read), so it does not wait for the command loop
// blocked in a read on the same socket.
func peerClosed(c net.Conn) bool {
	tc := tcpConnOf(c)
	if tc == nil {
		return false
	}
	sc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	sc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			closed = n == 0
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		default:
			closed = true // ECONNRESET and the like
		}
	})
	return closed
}
