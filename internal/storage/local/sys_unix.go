//go:build unix

package local

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// nonblockFlag makes opening a FIFO return at once instead of waiting for
// the other end; regular files ignore it, and openRegular clears it.
const nonblockFlag = syscall.O_NONBLOCK

// setBlocking puts a file opened with nonblockFlag back in blocking mode,
// as files normally are.
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}

// fileID is "<device hex>.<inode hex>", unique on this host while the file
// exists.
func fileID(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%x.%x", uint64(st.Dev), uint64(st.Ino))
}
