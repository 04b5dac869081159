// Package storage defines what the FTP protocol needs from a file store, so
// that local disk and S3 can serve the same sessions.
//
// It offers:
//   - Storage, one user's jailed file tree, addressed by clean virtual paths;
//   - Upload, a write that becomes visible only when committed;
//   - DirIterator, a streaming directory listing;
//   - Capabilities, what a backend can do beyond the basics, so the protocol
//     layer can answer clearly instead of failing half-way;
//   - the sentinel errors every backend maps its failures to.
//
// Paths given to a Storage are absolute, slash-separated and already cleaned
// ("/", "/dir/file.txt"): "/" is the user's home. Backends must still make
// sure that no path, symlink or key ever reaches outside that home.
package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"
)

// Errors that backends return (possibly wrapped) so the protocol layer can map
// them to reply codes in one place. The fs ones are reused so that errors from
// the os package match them with errors.Is without translation.
var (
	ErrNotExist    = fs.ErrNotExist
	ErrExist       = fs.ErrExist
	ErrPermission  = fs.ErrPermission
	ErrNotEmpty    = errors.New("directory not empty")
	ErrIsDir       = errors.New("is a directory")
	ErrNotDir      = errors.New("not a directory")
	ErrNoSpace     = errors.New("no space left on storage")
	ErrQuota       = errors.New("storage quota exceeded")
	ErrUnsupported = errors.New("operation not supported by this storage backend")
	ErrInvalidName = errors.New("invalid file name")
	// ErrNoChecksum: no checksum is stored for the file, or the one stored
	// no longer matches it (see Checksummer).
	ErrNoChecksum = errors.New("no stored checksum")
)

// FileInfo describes one file or directory.
type FileInfo struct {
	Name    string      // base name, no slashes
	Size    int64       // bytes; 0 for directories
	ModTime time.Time   // last modification
	Mode    fs.FileMode // type bits and Unix permission bits (directories carry fs.ModeDir)
	// ID identifies the file uniquely within the backend (MLST "unique"
	// fact); empty when the backend has no such notion.
	ID string
}

// IsDir reports whether the entry is a directory.
func (fi FileInfo) IsDir() bool { return fi.Mode.IsDir() }

// Capabilities says what a backend can do beyond reading, creating whole
// files, listing, renaming and removing.
type Capabilities struct {
	Append      bool // APPE: append to an existing file
	WriteOffset bool // REST + STOR: continue an upload at an offset
	SetModTime  bool // MFMT / MDTM with a time argument
	Chmod       bool // SITE CHMOD
	// RenameDir is true when directories can be renamed.
	RenameDir bool
}

// CreateOptions tells Create how to write.
type CreateOptions struct {
	// Offset, when > 0, continues an existing file at that byte offset (REST
	// then STOR): the file becomes its first Offset bytes followed by what
	// is written. Local files are written in place; S3 writes a new object
	// that replaces the old one at Commit. Needs Capabilities.WriteOffset.
	Offset int64
	// Append writes at the end of an existing file, creating it if needed
	// (APPE), in place or as a new object like Offset. Needs
	// Capabilities.Append.
	Append bool
	// Exclusive fails with ErrExist when the target exists (STOU, and users
	// without the overwrite permission).
	Exclusive bool
}

// Upload is a file being written. Data becomes visible under its name only
// when Commit returns nil; Abort (or a failed Commit) leaves whatever was
// there before untouched. Exactly one of Commit or Abort must be called;
// calling Abort after Commit is a harmless no-op, so callers may defer it.
type Upload interface {
	io.Writer
	// Commit publishes the written data.
	Commit(ctx context.Context) error
	// Abort discards the written data.
	Abort() error
}

// ChecksumSetter is an Upload that can store the SHA-256 of its data with
// the file, so that HASH and XSHA256 answer without reading it again.
// SetSHA256 is called before Commit with the hash of every byte written;
// the backend stores it with the commit (atomically where it can) or not
// at all: a backend that cannot store it only loses the shortcut.
// Uploads that append or resume are never given one (their hash would be
// of the part written, not of the file).
type ChecksumSetter interface {
	SetSHA256(sum [32]byte)
}

// Checksummer is a Storage that can return the SHA-256 stored with a file
// by an upload's ChecksumSetter. It must never return a value that may not
// be the file's: a backend binds the value to the version of the file it
// was computed for (size and mtime, an S3 ETag) and answers ErrNoChecksum
// when the file has changed since, or nothing is stored.
type Checksummer interface {
	SHA256(ctx context.Context, name string) ([32]byte, error)
}

// StatOpener is a Storage that can open a file for reading from its start
// and describe it in one step, where Stat and Open would each look the
// path up (a download of a small file from local disk paid three system
// calls for the Stat alone). OpenStat fails with ErrIsDir for a directory,
// as Open does; the FileInfo is the file's as Stat would give it, for the
// file that was opened.
type StatOpener interface {
	OpenStat(ctx context.Context, name string) (io.ReadCloser, FileInfo, error)
}

// Replacer is an Upload that can tell whether committing it now would
// replace something at its name (a file, a link), without a request that
// may wait on the network. The server asks it when an upload ends, to
// decide whether the client may have died mid-upload with a file to lose
// (Config.ReplaceGrace); without it, the server asks Stat. An in-place
// upload (Append, Offset) answers true: its file is there.
type Replacer interface {
	Replaces() (bool, error)
}

// Discarder is an Upload that can be thrown away leaving the file as it
// was before, where Abort keeps what an in-place upload (Append, Offset)
// wrote so that the client can resume. The server discards an upload a
// limit refused (a maximum file size): it failed by policy, not by
// accident, and nothing of it should stay. Discard is Abort for an atomic
// upload; an in-place one is cut back to the file's length before the
// upload (bytes it overwrote below that length, at an offset, stay
// overwritten). Backends whose uploads are all atomic need not implement
// it.
type Discarder interface {
	Upload
	Discard() error
}

// DirIterator streams the entries of a directory. Next returns io.EOF after
// the last entry. Entries come in the backend's order; callers must not
// assume sorting. Close releases the iterator's resources.
type DirIterator interface {
	Next() (FileInfo, error)
	Close() error
}

// Storage is one user's file tree. Implementations must be safe for use by
// one session at a time (a session never calls it concurrently, except that
// a transfer may be in flight while Stat is called for STAT).
type Storage interface {
	// Stat describes name.
	Stat(ctx context.Context, name string) (FileInfo, error)
	// Open opens a file for reading, starting at offset. The local backend
	// returns an *os.File so downloads can use sendfile.
	Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error)
	// Create starts writing name as opts say.
	Create(ctx context.Context, name string, opts CreateOptions) (Upload, error)
	// ReadDir lists a directory.
	ReadDir(ctx context.Context, name string) (DirIterator, error)
	// Mkdir creates one directory; its parent must exist.
	Mkdir(ctx context.Context, name string) error
	// Remove deletes a file (not a directory: ErrIsDir).
	Remove(ctx context.Context, name string) error
	// RemoveDir deletes an empty directory (ErrNotEmpty otherwise).
	RemoveDir(ctx context.Context, name string) error
	// Rename moves from to to, replacing a file at to.
	Rename(ctx context.Context, from, to string) error
	// SetModTime sets the modification time (Capabilities.SetModTime).
	SetModTime(ctx context.Context, name string, t time.Time) error
	// Chmod sets Unix permission bits (Capabilities.Chmod).
	Chmod(ctx context.Context, name string, mode fs.FileMode) error
	// Capabilities reports what the backend supports.
	Capabilities() Capabilities
	// Close releases the tree (open directory handles and the like).
	Close() error
}

// Backend hands out per-user trees.
type Backend interface {
	// Home returns the tree rooted at home, a slash-separated path relative
	// to the backend's root ("" or "." for the root itself). It creates the
	// home directory if it does not exist.
	Home(ctx context.Context, home string) (Storage, error)
}

// WriteChecker is a backend that can check, leaving nothing behind, that
// the server may create files in it (for "cloudftpd doctor": a storage
// root owned by another user, or a bucket policy without s3:PutObject,
// otherwise shows only at the first upload).
type WriteChecker interface {
	CheckWrite(ctx context.Context) error
}

// Locator is a Storage that can say where a file lives in the backend: a
// path on disk, an S3 key. Events carry it so that a hook or an auditor
// can find the object without knowing the server's layout.
type Locator interface {
	Locate(name string) string
}
