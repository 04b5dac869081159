// Package mounts builds one user's tree out of several storages: the
// user's home, with virtual folders mounted at paths inside it (issue
// 15). Each path goes to the mount with the longest mount point that is
// the path or above it, or to the home, with the mount point cut off, so
// every mount's own jail (a local os.Root, an S3 prefix) holds inside it.
//
// Mount points, and the directories that lead to them, always look like
// directories: Stat says so, a listing of their parent shows them (over a
// real entry of the same name, which the mount hides), and they cannot be
// removed, renamed or changed (storage.ErrMountPoint). A rename from one
// mount to another is refused with a *storage.CrossFolderError: the two
// are separate storage, and a copy would not be the atomic move a client
// expects from RNFR/RNTO.
package mounts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Mount is one folder: a storage tree shown at Path.
type Mount struct {
	// Path is the mount point: clean, absolute, not "/".
	Path string
	// FS is the folder's tree; the FS built by New owns it and closes it.
	FS storage.Storage
}

// FS is a home with mounts. Like any Storage, it serves one session.
type FS struct {
	home   storage.Storage
	mounts []Mount // longest mount point first
}

var (
	_ storage.Storage     = (*FS)(nil)
	_ storage.Checksummer = (*FS)(nil)
	_ storage.StatOpener  = (*FS)(nil)
	_ storage.Locator     = (*FS)(nil)
)

// New returns home with mounts. It owns every tree: Close closes them all.
func New(home storage.Storage, mounts []Mount) (*FS, error) {
	ms := slices.Clone(mounts)
	seen := map[string]bool{}
	for _, m := range ms {
		if m.Path == "/" || !strings.HasPrefix(m.Path, "/") || path.Clean(m.Path) != m.Path {
			return nil, fmt.Errorf("mounts: %q is not a mount point (want a clean absolute path other than \"/\")", m.Path)
		}
		if seen[m.Path] {
			return nil, fmt.Errorf("mounts: two folders at %q", m.Path)
		}
		seen[m.Path] = true
	}
	slices.SortFunc(ms, func(a, b Mount) int { return len(b.Path) - len(a.Path) })
	return &FS{home: home, mounts: ms}, nil
}

// Home is the user's own tree, without the folders (what a quota counts).
func (f *FS) Home() storage.Storage { return f.home }

// route returns the tree that holds p, the path inside it, and the mount
// point ("/" for the home). p is not cleaned: callers give clean paths,
// and a raw ".." is passed on to the tree, whose jail refuses it, rather
// than resolved here to somewhere else.
func (f *FS) route(p string) (storage.Storage, string, string) {
	for _, m := range f.mounts {
		if p == m.Path {
			return m.FS, "/", m.Path
		}
		if strings.HasPrefix(p, m.Path+"/") {
			return m.FS, p[len(m.Path):], m.Path
		}
	}
	return f.home, p, "/"
}

// Fixed reports whether p is a mount point or a directory that leads to
// one: what the configuration defines, so that it cannot be removed,
// renamed or changed.
func (f *FS) Fixed(p string) bool { return f.virtual(p) }

// virtual reports whether p is a mount point or leads to one: a
// directory that the mounts, not the storage, define.
func (f *FS) virtual(p string) bool {
	if p == "/" || !strings.HasPrefix(p, "/") {
		return false // the home itself is real; a bad path is the tree's to refuse
	}
	for _, m := range f.mounts {
		if m.Path == p || strings.HasPrefix(m.Path, p+"/") {
			return true
		}
	}
	return false
}

// children returns the names of the virtual directories directly in dir.
func (f *FS) children(dir string) map[string]bool {
	prefix := dir + "/"
	if dir == "/" {
		prefix = "/"
	}
	out := map[string]bool{}
	for _, m := range f.mounts {
		if rest, ok := strings.CutPrefix(m.Path, prefix); ok {
			name, _, _ := strings.Cut(rest, "/")
			out[name] = true
		}
	}
	return out
}

// CapabilitiesAt reports what the tree holding p can do.
func (f *FS) CapabilitiesAt(p string) storage.Capabilities {
	t, _, _ := f.route(p)
	return t.Capabilities()
}

// Capabilities implements storage.Storage: the home's. Callers that can
// name the path should ask CapabilitiesAt.
func (f *FS) Capabilities() storage.Capabilities { return f.home.Capabilities() }

// Stat implements storage.Storage.
func (f *FS) Stat(ctx context.Context, name string) (storage.FileInfo, error) {
	t, inner, _ := f.route(name)
	fi, err := t.Stat(ctx, inner)
	if !f.virtual(name) {
		return fi, err
	}
	base := path.Base(name)
	if err == nil && fi.IsDir() {
		fi.Name = base
		return fi, nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotExist) && !errors.Is(err, storage.ErrNotDir) {
		return storage.FileInfo{}, err
	}
	// A mount point whose target is gone, or a directory leading to
	// mount points that has no real counterpart: a directory all the
	// same, so that clients can walk to the folder.
	return storage.FileInfo{Name: base, Mode: fs.ModeDir | 0o755, ModTime: time.Now()}, nil
}

// ReadDir implements storage.Storage: the tree's entries, with the
// folders mounted in name shown as directories.
func (f *FS) ReadDir(ctx context.Context, name string) (storage.DirIterator, error) {
	t, inner, _ := f.route(name)
	kids := f.children(name)
	it, err := t.ReadDir(ctx, inner)
	if len(kids) == 0 {
		return it, err
	}
	if err != nil {
		if !f.virtual(name) || !(errors.Is(err, storage.ErrNotExist) || errors.Is(err, storage.ErrNotDir)) {
			return nil, err
		}
		it = nil
	}
	var extra []storage.FileInfo
	for _, k := range slices.Sorted(maps.Keys(kids)) {
		fi, err := f.Stat(ctx, path.Join(name, k))
		if err != nil {
			if it != nil {
				it.Close()
			}
			return nil, err
		}
		extra = append(extra, fi)
	}
	return &mergedIter{real: it, hide: kids, extra: extra}, nil
}

// mergedIter is a directory's real entries minus those the folders hide,
// then the folders.
type mergedIter struct {
	real  storage.DirIterator // nil when the directory exists only as a way to folders
	hide  map[string]bool
	extra []storage.FileInfo
}

func (m *mergedIter) Next() (storage.FileInfo, error) {
	for m.real != nil {
		fi, err := m.real.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fi, err
		}
		if !m.hide[fi.Name] {
			return fi, nil
		}
	}
	if len(m.extra) == 0 {
		return storage.FileInfo{}, io.EOF
	}
	fi := m.extra[0]
	m.extra = m.extra[1:]
	return fi, nil
}

func (m *mergedIter) Close() error {
	if m.real != nil {
		return m.real.Close()
	}
	return nil
}

// Open implements storage.Storage.
func (f *FS) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	if f.virtual(name) {
		return nil, fmt.Errorf("open %s: %w", name, storage.ErrIsDir)
	}
	t, inner, _ := f.route(name)
	return t.Open(ctx, inner, offset)
}

// OpenStat implements storage.StatOpener, in one step for the trees that
// can.
func (f *FS) OpenStat(ctx context.Context, name string) (io.ReadCloser, storage.FileInfo, error) {
	if f.virtual(name) {
		return nil, storage.FileInfo{}, fmt.Errorf("open %s: %w", name, storage.ErrIsDir)
	}
	t, inner, _ := f.route(name)
	if so, ok := t.(storage.StatOpener); ok {
		return so.OpenStat(ctx, inner)
	}
	fi, err := t.Stat(ctx, inner)
	if err != nil {
		return nil, storage.FileInfo{}, err
	}
	if fi.IsDir() {
		return nil, storage.FileInfo{}, fmt.Errorf("open %s: %w", name, storage.ErrIsDir)
	}
	r, err := t.Open(ctx, inner, 0)
	if err != nil {
		return nil, storage.FileInfo{}, err
	}
	return r, fi, nil
}

// Create implements storage.Storage.
func (f *FS) Create(ctx context.Context, name string, opts storage.CreateOptions) (storage.Upload, error) {
	if f.virtual(name) {
		return nil, fmt.Errorf("create %s: %w", name, storage.ErrIsDir)
	}
	t, inner, _ := f.route(name)
	return t.Create(ctx, inner, opts)
}

// Mkdir implements storage.Storage.
func (f *FS) Mkdir(ctx context.Context, name string) error {
	if f.virtual(name) {
		return fmt.Errorf("mkdir %s: %w", name, storage.ErrExist)
	}
	t, inner, _ := f.route(name)
	return t.Mkdir(ctx, inner)
}

// Remove implements storage.Storage.
func (f *FS) Remove(ctx context.Context, name string) error {
	if f.virtual(name) {
		return fmt.Errorf("remove %s: %w", name, storage.ErrIsDir)
	}
	t, inner, _ := f.route(name)
	return t.Remove(ctx, inner)
}

// RemoveDir implements storage.Storage.
func (f *FS) RemoveDir(ctx context.Context, name string) error {
	if f.virtual(name) {
		return fmt.Errorf("rmdir %s: %w", name, storage.ErrMountPoint)
	}
	t, inner, _ := f.route(name)
	return t.RemoveDir(ctx, inner)
}

// Rename implements storage.Storage. Both names must be in the same tree.
func (f *FS) Rename(ctx context.Context, from, to string) error {
	if f.virtual(from) || f.virtual(to) {
		return fmt.Errorf("rename %s to %s: %w", from, to, storage.ErrMountPoint)
	}
	t, innerFrom, mf := f.route(from)
	_, innerTo, mt := f.route(to)
	if mf != mt {
		return &storage.CrossFolderError{From: mf, To: mt}
	}
	return t.Rename(ctx, innerFrom, innerTo)
}

// SetModTime implements storage.Storage.
func (f *FS) SetModTime(ctx context.Context, name string, t time.Time) error {
	if f.virtual(name) {
		return fmt.Errorf("set time of %s: %w", name, storage.ErrMountPoint)
	}
	tr, inner, _ := f.route(name)
	return tr.SetModTime(ctx, inner, t)
}

// Chmod implements storage.Storage.
func (f *FS) Chmod(ctx context.Context, name string, mode fs.FileMode) error {
	if f.virtual(name) {
		return fmt.Errorf("chmod %s: %w", name, storage.ErrMountPoint)
	}
	t, inner, _ := f.route(name)
	return t.Chmod(ctx, inner, mode)
}

// SHA256 implements storage.Checksummer for the trees that do.
func (f *FS) SHA256(ctx context.Context, name string) ([32]byte, error) {
	t, inner, _ := f.route(name)
	if cs, ok := t.(storage.Checksummer); ok {
		return cs.SHA256(ctx, inner)
	}
	return [32]byte{}, storage.ErrNoChecksum
}

// Locate implements storage.Locator for the trees that do; "" otherwise.
func (f *FS) Locate(name string) string {
	t, inner, _ := f.route(name)
	if l, ok := t.(storage.Locator); ok {
		return l.Locate(inner)
	}
	return ""
}

// Close implements storage.Storage: it closes the home and every folder.
func (f *FS) Close() error {
	errs := []error{f.home.Close()}
	for _, m := range f.mounts {
		errs = append(errs, m.FS.Close())
	}
	return errors.Join(errs...)
}
