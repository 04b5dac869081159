//go:build unix

package ftp

import (
	"net"
	"syscall"
)

// setOOBInline keeps TCP urgent data in the normal byte stream. Clients
// send ABOR as urgent data (Python's ftplib sends the whole "ABOR\r\n" with
// MSG_OOB): without SO_OOBINLINE the kernel takes the last byte, the LF,
// out of band, and the command line would never end.
func setOOBInline(c net.Conn) {
	tc := tcpConnOf(c)
	if tc == nil {
		return
	}
	if sc, err := tc.SyscallConn(); err == nil {
		sc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_OOBINLINE, 1)
		})
	}
}
