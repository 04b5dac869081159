// Package local stores users' files on the local disk, each user jailed in
// a home directory through os.Root.
//
// It offers:
//   - Backend, created by New over a root directory, handing out one
//     storage.Storage per home (it implements storage.Backend);
//   - Options, the permission bits of new files and directories.
//
// Every operation goes through an *os.Root opened on the home, so "..",
// absolute paths and symbolic links (including ones created on the server's
// disk by someone else) cannot reach outside it; trying fails with
// storage.ErrPermission. Symbolic links that stay inside the home work.
// On Linux the hot paths (downloads, an upload's temporary file, rename
// and unlink) resolve paths with openat2(RESOLVE_BENEATH) instead, which
// refuses the same escapes in one system call; see beneath_linux.go.
//
// Plain uploads are atomic: data goes to a hidden temporary file
// (".cloudftpd-upload-<random hex>") in the target's directory, renamed over
// the target on Commit and removed on Abort, so an interrupted transfer never
// replaces or truncates the previous file. Names with that prefix are hidden
// from listings and refused as paths. Appends (APPE) and resumed uploads
// (REST + STOR) write in place: what arrived stays, even when aborted.
// Uploads are not fsynced before they are published: atomicity protects
// against interrupted transfers, not against power loss.
//
// The SHA-256 an upload hands over (storage.ChecksumSetter) is stored in
// the extended attribute user.cloudftpd.sha256 with the file, and
// returned by SHA256 (storage.Checksummer) while the file is unchanged;
// see checksum.go.
//
// Downloads return the *os.File itself and uploads reach os.File.ReadFrom,
// so io.Copy between the file and a *net.TCPConn uses sendfile and splice.
//
// Errors carry the operation and the virtual path ("local: open /a.txt: ..."),
// never a path on the host, and match the storage sentinels with errors.Is.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Options tune a Backend. The zero value is ready to use.
type Options struct {
	// FileMode is the permission of new files before the umask (default
	// 0644). A file replaced by an upload keeps its own permission bits.
	FileMode fs.FileMode
	// DirMode is the permission of new directories, homes included, before
	// the umask (default 0755).
	DirMode fs.FileMode
	// Logger hears about checksums that could not be stored (a file
	// system without user extended attributes: once); nil is
	// slog.Default().
	Logger *slog.Logger

	// noOpenat2 makes every operation take the os.Root path, as on a
	// kernel without openat2 (tests run the jail both ways).
	noOpenat2 bool
}

// xattrState is a backend's memory of extended-attribute trouble, shared
// by its trees so that a file system without them is reported once.
type xattrState struct {
	log    *slog.Logger
	warned atomic.Bool
}

// Backend hands out homes below one root directory.
type Backend struct {
	root  *os.Root
	opts  Options
	xattr *xattrState
	// beneath: the kernel has openat2, used on the hot paths
	// (beneath_linux.go).
	beneath bool

	mu sync.Mutex
	// homes holds one open os.Root per home directory in use, shared by
	// all the sessions in it: an idle session then costs one descriptor
	// (its control connection), not two.
	homes map[string]*sharedHome
}

// sharedHome is a home's os.Root and how many trees use it.
type sharedHome struct {
	root *os.Root
	dir  *os.File // the home directory for openat2, or nil
	refs int
}

var _ storage.Backend = (*Backend)(nil)

// New returns a backend storing every home under root, which is created
// (mode 0750) if missing.
func New(root string, opts Options) (*Backend, error) {
	if opts.FileMode == 0 {
		opts.FileMode = 0o644
	}
	if opts.DirMode == 0 {
		opts.DirMode = 0o755
	}
	if opts.FileMode&^fs.ModePerm != 0 || opts.DirMode&^fs.ModePerm != 0 {
		return nil, fmt.Errorf("local: file mode %v and directory mode %v must hold only permission bits (0777)", opts.FileMode, opts.DirMode)
	}
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("local: create storage root: %w", err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("local: open storage root: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Backend{root: r, opts: opts, xattr: &xattrState{log: log}, homes: make(map[string]*sharedHome)}
	b.beneath = !opts.noOpenat2 && haveOpenat2(r)
	return b, nil
}

// Home returns the tree rooted at home, a slash-separated path relative to
// the backend's root ("" or "." is the root itself), creating it if needed.
// Absolute paths and ".." elements fail with storage.ErrInvalidName. The
// home is reached through the backend's root, so a home (or one of its
// parents) that is a symbolic link may point elsewhere below the root but
// not outside it.
func (b *Backend) Home(ctx context.Context, home string) (storage.Storage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rel, err := homePath(home)
	if err != nil {
		return nil, &opError{op: "home", name: home, err: err}
	}
	if rel != "." {
		if err := b.root.MkdirAll(rel, b.opts.DirMode); err != nil {
			return nil, mapErr("home", home, err)
		}
	}
	sh, err := b.acquire(rel)
	if err != nil {
		return nil, mapErr("home", home, err)
	}
	t := &tree{root: sh.root, home: sh.dir, opts: b.opts, xattr: b.xattr, dir: filepath.Join(b.root.Name(), filepath.FromSlash(rel))}
	t.release = func() error { return b.release(rel, sh) }
	return t, nil
}

// acquire returns the shared root of the home at rel, opening it if no
// session uses it or if the directory at rel is no longer the one the
// shared root was opened on (replaced or renamed since): a new session
// always gets the directory that is there now.
func (b *Backend) acquire(rel string) (*sharedHome, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sh := b.homes[rel]; sh != nil {
		now, err1 := b.root.Stat(rel)
		open, err2 := sh.root.Stat(".")
		if err1 == nil && err2 == nil && os.SameFile(now, open) {
			sh.refs++
			return sh, nil
		}
		// Its sessions keep the old directory; new ones get the new.
		delete(b.homes, rel)
	}
	r, err := b.root.OpenRoot(rel)
	if err != nil {
		return nil, err
	}
	sh := &sharedHome{root: r, refs: 1}
	if b.beneath {
		// The same directory as r: a descriptor os.Root does not give
		// out. Without it the home works through r alone.
		if d, err := r.Open("."); err == nil {
			sh.dir = d
		}
	}
	b.homes[rel] = sh
	return sh, nil
}

// release drops one use of sh and closes it after the last.
func (b *Backend) release(rel string, sh *sharedHome) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	sh.refs--
	if sh.refs > 0 {
		return nil
	}
	if b.homes[rel] == sh {
		delete(b.homes, rel)
	}
	if sh.dir != nil {
		sh.dir.Close()
	}
	return sh.root.Close()
}

// Close releases the backend's root. Homes already handed out stay usable
// until they are closed themselves.
func (b *Backend) Close() error {
	return b.root.Close()
}

// homePath checks and cleans a home given to Home.
func homePath(home string) (string, error) {
	if strings.HasPrefix(home, "/") || strings.IndexByte(home, 0) >= 0 {
		return "", storage.ErrInvalidName
	}
	for elem := range strings.SplitSeq(home, "/") {
		if elem == ".." {
			return "", storage.ErrInvalidName
		}
	}
	if home == "" {
		return ".", nil
	}
	return path.Clean(home), nil
}

// tempPrefix starts the names of uploads in progress. Such names are hidden
// from listings and cannot be used as paths, so clients never see or touch
// another transfer's data. Files left by a crash can be found with
// find ROOT -name '.cloudftpd-upload-*'.
const tempPrefix = ".cloudftpd-upload-"

// relPath turns a virtual path ("/", "/a/b.txt") into a name relative to the
// home's os.Root ("." for "/"). The caller has cleaned it already; this
// re-checks what matters for safety rather than trusting it: os.Root would
// refuse escapes anyway, but a raw ".." means a bug upstream.
func relPath(name string) (string, error) {
	if !strings.HasPrefix(name, "/") || strings.IndexByte(name, 0) >= 0 {
		return "", storage.ErrInvalidName
	}
	for elem := range strings.SplitSeq(name[1:], "/") {
		if elem == ".." || strings.HasPrefix(elem, tempPrefix) {
			return "", storage.ErrInvalidName
		}
	}
	c := path.Clean(name)
	if c == "/" {
		return ".", nil
	}
	return c[1:], nil
}

// errRoot is returned for operations the home directory itself must not
// undergo (removal, renaming, chmod that could lock the user out).
var errRoot = errors.New("operation not allowed on the home directory")
