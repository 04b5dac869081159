// Package memstore is an in-memory storage backend for tests: protocol
// tests run against it without touching the disk, and it can be told to
// fail any operation on any path with any error.
//
// It offers:
//   - Backend, created by New, implementing storage.Backend: one tree of
//     files and directories shared by every home it hands out, each home a
//     storage.Storage jailed in its directory;
//   - Capabilities set at any time with SetCapabilities (all of them by
//     default), so tests can play a backend that cannot append, resume,
//     set times, chmod or rename directories;
//   - fault injection: Fail, FailNext and SetHook make an operation (an Op:
//     stat, open, read, create, write, commit, ...) on a path fail with a
//     given error, e.g. storage.ErrNoSpace on the third Write of an upload
//     or context.DeadlineExceeded on a Commit;
//   - WriteFile, ReadFile, MkdirAll and Chtimes for setting up and checking
//     files from outside a session, with paths relative to the backend's
//     root ("alice/dir/f.txt");
//   - InUse, the homes, readers and uploads not yet closed, committed or
//     aborted, so tests can check that the protocol layer cleans up.
//
// Every upload is atomic, appends and resumed uploads included: the data
// becomes visible only when Commit succeeds, and Abort or a failed Commit
// leaves the old file as it was. (The local backend writes appends in
// place; memstore keeps to the storage.Upload contract strictly.) Readers
// opened before a Commit keep reading the old content.
//
// Errors wrap the storage sentinels (errors.Is works) and name the
// operation and the path as the tree saw it ("memstore: open /a: file does
// not exist"). A Backend is safe for concurrent use.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Op names an operation for fault injection. The path an Op is checked
// against is the virtual path the Storage was given ("/dir/f"), except for
// OpHome, which sees the home ("alice").
type Op string

// The operations faults can be injected into.
const (
	OpHome       Op = "home"       // Backend.Home
	OpStat       Op = "stat"       // Stat
	OpOpen       Op = "open"       // Open
	OpRead       Op = "read"       // each Read of a reader from Open
	OpCreate     Op = "create"     // Create
	OpWrite      Op = "write"      // each Write of an upload
	OpCommit     Op = "commit"     // Upload.Commit
	OpReadDir    Op = "readdir"    // ReadDir
	OpNext       Op = "next"       // each DirIterator.Next (path: the directory)
	OpMkdir      Op = "mkdir"      // Mkdir
	OpRemove     Op = "remove"     // Remove
	OpRemoveDir  Op = "rmdir"      // RemoveDir
	OpRename     Op = "rename"     // Rename (path: the source)
	OpSetModTime Op = "setmodtime" // SetModTime
	OpChmod      Op = "chmod"      // Chmod
	OpChecksum   Op = "checksum"   // SHA256 (storage.Checksummer)
)

// Permission bits of new files and directories.
const (
	fileMode = 0o644
	dirMode  = 0o755
)

// node is a file or a directory.
type node struct {
	dir      bool
	children map[string]*node // directories only
	// data is never modified in place: a commit installs a new slice, so
	// readers opened earlier keep the old content.
	data  []byte
	sum   *[32]byte // SHA-256 stored by the upload that wrote data
	perm  fs.FileMode
	mtime time.Time
	id    uint64
}

// fault is one rule set by Fail or FailNext.
type fault struct {
	op   Op
	path string // "" matches every path
	err  error
	once bool
}

// Backend is an in-memory file tree handing out homes. The zero value is
// not usable; call New.
type Backend struct {
	mu     sync.Mutex
	root   *node
	caps   storage.Capabilities
	nextID uint64
	faults []fault
	hook   func(op Op, name string) error
	inUse  Usage
}

var _ storage.Backend = (*Backend)(nil)

// New returns an empty backend with every capability.
func New() *Backend {
	b := &Backend{caps: storage.Capabilities{Append: true, WriteOffset: true, SetModTime: true, Chmod: true, RenameDir: true}}
	b.root = b.newNode(true)
	return b
}

// newNode makes a node with a fresh ID. b.mu must be held (or b unshared).
func (b *Backend) newNode(dir bool) *node {
	b.nextID++
	n := &node{dir: dir, perm: fileMode, mtime: time.Now(), id: b.nextID}
	if dir {
		n.children = make(map[string]*node)
		n.perm = dirMode
	}
	return n
}

// SetCapabilities changes what every home reports and allows from now on.
func (b *Backend) SetCapabilities(c storage.Capabilities) {
	b.mu.Lock()
	b.caps = c
	b.mu.Unlock()
}

// Fail makes every op on name fail with err until ClearFaults. An empty
// name matches every path. Rules are checked in the order they were set.
func (b *Backend) Fail(op Op, name string, err error) {
	b.mu.Lock()
	b.faults = append(b.faults, fault{op: op, path: name, err: err})
	b.mu.Unlock()
}

// FailNext makes the next op on name (any path when empty) fail with err,
// once.
func (b *Backend) FailNext(op Op, name string, err error) {
	b.mu.Lock()
	b.faults = append(b.faults, fault{op: op, path: name, err: err, once: true})
	b.mu.Unlock()
}

// SetHook installs f, called before every operation after the rules of
// Fail and FailNext; a non-nil result fails the operation. f runs without
// the backend's lock, so it may call the backend; nil removes the hook.
func (b *Backend) SetHook(f func(op Op, name string) error) {
	b.mu.Lock()
	b.hook = f
	b.mu.Unlock()
}

// ClearFaults removes every rule and the hook.
func (b *Backend) ClearFaults() {
	b.mu.Lock()
	b.faults, b.hook = nil, nil
	b.mu.Unlock()
}

// injected returns the error a fault rule or the hook chooses for op on
// name, or nil.
func (b *Backend) injected(op Op, name string) error {
	b.mu.Lock()
	for i, f := range b.faults {
		if f.op == op && (f.path == "" || f.path == name) {
			if f.once {
				b.faults = slices.Delete(b.faults, i, i+1)
			}
			b.mu.Unlock()
			return f.err
		}
	}
	hook := b.hook
	b.mu.Unlock()
	if hook != nil {
		return hook(op, name)
	}
	return nil
}

// Usage counts what is open: homes not closed, readers not closed and
// uploads neither committed nor aborted.
type Usage struct {
	Homes, Readers, Uploads int
}

// InUse reports what is open right now.
func (b *Backend) InUse() Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inUse
}

// opError is every error memstore returns.
type opError struct {
	op   Op
	name string
	err  error
}

func (e *opError) Error() string {
	return "memstore: " + string(e.op) + " " + e.name + ": " + e.err.Error()
}
func (e *opError) Unwrap() error { return e.err }

func opErr(op Op, name string, err error) error {
	if err == nil {
		return nil
	}
	return &opError{op: op, name: name, err: err}
}

// errRoot refuses operations the home itself must not undergo.
var errRoot = fmt.Errorf("operation not allowed on the home directory: %w", storage.ErrPermission)

// errClosed is returned by a home after Close.
var errClosed = fs.ErrClosed

// splitPath checks a virtual path and returns its elements (none for "/").
// Like the local backend it cleans what it is given but refuses raw ".."
// elements: they mean a bug upstream.
func splitPath(name string) ([]string, error) {
	if !strings.HasPrefix(name, "/") || strings.IndexByte(name, 0) >= 0 {
		return nil, storage.ErrInvalidName
	}
	for elem := range strings.SplitSeq(name[1:], "/") {
		if elem == ".." {
			return nil, storage.ErrInvalidName
		}
	}
	c := path.Clean(name)
	if c == "/" {
		return nil, nil
	}
	return strings.Split(c[1:], "/"), nil
}

// splitRel checks a path relative to the backend's root ("", ".",
// "alice/dir"), for Home and the test helpers.
func splitRel(name string) ([]string, error) {
	if strings.HasPrefix(name, "/") {
		return nil, storage.ErrInvalidName
	}
	return splitPath("/" + name)
}

// walk returns the node at elems below from, or an error: ErrNotExist for
// a missing element, ErrNotDir when a file stands where a directory should.
// b.mu must be held.
func walk(from *node, elems []string) (*node, error) {
	n := from
	for _, e := range elems {
		if !n.dir {
			return nil, storage.ErrNotDir
		}
		c, ok := n.children[e]
		if !ok {
			return nil, storage.ErrNotExist
		}
		n = c
	}
	return n, nil
}

// parentOf returns the directory that holds (or would hold) elems, which
// must not be empty. A missing parent is ErrNotExist, as the storage
// contract wants for "/nodir/f". b.mu must be held.
func parentOf(from *node, elems []string) (*node, error) {
	p, err := walk(from, elems[:len(elems)-1])
	if err != nil {
		if errors.Is(err, storage.ErrNotDir) {
			return nil, storage.ErrNotExist
		}
		return nil, err
	}
	if !p.dir {
		return nil, storage.ErrNotExist
	}
	return p, nil
}

// mkdirAll creates elems below from. b.mu must be held.
func (b *Backend) mkdirAll(from *node, elems []string) (*node, error) {
	n := from
	for _, e := range elems {
		c, ok := n.children[e]
		if !ok {
			c = b.newNode(true)
			n.children[e] = c
			n.mtime = time.Now()
		}
		if !c.dir {
			return nil, storage.ErrNotDir
		}
		n = c
	}
	return n, nil
}

// Home returns the tree rooted at home, relative to the backend's root (""
// or "." for the root itself), creating it if needed. Like a directory
// handle, the tree stays on its directory if that is renamed later.
func (b *Backend) Home(ctx context.Context, home string) (storage.Storage, error) {
	if err := ctx.Err(); err != nil {
		return nil, opErr(OpHome, home, err)
	}
	elems, err := splitRel(home)
	if err != nil {
		return nil, opErr(OpHome, home, err)
	}
	if err := b.injected(OpHome, home); err != nil {
		return nil, opErr(OpHome, home, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.mkdirAll(b.root, elems)
	if err != nil {
		return nil, opErr(OpHome, home, err)
	}
	b.inUse.Homes++
	return &tree{b: b, home: n}, nil
}

// WriteFile stores data at name (relative to the backend's root), creating
// the directories above it, as if an upload had been committed.
func (b *Backend) WriteFile(name string, data []byte) error {
	elems, err := splitRel(name)
	if err != nil || len(elems) == 0 {
		return opErr("writefile", name, storage.ErrInvalidName)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dir, err := b.mkdirAll(b.root, elems[:len(elems)-1])
	if err != nil {
		return opErr("writefile", name, err)
	}
	base := elems[len(elems)-1]
	if old, ok := dir.children[base]; ok && old.dir {
		return opErr("writefile", name, storage.ErrIsDir)
	}
	b.install(dir, base, slices.Clone(data))
	return nil
}

// install puts data under dir/base: a new file, or new content for the
// file there (keeping its ID and permission bits). b.mu must be held.
func (b *Backend) install(dir *node, base string, data []byte) {
	now := time.Now()
	f, ok := dir.children[base]
	if !ok || f.dir {
		f = b.newNode(false)
		dir.children[base] = f
		dir.mtime = now
	}
	f.data, f.mtime, f.sum = data, now, nil
}

// SetChecksum stores sum as the SHA-256 of the file at name (relative to
// the backend's root), right or wrong: tests use it to tell an answer
// from the stored value from one computed from the content.
func (b *Backend) SetChecksum(name string, sum [32]byte) error {
	elems, err := splitRel(name)
	if err != nil {
		return opErr("setchecksum", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := walk(b.root, elems)
	if err != nil {
		return opErr("setchecksum", name, err)
	}
	n.sum = &sum
	return nil
}

// Checksum returns the SHA-256 stored with the file at name (relative to
// the backend's root), if any.
func (b *Backend) Checksum(name string) ([32]byte, bool) {
	elems, err := splitRel(name)
	if err != nil {
		return [32]byte{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := walk(b.root, elems)
	if err != nil || n.sum == nil {
		return [32]byte{}, false
	}
	return *n.sum, true
}

// ReadFile returns the content of the file at name (relative to the
// backend's root).
func (b *Backend) ReadFile(name string) ([]byte, error) {
	elems, err := splitRel(name)
	if err != nil {
		return nil, opErr("readfile", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := walk(b.root, elems)
	if err != nil {
		return nil, opErr("readfile", name, err)
	}
	if n.dir {
		return nil, opErr("readfile", name, storage.ErrIsDir)
	}
	return slices.Clone(n.data), nil
}

// MkdirAll creates the directory name (relative to the backend's root) and
// its parents.
func (b *Backend) MkdirAll(name string) error {
	elems, err := splitRel(name)
	if err != nil {
		return opErr("mkdirall", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err = b.mkdirAll(b.root, elems)
	return opErr("mkdirall", name, err)
}

// Chtimes sets the modification time of name (relative to the backend's
// root), whatever the capabilities say.
func (b *Backend) Chtimes(name string, mtime time.Time) error {
	elems, err := splitRel(name)
	if err != nil {
		return opErr("chtimes", name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := walk(b.root, elems)
	if err != nil {
		return opErr("chtimes", name, err)
	}
	n.mtime = mtime
	return nil
}

// tree is one home.
type tree struct {
	b      *Backend
	home   *node
	closed bool // under b.mu
}

var _ storage.Storage = (*tree)(nil)

// begin runs the checks every operation starts with: the context, a closed
// tree, the path and injected faults. It returns the path's elements.
func (t *tree) begin(ctx context.Context, op Op, name string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, opErr(op, name, err)
	}
	t.b.mu.Lock()
	closed := t.closed
	t.b.mu.Unlock()
	if closed {
		return nil, opErr(op, name, errClosed)
	}
	elems, err := splitPath(name)
	if err != nil {
		return nil, opErr(op, name, err)
	}
	if err := t.b.injected(op, name); err != nil {
		return nil, opErr(op, name, err)
	}
	return elems, nil
}

func (n *node) info(name string) storage.FileInfo {
	fi := storage.FileInfo{Name: name, ModTime: n.mtime, Mode: n.perm, ID: strconv.FormatUint(n.id, 10)}
	if n.dir {
		fi.Mode |= fs.ModeDir
	} else {
		fi.Size = int64(len(n.data))
	}
	return fi
}

func baseName(elems []string) string {
	if len(elems) == 0 {
		return "/"
	}
	return elems[len(elems)-1]
}

// Stat describes name; the home is named "/".
func (t *tree) Stat(ctx context.Context, name string) (storage.FileInfo, error) {
	elems, err := t.begin(ctx, OpStat, name)
	if err != nil {
		return storage.FileInfo{}, err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	n, err := walk(t.home, elems)
	if err != nil {
		return storage.FileInfo{}, opErr(OpStat, name, err)
	}
	return n.info(baseName(elems)), nil
}

// Open reads a file from offset; an offset at or beyond the end reads
// nothing. The reader sees the content as it was at Open.
func (t *tree) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	elems, err := t.begin(ctx, OpOpen, name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, opErr(OpOpen, name, fmt.Errorf("negative offset %d: %w", offset, storage.ErrUnsupported))
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	n, err := walk(t.home, elems)
	if err != nil {
		return nil, opErr(OpOpen, name, err)
	}
	if n.dir {
		return nil, opErr(OpOpen, name, storage.ErrIsDir)
	}
	data := n.data
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	t.b.inUse.Readers++
	return &reader{b: t.b, name: name, data: data[offset:]}, nil
}

// reader reads a snapshot of a file.
type reader struct {
	b      *Backend
	name   string
	data   []byte
	closed bool
}

func (r *reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, opErr(OpRead, r.name, errClosed)
	}
	if err := r.b.injected(OpRead, r.name); err != nil {
		return 0, opErr(OpRead, r.name, err)
	}
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func (r *reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.b.mu.Lock()
	r.b.inUse.Readers--
	r.b.mu.Unlock()
	return nil
}

// Create starts an upload. Every kind is atomic (see the package comment).
// An offset beyond the end fails with storage.ErrUnsupported, as on the
// local disk; so do options the capabilities deny.
func (t *tree) Create(ctx context.Context, name string, opts storage.CreateOptions) (storage.Upload, error) {
	elems, err := t.begin(ctx, OpCreate, name)
	if err != nil {
		return nil, err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	switch {
	case len(elems) == 0:
		return nil, opErr(OpCreate, name, storage.ErrIsDir)
	case opts.Offset < 0:
		return nil, opErr(OpCreate, name, fmt.Errorf("negative offset %d: %w", opts.Offset, storage.ErrUnsupported))
	case opts.Append && opts.Offset > 0:
		return nil, opErr(OpCreate, name, fmt.Errorf("append and offset together: %w", storage.ErrUnsupported))
	case opts.Append && !t.b.caps.Append:
		return nil, opErr(OpCreate, name, fmt.Errorf("append: %w", storage.ErrUnsupported))
	case opts.Offset > 0 && !t.b.caps.WriteOffset:
		return nil, opErr(OpCreate, name, fmt.Errorf("write at an offset: %w", storage.ErrUnsupported))
	}
	dir, err := parentOf(t.home, elems)
	if err != nil {
		return nil, opErr(OpCreate, name, err)
	}
	old, exists := dir.children[elems[len(elems)-1]]
	switch {
	case exists && old.dir:
		return nil, opErr(OpCreate, name, storage.ErrIsDir)
	case exists && opts.Exclusive:
		return nil, opErr(OpCreate, name, storage.ErrExist)
	case !exists && opts.Offset > 0:
		return nil, opErr(OpCreate, name, storage.ErrNotExist)
	}
	u := &upload{t: t, name: name, elems: elems, opts: opts}
	if exists && (opts.Append || opts.Offset > 0) {
		if opts.Offset > int64(len(old.data)) {
			return nil, opErr(OpCreate, name, fmt.Errorf("offset %d beyond end of file (%d bytes): %w", opts.Offset, len(old.data), storage.ErrUnsupported))
		}
		// What the upload starts from; the tail it replaces is cut at
		// Commit, so a shorter resumed upload leaves no stale bytes.
		u.base = old
		u.prefix = len(old.data)
		if opts.Offset > 0 {
			u.prefix = int(opts.Offset)
		}
	}
	t.b.inUse.Uploads++
	return u, nil
}

// upload buffers data until Commit.
type upload struct {
	t     *tree
	name  string
	elems []string
	opts  storage.CreateOptions
	// base is the file an append or resumed upload continues, and prefix
	// how many of its bytes are kept before the new data.
	base   *node
	prefix int
	buf    []byte
	done   bool
	sum    *[32]byte // from SetSHA256
}

var _ storage.ChecksumSetter = (*upload)(nil)

// SetSHA256 stores sum with the file at Commit, unless the upload
// continues an existing file.
func (u *upload) SetSHA256(sum [32]byte) {
	if u.base == nil {
		u.sum = &sum
	}
}

// SHA256 returns the checksum stored by the upload that wrote name, as
// storage.Checksummer asks; an append or a resumed upload leaves none.
func (t *tree) SHA256(ctx context.Context, name string) ([32]byte, error) {
	elems, err := t.begin(ctx, OpChecksum, name)
	if err != nil {
		return [32]byte{}, err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	n, err := walk(t.home, elems)
	switch {
	case err != nil:
		return [32]byte{}, opErr(OpChecksum, name, err)
	case n.dir:
		return [32]byte{}, opErr(OpChecksum, name, storage.ErrIsDir)
	case n.sum == nil:
		return [32]byte{}, opErr(OpChecksum, name, storage.ErrNoChecksum)
	}
	return *n.sum, nil
}

var errFinished = errors.New("upload already committed or aborted")

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, opErr(OpWrite, u.name, errFinished)
	}
	if err := u.t.b.injected(OpWrite, u.name); err != nil {
		return 0, opErr(OpWrite, u.name, err)
	}
	u.buf = append(u.buf, p...)
	return len(p), nil
}

// Commit publishes the data. When it fails (an injected fault or a
// cancelled ctx included) the upload is aborted and the old file stays.
func (u *upload) Commit(ctx context.Context) error {
	if u.done {
		return opErr(OpCommit, u.name, errFinished)
	}
	err := ctx.Err()
	if err == nil {
		err = u.t.b.injected(OpCommit, u.name)
	}
	b := u.t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	data := u.buf
	u.finishLocked()
	if err != nil {
		return opErr(OpCommit, u.name, err)
	}
	if u.t.closed {
		return opErr(OpCommit, u.name, errClosed)
	}
	dir, err := parentOf(u.t.home, u.elems)
	if err != nil {
		return opErr(OpCommit, u.name, err)
	}
	base := u.elems[len(u.elems)-1]
	old, exists := dir.children[base]
	switch {
	case exists && old.dir:
		return opErr(OpCommit, u.name, storage.ErrIsDir)
	case exists && u.opts.Exclusive:
		return opErr(OpCommit, u.name, storage.ErrExist)
	}
	if u.base != nil {
		if !exists || old != u.base || u.prefix > len(old.data) {
			// The file was replaced, removed or cut during the upload:
			// continuing it would splice unrelated content.
			return opErr(OpCommit, u.name, fmt.Errorf("file changed during the upload: %w", storage.ErrNotExist))
		}
		data = append(slices.Clip(old.data[:u.prefix]), data...)
	}
	b.install(dir, base, data)
	dir.children[base].sum = u.sum
	return nil
}

// Abort discards the upload; after Commit it does nothing.
func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.t.b.mu.Lock()
	u.finishLocked()
	u.t.b.mu.Unlock()
	return nil
}

func (u *upload) finishLocked() {
	u.done = true
	u.buf = nil
	u.t.b.inUse.Uploads--
}

// ReadDir lists a directory, sorted by name so that tests read stable
// listings. The entries are those present at the call.
func (t *tree) ReadDir(ctx context.Context, name string) (storage.DirIterator, error) {
	elems, err := t.begin(ctx, OpReadDir, name)
	if err != nil {
		return nil, err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	n, err := walk(t.home, elems)
	if err != nil {
		return nil, opErr(OpReadDir, name, err)
	}
	if !n.dir {
		return nil, opErr(OpReadDir, name, storage.ErrNotDir)
	}
	entries := make([]storage.FileInfo, 0, len(n.children))
	for _, k := range slices.Sorted(maps.Keys(n.children)) {
		entries = append(entries, n.children[k].info(k))
	}
	return &dirIter{b: t.b, name: name, entries: entries}, nil
}

type dirIter struct {
	b       *Backend
	name    string
	entries []storage.FileInfo
	closed  bool
}

func (it *dirIter) Next() (storage.FileInfo, error) {
	if it.closed {
		return storage.FileInfo{}, opErr(OpNext, it.name, errClosed)
	}
	if err := it.b.injected(OpNext, it.name); err != nil {
		return storage.FileInfo{}, opErr(OpNext, it.name, err)
	}
	if len(it.entries) == 0 {
		return storage.FileInfo{}, io.EOF
	}
	fi := it.entries[0]
	it.entries = it.entries[1:]
	return fi, nil
}

func (it *dirIter) Close() error {
	it.closed = true
	return nil
}

// Mkdir creates one directory; its parent must exist.
func (t *tree) Mkdir(ctx context.Context, name string) error {
	elems, err := t.begin(ctx, OpMkdir, name)
	if err != nil {
		return err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	if len(elems) == 0 {
		return opErr(OpMkdir, name, storage.ErrExist)
	}
	dir, err := parentOf(t.home, elems)
	if err != nil {
		return opErr(OpMkdir, name, err)
	}
	base := elems[len(elems)-1]
	if _, ok := dir.children[base]; ok {
		return opErr(OpMkdir, name, storage.ErrExist)
	}
	dir.children[base] = t.b.newNode(true)
	dir.mtime = time.Now()
	return nil
}

// Remove deletes a file; directories fail with storage.ErrIsDir.
func (t *tree) Remove(ctx context.Context, name string) error {
	elems, err := t.begin(ctx, OpRemove, name)
	if err != nil {
		return err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	if len(elems) == 0 {
		return opErr(OpRemove, name, storage.ErrIsDir)
	}
	dir, err := parentOf(t.home, elems)
	if err != nil {
		return opErr(OpRemove, name, err)
	}
	base := elems[len(elems)-1]
	n, ok := dir.children[base]
	switch {
	case !ok:
		return opErr(OpRemove, name, storage.ErrNotExist)
	case n.dir:
		return opErr(OpRemove, name, storage.ErrIsDir)
	}
	delete(dir.children, base)
	dir.mtime = time.Now()
	return nil
}

// RemoveDir deletes an empty directory; the home itself is refused with
// storage.ErrPermission.
func (t *tree) RemoveDir(ctx context.Context, name string) error {
	elems, err := t.begin(ctx, OpRemoveDir, name)
	if err != nil {
		return err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	if len(elems) == 0 {
		return opErr(OpRemoveDir, name, errRoot)
	}
	dir, err := parentOf(t.home, elems)
	if err != nil {
		return opErr(OpRemoveDir, name, err)
	}
	base := elems[len(elems)-1]
	n, ok := dir.children[base]
	switch {
	case !ok:
		return opErr(OpRemoveDir, name, storage.ErrNotExist)
	case !n.dir:
		return opErr(OpRemoveDir, name, storage.ErrNotDir)
	case len(n.children) > 0:
		return opErr(OpRemoveDir, name, storage.ErrNotEmpty)
	}
	delete(dir.children, base)
	dir.mtime = time.Now()
	return nil
}

// Rename moves from to to, replacing a file at to. A directory at to fails
// with storage.ErrExist, a directory over a file with storage.ErrNotDir, a
// directory into itself with storage.ErrInvalidName and the home with
// storage.ErrPermission; directories need Capabilities.RenameDir.
func (t *tree) Rename(ctx context.Context, from, to string) error {
	fromElems, err := t.begin(ctx, OpRename, from)
	if err != nil {
		return err
	}
	toElems, err := splitPath(to)
	if err != nil {
		return opErr(OpRename, to, err)
	}
	names := from + " -> " + to
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	if len(fromElems) == 0 || len(toElems) == 0 {
		return opErr(OpRename, names, errRoot)
	}
	srcDir, err := parentOf(t.home, fromElems)
	if err != nil {
		return opErr(OpRename, names, err)
	}
	srcBase := fromElems[len(fromElems)-1]
	n, ok := srcDir.children[srcBase]
	if !ok {
		return opErr(OpRename, names, storage.ErrNotExist)
	}
	if n.dir && !t.b.caps.RenameDir {
		return opErr(OpRename, names, fmt.Errorf("rename a directory: %w", storage.ErrUnsupported))
	}
	if n.dir && len(toElems) > len(fromElems) && slices.Equal(toElems[:len(fromElems)], fromElems) {
		return opErr(OpRename, names, fmt.Errorf("cannot move a directory into itself: %w", storage.ErrInvalidName))
	}
	dstDir, err := parentOf(t.home, toElems)
	if err != nil {
		return opErr(OpRename, names, err)
	}
	dstBase := toElems[len(toElems)-1]
	if old, ok := dstDir.children[dstBase]; ok {
		switch {
		case old == n:
			return nil
		case old.dir:
			return opErr(OpRename, names, storage.ErrExist)
		case n.dir:
			return opErr(OpRename, names, storage.ErrNotDir)
		}
	}
	delete(srcDir.children, srcBase)
	dstDir.children[dstBase] = n
	now := time.Now()
	srcDir.mtime, dstDir.mtime = now, now
	return nil
}

// SetModTime sets the modification time (Capabilities.SetModTime).
func (t *tree) SetModTime(ctx context.Context, name string, mtime time.Time) error {
	elems, err := t.begin(ctx, OpSetModTime, name)
	if err != nil {
		return err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	if !t.b.caps.SetModTime {
		return opErr(OpSetModTime, name, storage.ErrUnsupported)
	}
	n, err := walk(t.home, elems)
	if err != nil {
		return opErr(OpSetModTime, name, err)
	}
	n.mtime = mtime
	return nil
}

// Chmod sets permission bits (Capabilities.Chmod); other bits fail with
// storage.ErrUnsupported and the home with storage.ErrPermission, as on
// the local disk. The bits are recorded, not enforced.
func (t *tree) Chmod(ctx context.Context, name string, mode fs.FileMode) error {
	elems, err := t.begin(ctx, OpChmod, name)
	if err != nil {
		return err
	}
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	switch {
	case !t.b.caps.Chmod:
		return opErr(OpChmod, name, storage.ErrUnsupported)
	case mode&^fs.ModePerm != 0:
		return opErr(OpChmod, name, fmt.Errorf("mode %o: only permission bits: %w", uint32(mode), storage.ErrUnsupported))
	case len(elems) == 0:
		return opErr(OpChmod, name, errRoot)
	}
	n, err := walk(t.home, elems)
	if err != nil {
		return opErr(OpChmod, name, err)
	}
	n.perm = mode
	return nil
}

// Capabilities reports the backend's current capabilities.
func (t *tree) Capabilities() storage.Capabilities {
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	return t.b.caps
}

// Close ends the tree; later operations fail with fs.ErrClosed. It is
// idempotent.
func (t *tree) Close() error {
	t.b.mu.Lock()
	defer t.b.mu.Unlock()
	if !t.closed {
		t.closed = true
		t.b.inUse.Homes--
	}
	return nil
}
