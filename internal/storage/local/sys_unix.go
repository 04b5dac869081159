//go:build unix

package local

import (
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudftpd/cloudftpd/internal/storage"
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
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t: // os.Stat and friends
		return devInoID(uint64(st.Dev), uint64(st.Ino))
	case *unix.Stat_t: // statInfo (beneath_linux.go)
		return devInoID(uint64(st.Dev), uint64(st.Ino))
	}
	return ""
}

func devInoID(dev, ino uint64) string {
	var b [33]byte // on the stack: one allocation, for the string
	id := strconv.AppendUint(b[:0], dev, 16)
	id = append(id, '.')
	return string(strconv.AppendUint(id, ino, 16))
}

// statAt stats directory entries by name relative to the directory's
// descriptor, straight into storage.FileInfo: a listing of a large
// directory makes one fstatat and no other allocation than the name and ID
// per entry.
type statAt struct {
	dirfd int
}

// newStatAt uses dir's descriptor, which stays valid until dir is closed.
func newStatAt(_ *os.Root, _ string, dir *os.File) (statAt, error) {
	rc, err := dir.SyscallConn()
	if err != nil {
		return statAt{}, err
	}
	s := statAt{dirfd: -1}
	if err := rc.Control(func(fd uintptr) { s.dirfd = int(fd) }); err != nil {
		return statAt{}, err
	}
	return s, nil
}

func (s statAt) stat(name string) (storage.FileInfo, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(s.dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return storage.FileInfo{}, &os.PathError{Op: "fstatat", Path: name, Err: err}
		}
		break
	}
	fi := storage.FileInfo{
		Name:    name,
		Size:    st.Size,
		ModTime: time.Unix(st.Mtim.Unix()),
		// The conversions are for the BSDs, whose Stat_t has narrower
		// and signed fields than Linux's.
		Mode: unixMode(uint32(st.Mode)),
		ID:   devInoID(uint64(st.Dev), uint64(st.Ino)),
	}
	if fi.Mode.IsDir() {
		fi.Size = 0
	}
	return fi, nil
}

func (statAt) close() {}

// unixMode converts st_mode the way os.Lstat does.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
