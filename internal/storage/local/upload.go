package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync/atomic"
	"syscall"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Create starts writing name.
//
//   - By default the upload is atomic: it goes to a temporary file next to
//     the target, renamed over it by Commit and removed by Abort. A file it
//     replaces keeps its permission bits; a symbolic link it replaces is
//     replaced, not written through.
//   - opts.Append writes at the end of the file, creating it if needed.
//   - opts.Offset > 0 continues the existing file at that offset (REST +
//     STOR); Commit cuts the file where writing ended, so a shorter
//     re-upload leaves no stale bytes. An offset beyond the end fails with
//     storage.ErrUnsupported (resuming there would leave a hole).
//
// Append and offset uploads write in place: the data that arrived stays even
// when the upload is aborted. opts.Exclusive fails with storage.ErrExist when
// the target exists, checked again when an atomic upload is committed.
func (t *tree) Create(ctx context.Context, name string, opts storage.CreateOptions) (storage.Upload, error) {
	rel, err := t.resolve(ctx, "create", name)
	if err != nil {
		return nil, err
	}
	switch {
	case rel == ".":
		return nil, &opError{op: "create", name: name, kind: storage.ErrIsDir, err: storage.ErrIsDir}
	case opts.Offset < 0:
		return nil, &opError{op: "create", name: name, kind: storage.ErrUnsupported, err: fmt.Errorf("negative offset %d", opts.Offset)}
	case opts.Append && opts.Offset > 0:
		return nil, &opError{op: "create", name: name, kind: storage.ErrUnsupported, err: errors.New("append and offset together")}
	}
	if opts.Exclusive {
		// Lstat: a dangling symbolic link counts as existing.
		_, err := t.root.Lstat(rel)
		if err == nil {
			return nil, &opError{op: "create", name: name, kind: storage.ErrExist, err: storage.ErrExist}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, mapErr("create", name, err)
		}
	}
	switch {
	case opts.Append:
		return t.createAppend(name, rel, opts.Exclusive)
	case opts.Offset > 0:
		return t.createAt(name, rel, opts.Offset)
	}
	return t.createAtomic(name, rel, opts.Exclusive)
}

// createAppend opens rel for appending. It does not use O_APPEND, which
// would stop os.File.ReadFrom from splicing; it seeks to the end instead.
// The session is the only writer it cares about.
func (t *tree) createAppend(name, rel string, exclusive bool) (storage.Upload, error) {
	// A new file first, so that Discard knows whether the upload made it.
	f, _, err := t.openRegular("create", name, rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, t.opts.FileMode)
	created := err == nil
	if errors.Is(err, storage.ErrExist) && !exclusive {
		f, _, err = t.openRegular("create", name, rel, os.O_WRONLY, 0)
	}
	if err != nil {
		return nil, err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, mapErr("create", name, err)
	}
	t.dropChecksum(f, name) // before the first byte changes the file
	u := &upload{t: t, f: f, root: t.root, closed: &t.closed, name: name, oldSize: end}
	if created {
		u.created = rel
	}
	return u, nil
}

// createAt opens the existing file rel for writing from offset on.
func (t *tree) createAt(name, rel string, offset int64) (storage.Upload, error) {
	f, fi, err := t.openRegular("create", name, rel, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	if offset > fi.Size() {
		f.Close()
		return nil, &opError{op: "create", name: name, kind: storage.ErrUnsupported,
			err: fmt.Errorf("offset %d beyond end of file (%d bytes)", offset, fi.Size())}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, mapErr("create", name, err)
	}
	t.dropChecksum(f, name)
	return &upload{t: t, f: f, root: t.root, closed: &t.closed, name: name, truncate: true, oldSize: fi.Size()}, nil
}

// createAtomic starts an upload into a new temporary file in rel's
// directory.
func (t *tree) createAtomic(name, rel string, exclusive bool) (storage.Upload, error) {
	if u, err := t.createAtomicBeneath(name, rel, exclusive); !errors.Is(err, errNoBeneath) {
		if err != nil {
			return nil, err
		}
		return u, nil
	}
	perm, keep := t.opts.FileMode, false
	fi, err := t.root.Stat(rel)
	switch {
	case err == nil && fi.IsDir():
		return nil, &opError{op: "create", name: name, kind: storage.ErrIsDir, err: storage.ErrIsDir}
	case err == nil && fi.Mode().IsRegular():
		perm, keep = fi.Mode().Perm(), true
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		// Includes a symbolic link leading out of the home.
		return nil, mapErr("create", name, err)
	}
	dir := path.Dir(rel)
	for attempt := 0; ; attempt++ {
		temp := path.Join(dir, tempPrefix+randomHex())
		f, err := t.root.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) && attempt < 3 {
			continue // 64 random bits collided: someone is guessing names.
		}
		if err != nil {
			return nil, mapErr("create", name, err)
		}
		if keep {
			// The umask applied at creation; the old file's bits win.
			if err := f.Chmod(perm); err != nil {
				f.Close()
				t.root.Remove(temp)
				return nil, mapErr("create", name, err)
			}
		}
		return &upload{t: t, f: f, root: t.root, closed: &t.closed, name: name, target: rel, temp: temp, exclusive: exclusive}, nil
	}
}

func randomHex() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// upload implements storage.Upload. Its ReadFrom hands the copy to
// os.File.ReadFrom, so io.Copy(upload, *net.TCPConn) splices on Linux; the
// *os.File is not embedded, to keep its other methods (Name, with the host
// path; Close, bypassing Commit) out of reach.
type upload struct {
	t      *tree
	f      *os.File
	root   *os.Root
	closed *atomic.Bool // the tree's: a closed tree commits nothing
	name   string       // virtual path, for errors

	// For atomic uploads, both root-relative, or names in dirfd when
	// inDir; temp is "" for in-place ones.
	target, temp string
	exclusive    bool
	// dirfd is the target's directory, owned by the upload, when inDir
	// (createAtomicBeneath).
	dirfd int
	inDir bool

	truncate bool   // in place at an offset: cut the file where writing ended
	oldSize  int64  // in place: the file's length before the upload, for Discard
	created  string // an append that created its file: the file, for Discard
	done     bool   // Commit or Abort ran

	sum *[32]byte // from SetSHA256: stored with an atomic upload
}

var (
	_ storage.ChecksumSetter = (*upload)(nil)
	_ storage.Replacer       = (*upload)(nil)
)

// Replaces reports whether something (a file, a link, not followed) is at
// the target now: one fstatat in the directory an atomic upload holds
// (storage.Replacer).
func (u *upload) Replaces() (bool, error) {
	if u.done {
		return false, &opError{op: "commit", name: u.name, err: errFinished}
	}
	if u.temp == "" {
		return true, nil // in place: the file is the target
	}
	_, err := u.lstatTarget()
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, mapErr("stat", u.name, err)
}

// SetSHA256 has Commit store sum with the file (atomic uploads only: an
// in-place upload's checksum was dropped at Create).
func (u *upload) SetSHA256(sum [32]byte) {
	if u.temp != "" {
		u.sum = &sum
	}
}

var errFinished = errors.New("upload already committed or aborted")

func (u *upload) Write(p []byte) (int, error) {
	n, err := u.f.Write(p)
	return n, fileErr("write", u.name, err)
}

// ReadFrom copies r into the file; see the type's comment for why it
// exists.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	n, err := u.f.ReadFrom(r)
	return n, fileErr("write", u.name, err)
}

// Commit publishes the data. When it fails (a cancelled ctx included) the
// upload is aborted, so a later Abort is a no-op.
func (u *upload) Commit(ctx context.Context) error {
	if u.done {
		return &opError{op: "commit", name: u.name, err: errFinished}
	}
	if err := ctx.Err(); err != nil {
		u.Abort()
		return &opError{op: "commit", name: u.name, err: err}
	}
	if u.closed.Load() {
		u.Abort()
		return &opError{op: "commit", name: u.name, err: fs.ErrClosed}
	}
	u.done = true
	if u.temp == "" {
		return u.finishInPlace()
	}
	if u.sum != nil {
		// On the temporary file: the rename publishes the value with
		// the content.
		u.t.storeChecksum(u.f, u.name, *u.sum)
	}
	defer u.closeDir()
	if err := u.f.Close(); err != nil {
		u.removeTemp()
		return mapErr("commit", u.name, err)
	}
	if err := u.publish(); err != nil {
		u.removeTemp()
		return err
	}
	return nil
}

// The temporary file and the target, by name in dirfd or through the
// home's os.Root.

func (u *upload) renameTemp() error {
	if u.inDir {
		return renameIn(u.dirfd, u.temp, u.target)
	}
	return u.root.Rename(u.temp, u.target)
}

func (u *upload) linkTemp() error {
	if u.inDir {
		return linkIn(u.dirfd, u.temp, u.target)
	}
	return u.root.Link(u.temp, u.target)
}

func (u *upload) removeTemp() error {
	if u.inDir {
		return unlinkIn(u.dirfd, u.temp)
	}
	return u.root.Remove(u.temp)
}

func (u *upload) lstatTarget() (fs.FileInfo, error) {
	if u.inDir {
		return dirEntry(u.dirfd, u.target)
	}
	return u.root.Lstat(u.target)
}

func (u *upload) closeDir() {
	if u.inDir {
		closeFd(u.dirfd)
		u.inDir = false
	}
}

// finishInPlace ends an append or offset upload.
func (u *upload) finishInPlace() error {
	if u.truncate {
		end, err := u.f.Seek(0, io.SeekCurrent)
		if err == nil {
			err = u.f.Truncate(end)
		}
		if err != nil {
			u.f.Close()
			return mapErr("commit", u.name, err)
		}
	}
	return mapErr("commit", u.name, u.f.Close())
}

// publish moves the closed temporary file to the target.
func (u *upload) publish() error {
	if !u.exclusive {
		return u.rename()
	}
	// A hard link fails if the target exists, where rename would replace
	// it: that makes the exclusive check and the publication one step.
	err := u.linkTemp()
	switch {
	case err == nil:
		// The data is published; a temporary name left behind is hidden
		// and harmless, so a failure here is not the client's.
		u.removeTemp()
		return nil
	case errors.Is(err, fs.ErrExist):
		return &opError{op: "commit", name: u.name, kind: storage.ErrExist, err: storage.ErrExist}
	case !linkUnsupported(err):
		return mapErr("commit", u.name, err)
	}
	// No hard links on this file system: check, then rename. A file
	// appearing in between is replaced.
	if _, err := u.lstatTarget(); err == nil {
		return &opError{op: "commit", name: u.name, kind: storage.ErrExist, err: storage.ErrExist}
	}
	return u.rename()
}

func (u *upload) rename() error {
	err := u.renameTemp()
	if err == nil {
		return nil
	}
	if fi, serr := u.lstatTarget(); serr == nil && fi.IsDir() {
		// A directory appeared at the target since Create.
		return &opError{op: "commit", name: u.name, kind: storage.ErrIsDir, err: storage.ErrIsDir}
	}
	return mapErr("commit", u.name, err)
}

// linkUnsupported reports whether Link failed because the file system has
// no hard links (FAT, some FUSE and network file systems).
func linkUnsupported(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	return errno == syscall.EPERM || errno == syscall.ENOTSUP || errno == syscall.EOPNOTSUPP || errno == syscall.ENOSYS
}

// Discard aborts the upload and, for an in-place one, cuts the file back
// to its length before the upload, or removes it when the upload (an
// append) created it (storage.Discarder).
func (u *upload) Discard() error {
	if u.done || u.temp != "" {
		return u.Abort()
	}
	u.done = true
	terr := u.f.Truncate(u.oldSize)
	cerr := u.f.Close()
	if u.created != "" {
		// There was no file: there is none again.
		if err := u.root.Remove(u.created); err != nil && !errors.Is(err, fs.ErrNotExist) {
			terr = errors.Join(terr, err)
		}
	}
	return mapErr("abort", u.name, errors.Join(terr, cerr))
}

// Abort discards an atomic upload. For append and offset uploads it only
// closes the file: what was written stays.
func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	cerr := u.f.Close()
	if u.temp == "" {
		return mapErr("abort", u.name, cerr)
	}
	defer u.closeDir()
	err := u.removeTemp()
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return mapErr("abort", u.name, err)
}
