package local

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// The SHA-256 of an upload is stored in an extended attribute of the file,
// set on the temporary file before it is renamed over the target, so the
// value and the content are published in one step; a rename keeps it, and
// listings never show it. The value binds the hash to the version of the
// file it was computed for:
//
//	v1 <hex sha256> <size> <mtime in Unix nanoseconds>
//
// A file changed since (appended to, resumed, rewritten by something other
// than cloudftpd) no longer matches its size and mtime, and SHA256 answers
// storage.ErrNoChecksum instead of a stale value. SetModTime (MFMT, which
// clients send right after an upload) moves the binding to the new time.
const checksumAttr = "user.cloudftpd.sha256"

// checksumValue formats the attribute for sum over the file fi describes.
func checksumValue(sum [32]byte, fi fs.FileInfo) []byte {
	return fmt.Appendf(nil, "v1 %s %d %d", hex.EncodeToString(sum[:]), fi.Size(), fi.ModTime().UnixNano())
}

// parseChecksum reads an attribute value and checks it against fi.
func parseChecksum(v []byte, fi fs.FileInfo) ([32]byte, bool) {
	var sum [32]byte
	f := strings.Fields(string(v))
	if len(f) != 4 || f[0] != "v1" {
		return sum, false
	}
	b, err := hex.DecodeString(f[1])
	size, err1 := strconv.ParseInt(f[2], 10, 64)
	mtime, err2 := strconv.ParseInt(f[3], 10, 64)
	if err != nil || err1 != nil || err2 != nil || len(b) != len(sum) {
		return sum, false
	}
	if size != fi.Size() || mtime != fi.ModTime().UnixNano() {
		return sum, false
	}
	copy(sum[:], b)
	return sum, true
}

// storeChecksum sets the attribute on the open file f. A file system
// without user extended attributes (tmpfs before Linux 6.6, some network
// and FUSE file systems) is logged once per backend and otherwise
// ignored: HASH then computes the value on request.
func (t *tree) storeChecksum(f *os.File, name string, sum [32]byte) {
	fi, err := f.Stat()
	if err == nil {
		err = fsetxattr(f, checksumAttr, checksumValue(sum, fi))
	}
	t.checksumFailed(name, err)
}

// dropChecksum removes the attribute from f, whose content is about to
// change in place (APPE, REST + STOR).
func (t *tree) dropChecksum(f *os.File, name string) {
	err := fremovexattr(f, checksumAttr)
	if errors.Is(err, errNoAttr) {
		err = nil
	}
	t.checksumFailed(name, err)
}

func (t *tree) checksumFailed(name string, err error) {
	if err == nil || t.xattr == nil {
		return
	}
	if errors.Is(err, errXattrUnsupported) {
		if t.xattr.warned.CompareAndSwap(false, true) {
			t.xattr.log.Warn("local: the storage root's file system has no user extended attributes; upload checksums are not stored, and HASH computes them on request",
				"attribute", checksumAttr, "err", err)
		}
		return
	}
	t.xattr.log.Warn("local: could not store an upload's checksum; HASH will compute it on request", "path", name, "err", err)
}

// SHA256 returns the SHA-256 stored with name by its upload, or
// storage.ErrNoChecksum when none is stored or the file has changed since.
func (t *tree) SHA256(ctx context.Context, name string) ([32]byte, error) {
	rel, err := t.resolve(ctx, "checksum", name)
	if err != nil {
		return [32]byte{}, err
	}
	f, fi, err := t.openRegular("checksum", name, rel, os.O_RDONLY, 0)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	v, err := fgetxattr(f, checksumAttr)
	if err != nil {
		if errors.Is(err, errNoAttr) || errors.Is(err, errXattrUnsupported) {
			return [32]byte{}, &opError{op: "checksum", name: name, kind: storage.ErrNoChecksum, err: storage.ErrNoChecksum}
		}
		return [32]byte{}, mapErr("checksum", name, err)
	}
	sum, ok := parseChecksum(v, fi)
	if !ok {
		return [32]byte{}, &opError{op: "checksum", name: name, kind: storage.ErrNoChecksum, err: fmt.Errorf("stored checksum is for another version of the file: %w", storage.ErrNoChecksum)}
	}
	return sum, nil
}

// keepChecksum re-binds a valid stored checksum of rel to the file's new
// modification time, after SetModTime changed it from before.
func (t *tree) keepChecksum(name, rel string, before fs.FileInfo, sum [32]byte) {
	f, err := t.root.OpenFile(rel, os.O_RDONLY|nonblockFlag, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fileID(fi) == "" || fileID(fi) != fileID(before) || fi.Size() != before.Size() {
		return
	}
	t.checksumFailed(name, fsetxattr(f, checksumAttr, checksumValue(sum, fi)))
}

// setModTime is SetModTime keeping a stored checksum valid.
func (t *tree) setModTime(name, rel string, mtime time.Time) error {
	var sum [32]byte
	var before fs.FileInfo
	if f, fi, err := t.openRegular("chtimes", name, rel, os.O_RDONLY, 0); err == nil {
		if v, err := fgetxattr(f, checksumAttr); err == nil {
			var ok bool
			if sum, ok = parseChecksum(v, fi); ok {
				before = fi
			}
		}
		f.Close()
	}
	if err := t.root.Chtimes(rel, time.Time{}, mtime); err != nil {
		return mapErr("chtimes", name, err)
	}
	if before != nil {
		t.keepChecksum(name, rel, before, sum)
	}
	return nil
}
