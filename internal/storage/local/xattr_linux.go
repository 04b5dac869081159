//go:build linux

package local

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

var (
	errNoAttr           = unix.ENODATA
	errXattrUnsupported = unix.ENOTSUP // == EOPNOTSUPP on Linux
)

// withFd runs f on the descriptor of file without putting it in blocking
// mode (as os.File.Fd would).
func withFd(file *os.File, f func(fd int) error) error {
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func fsetxattr(file *os.File, attr string, v []byte) error {
	return withFd(file, func(fd int) error { return unix.Fsetxattr(fd, attr, v, 0) })
}

func fremovexattr(file *os.File, attr string) error {
	return withFd(file, func(fd int) error { return unix.Fremovexattr(fd, attr) })
}

func fgetxattr(file *os.File, attr string) ([]byte, error) {
	buf := make([]byte, 128) // "v1 <64 hex> <size> <mtime>" fits
	var n int
	err := withFd(file, func(fd int) error {
		var err error
		n, err = unix.Fgetxattr(fd, attr, buf)
		return err
	})
	if errors.Is(err, unix.ERANGE) {
		return nil, errNoAttr // not ours: far longer than ours can be
	}
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
