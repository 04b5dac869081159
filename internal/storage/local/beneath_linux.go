//go:build linux

package local

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// On Linux the hot paths (opening a file to download, the temporary file
// of an upload and its rename) let the kernel walk the path below the home
// in one openat2(2) call. RESOLVE_BENEATH fails with EXDEV on everything
// os.Root refuses: "..", absolute paths and symbolic links that would
// leave the starting directory (links that stay inside work, as with
// os.Root); RESOLVE_NO_MAGICLINKS refuses /proc-style links too. os.Root
// does the same walk in user space with an openat and a close per
// directory, and os.OpenFile then tries to register a regular file with
// the poller (two fcntl to set O_NONBLOCK, a failed epoll_ctl, two fcntl
// to clear it again): a 4 KiB upload cost 17 system calls on the disk
// side alone. Where openat2 is missing (Linux before 5.6, a seccomp filter
// that refuses it: ENOSYS or EPERM at New) or gives up (EAGAIN, when a
// rename races the walk), every operation takes the os.Root path.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// errNoBeneath means openat2 could not be used for this call: take the
// os.Root path.
var errNoBeneath = errors.New("openat2 unavailable")

// errEscape is openat2's EXDEV under RESOLVE_BENEATH: the path leads out
// of the home. It classifies as storage.ErrPermission, like os.Root's
// refusal.
var errEscape = errors.New("path escapes from parent")

// haveOpenat2 reports whether openat2 with the jail's resolve flags works
// below dir.
func haveOpenat2(dir *os.Root) bool {
	f, err := dir.Open(".")
	if err != nil {
		return false
	}
	defer f.Close()
	ok := false
	withFd(f, func(fd int) error {
		nfd, err := openBeneath(fd, ".", unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			unix.Close(nfd)
			ok = true
		}
		return nil
	})
	return ok
}

// openBeneath opens rel below the directory dirfd, refusing any path that
// leads out of it (errEscape).
func openBeneath(dirfd int, rel string, flags int, perm uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveBeneath}
	if flags&unix.O_CREAT != 0 {
		how.Mode = uint64(perm)
	}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		switch err {
		case nil:
			return fd, nil
		case unix.EINTR:
			continue
		case unix.EXDEV:
			return -1, errEscape
		case unix.ENOSYS, unix.EAGAIN:
			return -1, errNoBeneath
		}
		return -1, err
	}
}

// inHome runs f on the home directory's descriptor, which cannot be closed
// (and its number reused) while f runs. It returns errNoBeneath when the
// tree does not use openat2.
func (t *tree) inHome(f func(fd int) error) error {
	if t.home == nil {
		return errNoBeneath
	}
	rc, err := t.home.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return fs.ErrClosed
	}
	return ferr
}

// openRegularBeneath is openRegular through openat2: open (non-blocking,
// so that a FIFO cannot hang us), fstat, clear O_NONBLOCK, and
// os.NewFile, which registers nothing with the poller for a blocking
// descriptor. Four system calls, where os.Root takes eight or more.
func (t *tree) openRegularBeneath(rel string, flag int, perm fs.FileMode) (*os.File, fs.FileInfo, error) {
	var fd int
	err := t.inHome(func(home int) error {
		var err error
		fd, err = openBeneath(home, rel, flag|unix.O_NONBLOCK|unix.O_NOCTTY, uint32(perm.Perm()))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	fi := &statInfo{name: filepath.Base(rel)}
	if err := fstat(fd, &fi.st); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	if fi.Mode().IsRegular() {
		// F_SETFL replaces the status flags it can change (O_APPEND,
		// O_NONBLOCK and a few we never set): 0 clears O_NONBLOCK.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0); err != nil {
			unix.Close(fd)
			return nil, nil, err
		}
	}
	// Not a regular file: openRegular refuses it after closing f, whose
	// descriptor os.NewFile left unregistered.
	return os.NewFile(uintptr(fd), filepath.Join(t.dir, rel)), fi, nil
}

func fstat(fd int, st *unix.Stat_t) error {
	for {
		err := unix.Fstat(fd, st)
		if err != unix.EINTR {
			return err
		}
	}
}

// statInfo is an fs.FileInfo from fstat, as os.File.Stat would return.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (fi *statInfo) Name() string       { return fi.name }
func (fi *statInfo) Size() int64        { return fi.st.Size }
func (fi *statInfo) Mode() fs.FileMode  { return unixMode(fi.st.Mode) }
func (fi *statInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Unix()) }
func (fi *statInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *statInfo) Sys() any           { return &fi.st }

// parentDir opens the directory dir of an upload (root-relative) for the
// upload's temporary file and rename: O_PATH, which is enough for the *at
// calls and opens even a directory the server may only search.
func (t *tree) parentDir(dir string) (int, error) {
	var fd int
	err := t.inHome(func(home int) error {
		var err error
		fd, err = openBeneath(home, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
		return err
	})
	return fd, err
}

// dirEntry describes base in the directory dirfd without following a
// symbolic link.
func dirEntry(dirfd int, base string) (fs.FileInfo, error) {
	fi := &statInfo{name: base}
	for {
		err := unix.Fstatat(dirfd, base, &fi.st, unix.AT_SYMLINK_NOFOLLOW)
		switch err {
		case nil:
			return fi, nil
		case unix.EINTR:
			continue
		}
		return nil, &fs.PathError{Op: "fstatat", Path: base, Err: err}
	}
}

// createIn creates the new file base (a name we chose: no slash, and
// O_EXCL refuses a symbolic link) in the directory dirfd.
func createIn(dirfd int, base string, perm fs.FileMode, name string) (*os.File, error) {
	fd, err := openBeneath(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, uint32(perm.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "openat2", Path: base, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func renameIn(dirfd int, from, to string) error {
	return ignoringEINTR("renameat", from, func() error { return unix.Renameat(dirfd, from, dirfd, to) })
}

func linkIn(dirfd int, from, to string) error {
	return ignoringEINTR("linkat", from, func() error { return unix.Linkat(dirfd, from, dirfd, to, 0) })
}

func unlinkIn(dirfd int, name string) error {
	return ignoringEINTR("unlinkat", name, func() error { return unix.Unlinkat(dirfd, name, 0) })
}

func closeFd(fd int) { unix.Close(fd) }

// createAtomicBeneath is createAtomic through openat2: the upload keeps
// its directory open (O_PATH), so that creating the temporary file,
// renaming it and removing it are one system call each on names without
// a slash, which cannot lead anywhere else. Should the directory be moved
// meanwhile, the upload lands in it where it now is, as the data written
// to an open temporary file always did. It returns errNoBeneath when the
// tree does not use openat2.
func (t *tree) createAtomicBeneath(name, rel string, exclusive bool) (*upload, error) {
	if t.home == nil {
		return nil, errNoBeneath
	}
	dir, base := path.Dir(rel), path.Base(rel)
	dirfd, err := t.parentDir(dir)
	if err != nil {
		if errors.Is(err, errNoBeneath) {
			return nil, err
		}
		return nil, mapErr("create", name, err)
	}
	perm, keep := t.opts.FileMode, false
	fi, err := dirEntry(dirfd, base)
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// Where a link leads, and whether it may, is os.Root's to say.
		fi, err = t.root.Stat(rel)
	}
	switch {
	case err == nil && fi.IsDir():
		closeFd(dirfd)
		return nil, &opError{op: "create", name: name, kind: storage.ErrIsDir, err: storage.ErrIsDir}
	case err == nil && fi.Mode().IsRegular():
		perm, keep = fi.Mode().Perm(), true
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		closeFd(dirfd)
		return nil, mapErr("create", name, err)
	}
	for attempt := 0; ; attempt++ {
		temp := tempPrefix + randomHex()
		f, err := createIn(dirfd, temp, perm, filepath.Join(t.dir, dir, temp))
		if errors.Is(err, fs.ErrExist) && attempt < 3 {
			continue // 64 random bits collided: someone is guessing names.
		}
		if err != nil {
			closeFd(dirfd)
			return nil, mapErr("create", name, err)
		}
		if keep {
			// The umask applied at creation; the old file's bits win.
			if err := f.Chmod(perm); err != nil {
				f.Close()
				unlinkIn(dirfd, temp)
				closeFd(dirfd)
				return nil, mapErr("create", name, err)
			}
		}
		return &upload{t: t, f: f, root: t.root, closed: &t.closed, name: name,
			dirfd: dirfd, inDir: true, target: base, temp: temp, exclusive: exclusive}, nil
	}
}

func ignoringEINTR(op, name string, f func() error) error {
	for {
		err := f()
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: op, Path: name, Err: err}
		}
		return nil
	}
}
