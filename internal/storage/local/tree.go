package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// tree is one home: every method reaches the disk through root.
type tree struct {
	root  *os.Root // shared with the other sessions in the same home
	opts  Options
	xattr *xattrState // nil: checksum trouble is not reported
	dir   string      // the home on disk, for Locate
	// home is the home directory, the starting point of openat2
	// (beneath_linux.go); nil where that is not used.
	home *os.File

	release   func() error // gives root back to the backend
	closed    atomic.Bool  // refuse work once closed: root may live on
	closeOnce sync.Once
	closeErr  error
}

var (
	_ storage.Storage     = (*tree)(nil)
	_ storage.Checksummer = (*tree)(nil)
	_ storage.StatOpener  = (*tree)(nil)
)

// resolve checks ctx and turns the virtual path name into a root-relative
// one, wrapping failures for op.
func (t *tree) resolve(ctx context.Context, op, name string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", &opError{op: op, name: name, err: err}
	}
	if t.closed.Load() {
		return "", &opError{op: op, name: name, err: fs.ErrClosed}
	}
	rel, err := relPath(name)
	if err != nil {
		return "", &opError{op: op, name: name, err: err}
	}
	return rel, nil
}

// Stat describes name, following symbolic links that stay inside the home.
// The home itself is named "/".
func (t *tree) Stat(ctx context.Context, name string) (storage.FileInfo, error) {
	rel, err := t.resolve(ctx, "stat", name)
	if err != nil {
		return storage.FileInfo{}, err
	}
	fi, err := t.root.Stat(rel)
	if err != nil {
		return storage.FileInfo{}, mapErr("stat", name, err)
	}
	info := fileInfo(fi)
	info.Name = path.Base(path.Clean(name))
	return info, nil
}

// Open returns the *os.File itself, positioned at offset, so that copying
// it to a *net.TCPConn uses sendfile. An offset at or beyond the end is
// allowed and reads nothing (io.EOF), as a download resumed from a complete
// file should. Only regular files can be opened: a directory fails with
// storage.ErrIsDir, and FIFOs or devices with storage.ErrPermission (the
// open itself does not block on a FIFO).
func (t *tree) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	rel, err := t.resolve(ctx, "open", name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, &opError{op: "open", name: name, kind: storage.ErrUnsupported, err: fmt.Errorf("negative offset %d", offset)}
	}
	f, _, err := t.openRegular("open", name, rel, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, mapErr("open", name, err)
		}
	}
	return f, nil
}

// OpenStat is Open at offset 0 with the file's description, from the
// opened file (storage.StatOpener).
func (t *tree) OpenStat(ctx context.Context, name string) (io.ReadCloser, storage.FileInfo, error) {
	rel, err := t.resolve(ctx, "open", name)
	if err != nil {
		return nil, storage.FileInfo{}, err
	}
	f, fi, err := t.openRegular("open", name, rel, os.O_RDONLY, 0)
	if err != nil {
		return nil, storage.FileInfo{}, err
	}
	info := fileInfo(fi)
	info.Name = path.Base(path.Clean(name))
	return f, info, nil
}

// openRegular opens rel with flag, refusing anything but a regular file.
// It opens non-blocking (then switches back) so that a FIFO someone placed
// in the home cannot hang the session in open(2). It goes through openat2
// where it can (openRegularBeneath), through os.Root otherwise.
func (t *tree) openRegular(op, name, rel string, flag int, perm fs.FileMode) (*os.File, fs.FileInfo, error) {
	f, fi, err := t.openRegularBeneath(rel, flag, perm)
	if errors.Is(err, errNoBeneath) {
		f, err = t.root.OpenFile(rel, flag|nonblockFlag, perm)
		if err == nil {
			fi, err = f.Stat()
			if err == nil && fi.Mode().IsRegular() {
				err = setBlocking(f)
			}
			if err != nil {
				f.Close()
				return nil, nil, mapErr(op, name, err)
			}
		}
	}
	if err != nil {
		return nil, nil, mapErr(op, name, err)
	}
	switch {
	case fi.IsDir():
		err = &opError{op: op, name: name, kind: storage.ErrIsDir, err: storage.ErrIsDir}
	case !fi.Mode().IsRegular():
		err = &opError{op: op, name: name, kind: storage.ErrPermission, err: errors.New("not a regular file")}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// ReadDir streams the entries of a directory with their own (Lstat)
// attributes: symbolic links are reported as links, not followed. Uploads
// in progress are hidden.
func (t *tree) ReadDir(ctx context.Context, name string) (storage.DirIterator, error) {
	rel, err := t.resolve(ctx, "readdir", name)
	if err != nil {
		return nil, err
	}
	// Names come from f, opened non-blocking so that a FIFO cannot hang
	// us; it also tells a directory from a file before OpenRoot, which
	// would block on a FIFO.
	f, err := t.root.OpenFile(rel, os.O_RDONLY|nonblockFlag, 0)
	if err != nil {
		return nil, mapErr("readdir", name, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		f.Close()
		if err != nil {
			return nil, mapErr("readdir", name, err)
		}
		return nil, &opError{op: "readdir", name: name, kind: storage.ErrNotDir, err: storage.ErrNotDir}
	}
	st, err := newStatAt(t.root, rel, f)
	if err != nil {
		f.Close()
		return nil, mapErr("readdir", name, err)
	}
	return newDirIter(ctx, name, &entryReader{f: f, statAt: st}), nil
}

// Mkdir creates one directory; its parent must exist.
func (t *tree) Mkdir(ctx context.Context, name string) error {
	rel, err := t.resolve(ctx, "mkdir", name)
	if err != nil {
		return err
	}
	return mapErr("mkdir", name, t.root.Mkdir(rel, t.opts.DirMode))
}

// Remove deletes a file or a symbolic link (not its target). Directories
// fail with storage.ErrIsDir. The type check and the unlink are two steps;
// if a directory replaces the file in between, an empty one is removed.
func (t *tree) Remove(ctx context.Context, name string) error {
	rel, err := t.resolve(ctx, "remove", name)
	if err != nil {
		return err
	}
	fi, err := t.root.Lstat(rel)
	if err != nil {
		return mapErr("remove", name, err)
	}
	if fi.IsDir() {
		return &opError{op: "remove", name: name, kind: storage.ErrIsDir, err: storage.ErrIsDir}
	}
	return mapErr("remove", name, t.root.Remove(rel))
}

// RemoveDir deletes an empty directory. A file (or a symbolic link, even to
// a directory) fails with storage.ErrNotDir, the home itself with
// storage.ErrPermission.
func (t *tree) RemoveDir(ctx context.Context, name string) error {
	rel, err := t.resolve(ctx, "rmdir", name)
	if err != nil {
		return err
	}
	if rel == "." {
		return &opError{op: "rmdir", name: name, kind: storage.ErrPermission, err: errRoot}
	}
	fi, err := t.root.Lstat(rel)
	if err != nil {
		return mapErr("rmdir", name, err)
	}
	if !fi.IsDir() {
		return &opError{op: "rmdir", name: name, kind: storage.ErrNotDir, err: storage.ErrNotDir}
	}
	err = t.root.Remove(rel)
	if errors.Is(err, fs.ErrExist) {
		// rmdir(2) may say EEXIST instead of ENOTEMPTY (POSIX allows both).
		return &opError{op: "rmdir", name: name, kind: storage.ErrNotEmpty, err: storage.ErrNotEmpty}
	}
	return mapErr("rmdir", name, err)
}

// Rename moves from to to, replacing a file (not a directory: ErrExist) at
// to. Symbolic links are moved, not followed. Moving a directory into
// itself fails with storage.ErrInvalidName; the home itself cannot be
// renamed nor replaced (storage.ErrPermission).
func (t *tree) Rename(ctx context.Context, from, to string) error {
	names := from + " -> " + to
	relFrom, err := t.resolve(ctx, "rename", from)
	if err != nil {
		return err
	}
	relTo, err := t.resolve(ctx, "rename", to)
	if err != nil {
		return err
	}
	if relFrom == "." || relTo == "." {
		return &opError{op: "rename", name: names, kind: storage.ErrPermission, err: errRoot}
	}
	err = t.root.Rename(relFrom, relTo)
	if errors.Is(err, syscall.EINVAL) {
		return &opError{op: "rename", name: names, kind: storage.ErrInvalidName, err: errors.New("cannot move a directory into itself")}
	}
	return mapErr("rename", names, err)
}

// SetModTime sets the modification time, leaving the access time alone.
func (t *tree) SetModTime(ctx context.Context, name string, mtime time.Time) error {
	rel, err := t.resolve(ctx, "chtimes", name)
	if err != nil {
		return err
	}
	return t.setModTime(name, rel, mtime)
}

// Chmod sets the permission bits (0777) of a file or directory. Other bits
// (setuid, setgid, sticky) fail with storage.ErrUnsupported; the home
// itself is refused (storage.ErrPermission) so that a user cannot lock
// the server out of it.
func (t *tree) Chmod(ctx context.Context, name string, mode fs.FileMode) error {
	rel, err := t.resolve(ctx, "chmod", name)
	if err != nil {
		return err
	}
	if mode&^fs.ModePerm != 0 {
		return &opError{op: "chmod", name: name, kind: storage.ErrUnsupported, err: fmt.Errorf("mode %o: only permission bits (0777) can be set", uint32(mode))}
	}
	if rel == "." {
		return &opError{op: "chmod", name: name, kind: storage.ErrPermission, err: errRoot}
	}
	return mapErr("chmod", name, t.root.Chmod(rel, mode))
}

// Capabilities reports that the local disk can do everything.
func (t *tree) Capabilities() storage.Capabilities {
	return storage.Capabilities{Append: true, WriteOffset: true, SetModTime: true, Chmod: true, RenameDir: true}
}

// Close gives the home's root back; the last session in a home closes
// it. Open files stay readable, but uploads must be finished first: once
// the root is closed they can no longer be committed or cleaned up, and
// their temporary files stay behind (hidden). Close is idempotent.
func (t *tree) Close() error {
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		if t.release != nil {
			t.closeErr = t.release()
		} else {
			t.closeErr = t.root.Close()
		}
	})
	return t.closeErr
}

// fileInfo converts an os FileInfo.
func fileInfo(fi fs.FileInfo) storage.FileInfo {
	info := storage.FileInfo{
		Name:    fi.Name(),
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
		Mode:    fi.Mode(),
		ID:      fileID(fi),
	}
	if fi.IsDir() {
		info.Size = 0
	}
	return info
}

// Locate is where name is on disk, for events.
func (t *tree) Locate(name string) string {
	return filepath.Join(t.dir, filepath.FromSlash(strings.TrimPrefix(name, "/")))
}
