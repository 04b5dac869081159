package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Modes reported for objects and directories: S3 has no permissions.
const (
	fileMode fs.FileMode = 0o644
	dirMode              = fs.ModeDir | 0o755
)

// tree is one home: every key it touches starts with prefix.
type tree struct {
	b      *Backend
	prefix string // Backend.prefix + home + "/"; "" only for the whole bucket
}

var _ storage.Storage = (*tree)(nil)

// resolve checks ctx and the virtual path name, and returns its key. For
// "/" it returns the home's prefix and root true. Only paths of non-empty
// elements other than "." and ".." reach a key, so a key never leaves the
// prefix; see validElems.
func (t *tree) resolve(ctx context.Context, op, name string) (key string, root bool, err error) {
	if err := ctx.Err(); err != nil {
		return "", false, &opError{op: op, key: name, err: err}
	}
	if name == "/" {
		return t.prefix, true, nil
	}
	if !strings.HasPrefix(name, "/") || !validElems(name[1:]) {
		// Quoted: the name may hold control characters or invalid UTF-8.
		return "", false, newErr(op, strconv.Quote(name), storage.ErrInvalidName, "")
	}
	key = t.prefix + name[1:]
	if len(key)+1 > maxKeyLen { // +1: room for the directory marker's slash
		return "", false, newErr(op, name, storage.ErrInvalidName, "name too long for an S3 key")
	}
	return key, false, nil
}

// dirKey is the prefix of the keys inside the directory whose key is key.
func (t *tree) dirKey(key string, root bool) string {
	if root {
		return t.prefix
	}
	return key + "/"
}

func (t *tree) mapErr(op, key string, err error) error {
	return mapErr(op, t.b.bucket, key, err)
}

// head describes the object key, returning the SDK's error as is.
func (t *tree) head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	return do(ctx, t.b, "HeadObject", t.b.client.HeadObject, &s3.HeadObjectInput{Bucket: &t.b.bucket, Key: &key})
}

// findDir reports whether the directory with the key prefix dir ("a/b/")
// exists, as a marker or implicitly, and the marker's modification time
// (zero for an implicit directory). The home always exists.
func (t *tree) findDir(ctx context.Context, op, dir string) (bool, time.Time, error) {
	if dir == t.prefix {
		return true, time.Time{}, nil
	}
	out, err := do(ctx, t.b, "ListObjectsV2", t.b.client.ListObjectsV2, &s3.ListObjectsV2Input{
		Bucket: &t.b.bucket, Prefix: &dir, MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return false, time.Time{}, t.mapErr(op, dir, err)
	}
	if len(out.Contents) == 0 && len(out.CommonPrefixes) == 0 {
		return false, time.Time{}, nil
	}
	// The marker sorts before every other key with its prefix.
	if c := out.Contents; len(c) > 0 && aws.ToString(c[0].Key) == dir {
		return true, aws.ToTime(c[0].LastModified), nil
	}
	return true, time.Time{}, nil
}

// checkParent fails unless the directory holding name exists: with
// storage.ErrNotExist, or storage.ErrNotDir when it is a file.
func (t *tree) checkParent(ctx context.Context, op, name string) error {
	parent := path.Dir(name)
	if parent == "/" {
		return nil
	}
	key := t.prefix + parent[1:]
	ok, _, err := t.findDir(ctx, op, key+"/")
	if err != nil || ok {
		return err
	}
	if _, err := t.head(ctx, key); err == nil {
		return newErr(op, key, storage.ErrNotDir, "parent is a file")
	}
	return newErr(op, key+"/", storage.ErrNotExist, "parent directory does not exist")
}

// objectInfo describes the object behind name.
func objectInfo(name string, out *s3.HeadObjectOutput) storage.FileInfo {
	return storage.FileInfo{
		Name:    path.Base(name),
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified),
		Mode:    fileMode,
		ID:      strings.Trim(aws.ToString(out.ETag), `"`),
	}
}

// Stat describes name: the object when there is one, else the directory
// (with its marker's time, zero for an implicit directory). "/" is always
// a directory, found without a request.
func (t *tree) Stat(ctx context.Context, name string) (storage.FileInfo, error) {
	key, root, err := t.resolve(ctx, "stat", name)
	if err != nil {
		return storage.FileInfo{}, err
	}
	if root {
		return storage.FileInfo{Name: "/", Mode: dirMode}, nil
	}
	out, err := t.head(ctx, key)
	if err == nil {
		return objectInfo(name, out), nil
	}
	if err = t.mapErr("stat", key, err); !errors.Is(err, storage.ErrNotExist) {
		return storage.FileInfo{}, err
	}
	ok, mtime, derr := t.findDir(ctx, "stat", key+"/")
	if derr != nil {
		return storage.FileInfo{}, derr
	}
	if !ok {
		return storage.FileInfo{}, err
	}
	return storage.FileInfo{Name: path.Base(name), ModTime: mtime, Mode: dirMode}, nil
}

// Open starts a download of name at offset (a GET with a Range header when
// offset > 0). An offset at or beyond the end reads nothing (S3 answers
// 416 InvalidRange, taken as an empty file). The body is read under ctx,
// so pass the transfer's context: cancelling it ends the download. A
// read that gets nothing from S3 for the request timeout fails with an
// error matching context.DeadlineExceeded; the time between reads does
// not count.
func (t *tree) Open(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	key, root, err := t.resolve(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	if root {
		return nil, newErr("get", key, storage.ErrIsDir, "")
	}
	if offset < 0 {
		return nil, newErr("get", key, storage.ErrUnsupported, "negative offset")
	}
	in := &s3.GetObjectInput{Bucket: &t.b.bucket, Key: &key}
	if offset > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	// Not do: the body is read after GetObject returns, so the request
	// (and its watchdog) lives until the body is closed.
	rctx, w := t.b.watch(ctx, "GetObject")
	out, err := t.b.client.GetObject(rctx, in, w.option)
	if err == nil {
		return &download{ReadCloser: out.Body, key: key, w: w}, nil
	}
	w.stop()
	err = w.check(err)
	if offset > 0 && isStatus(err, "InvalidRange", 416) {
		// The object exists and the range starts at or after its end:
		// a download resumed from a complete file reads nothing.
		return io.NopCloser(strings.NewReader("")), nil
	}
	if err = t.mapErr("get", key, err); !errors.Is(err, storage.ErrNotExist) {
		return nil, err
	}
	if ok, _, derr := t.findDir(ctx, "get", key+"/"); derr != nil || ok {
		if derr != nil {
			return nil, derr
		}
		return nil, newErr("get", key, storage.ErrIsDir, "")
	}
	return nil, err
}

// download is the body of a GetObject; closing it ends the request.
type download struct {
	io.ReadCloser // a recvBody, possibly wrapped by the SDK
	key           string
	w             *watchdog
}

// Read reads the body, naming the object in errors.
func (d *download) Read(p []byte) (int, error) {
	n, err := d.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &opError{op: "get", key: d.key, err: err}
	}
	return n, err
}

func (d *download) Close() error {
	err := d.ReadCloser.Close()
	d.w.stop()
	return err
}

// Create starts an upload of name; see the package documentation. Append
// and offset uploads write a new object that starts with the old one's
// first bytes (resume.go). The parent
// directory must exist, and name must not be a directory; Exclusive fails
// here already when the object exists.
//
// ctx governs the whole upload, not only this call: parts are sent under
// it as the data arrives, until Commit (whose own ctx also stops them).
// Pass the transfer's context.
func (t *tree) Create(ctx context.Context, name string, opts storage.CreateOptions) (storage.Upload, error) {
	key, root, err := t.resolve(ctx, "create", name)
	if err != nil {
		return nil, err
	}
	switch {
	case opts.Offset < 0:
		return nil, newErr("create", key, storage.ErrUnsupported, fmt.Sprintf("negative offset %d", opts.Offset))
	case opts.Append && opts.Offset > 0:
		return nil, newErr("create", key, storage.ErrUnsupported, "append and offset together")
	case root:
		return nil, newErr("create", key, storage.ErrIsDir, "")
	}
	if err := t.checkParent(ctx, "create", name); err != nil {
		return nil, err
	}
	if ok, _, err := t.findDir(ctx, "create", key+"/"); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return nil, newErr("create", key, storage.ErrIsDir, "")
	}
	if opts.Append || opts.Offset > 0 {
		return t.createResume(ctx, key, opts)
	}
	if opts.Exclusive {
		_, err := t.head(ctx, key)
		if err == nil {
			return nil, newErr("create", key, storage.ErrExist, "")
		}
		if err = t.mapErr("create", key, err); !errors.Is(err, storage.ErrNotExist) {
			return nil, err
		}
	}
	return newUpload(ctx, t, key, opts.Exclusive), nil
}

// ReadDir lists name with ListObjectsV2 and the delimiter "/", one page at
// a time: the first page is fetched here (so a missing directory fails
// now), the next one only when the previous one has been read. Common
// prefixes and markers are directories; the directory's own marker is
// skipped. Entries come in key order.
func (t *tree) ReadDir(ctx context.Context, name string) (storage.DirIterator, error) {
	key, root, err := t.resolve(ctx, "list", name)
	if err != nil {
		return nil, err
	}
	it := &dirIter{t: t, ctx: ctx, prefix: t.dirKey(key, root), more: true}
	keys, err := it.fetch()
	if err != nil {
		return nil, err
	}
	if keys == 0 && !it.more && !root {
		if _, err := t.head(ctx, key); err == nil {
			return nil, newErr("list", key, storage.ErrNotDir, "")
		}
		return nil, newErr("list", it.prefix, storage.ErrNotExist, "")
	}
	return it, nil
}

// Mkdir writes the marker of a new directory, whose parent must exist. An
// existing file or directory (marked or implicit) fails with
// storage.ErrExist.
func (t *tree) Mkdir(ctx context.Context, name string) error {
	key, root, err := t.resolve(ctx, "mkdir", name)
	if err != nil {
		return err
	}
	if root {
		return newErr("mkdir", key, storage.ErrExist, "")
	}
	if err := t.checkParent(ctx, "mkdir", name); err != nil {
		return err
	}
	if _, err := t.head(ctx, key); err == nil {
		return newErr("mkdir", key, storage.ErrExist, "a file has that name")
	} else if err = t.mapErr("mkdir", key, err); !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	marker := key + "/"
	if ok, _, err := t.findDir(ctx, "mkdir", marker); err != nil || ok {
		if err != nil {
			return err
		}
		return newErr("mkdir", marker, storage.ErrExist, "")
	}
	// Not conditional: a marker written twice by racing Mkdirs is one
	// directory, and some S3-compatible servers refuse If-None-Match.
	_, err = do(ctx, t.b, "PutObject", t.b.client.PutObject, &s3.PutObjectInput{
		Bucket: &t.b.bucket, Key: &marker, Body: strings.NewReader(""), ContentLength: aws.Int64(0),
	})
	return t.mapErr("mkdir", marker, err)
}

// Remove deletes the object name. S3 deletes are idempotent, so the object
// is looked up first: missing ones fail with storage.ErrNotExist,
// directories with storage.ErrIsDir.
func (t *tree) Remove(ctx context.Context, name string) error {
	key, root, err := t.resolve(ctx, "delete", name)
	if err != nil {
		return err
	}
	if root {
		return newErr("delete", key, storage.ErrIsDir, "")
	}
	if _, err := t.head(ctx, key); err != nil {
		if err = t.mapErr("delete", key, err); !errors.Is(err, storage.ErrNotExist) {
			return err
		}
		if ok, _, derr := t.findDir(ctx, "delete", key+"/"); derr != nil || ok {
			if derr != nil {
				return derr
			}
			return newErr("delete", key, storage.ErrIsDir, "")
		}
		return err
	}
	if err := t.keepParent(ctx, "delete", key); err != nil {
		return err
	}
	_, err = do(ctx, t.b, "DeleteObject", t.b.client.DeleteObject, &s3.DeleteObjectInput{Bucket: &t.b.bucket, Key: &key})
	return t.mapErr("delete", key, err)
}

// keepParent writes a marker for the directory holding key if it has
// none, before key is deleted or moved away. A directory that exists only
// because keys are under it (written by another S3 tool) would otherwise
// vanish with its last entry, and a client removing a tree the usual way
// (delete the files, then RMD the directory) would get 550 for the RMD.
// The home needs no marker.
func (t *tree) keepParent(ctx context.Context, op, key string) error {
	dir := key[:strings.LastIndexByte(key, '/')+1]
	if len(dir) <= len(t.prefix) {
		return nil
	}
	if _, err := t.head(ctx, dir); err == nil {
		return nil
	} else if err = t.mapErr(op, dir, err); !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	_, err := do(ctx, t.b, "PutObject", t.b.client.PutObject, &s3.PutObjectInput{
		Bucket: &t.b.bucket, Key: &dir, Body: strings.NewReader(""), ContentLength: aws.Int64(0),
	})
	return t.mapErr(op, dir, err)
}

// RemoveDir deletes the marker of an empty directory. Any other key under
// it fails with storage.ErrNotEmpty; a file with storage.ErrNotDir; the
// home with storage.ErrPermission. A file uploaded into the directory
// between the check and the delete keeps it (implicitly) alive.
func (t *tree) RemoveDir(ctx context.Context, name string) error {
	key, root, err := t.resolve(ctx, "rmdir", name)
	if err != nil {
		return err
	}
	if root {
		return newErr("rmdir", key, storage.ErrPermission, "the home directory cannot be removed")
	}
	if _, err := t.head(ctx, key); err == nil {
		return newErr("rmdir", key, storage.ErrNotDir, "")
	} else if err = t.mapErr("rmdir", key, err); !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	marker := key + "/"
	out, err := do(ctx, t.b, "ListObjectsV2", t.b.client.ListObjectsV2, &s3.ListObjectsV2Input{
		Bucket: &t.b.bucket, Prefix: &marker, MaxKeys: aws.Int32(2),
	})
	if err != nil {
		return t.mapErr("rmdir", marker, err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	switch {
	case len(keys) == 0 && len(out.CommonPrefixes) == 0:
		return newErr("rmdir", marker, storage.ErrNotExist, "")
	case len(keys) != 1 || keys[0] != marker || len(out.CommonPrefixes) > 0:
		return newErr("rmdir", marker, storage.ErrNotEmpty, "")
	}
	if err := t.keepParent(ctx, "rmdir", key); err != nil {
		return err
	}
	_, err = do(ctx, t.b, "DeleteObject", t.b.client.DeleteObject, &s3.DeleteObjectInput{Bucket: &t.b.bucket, Key: &marker})
	return t.mapErr("rmdir", marker, err)
}

// Rename moves the file from to to, replacing a file at to: a server-side
// copy, then a delete of from. It is not atomic: readers may see both names
// for a moment, and if the delete fails both stay (the error says so).
// Directories cannot be renamed (storage.ErrUnsupported); a directory at
// to fails with storage.ErrExist; the home with storage.ErrPermission.
func (t *tree) Rename(ctx context.Context, from, to string) error {
	fromKey, fromRoot, err := t.resolve(ctx, "rename", from)
	if err != nil {
		return err
	}
	toKey, toRoot, err := t.resolve(ctx, "rename", to)
	if err != nil {
		return err
	}
	keys := fromKey + " -> " + toKey
	if fromRoot || toRoot {
		return newErr("rename", keys, storage.ErrPermission, "the home directory cannot be renamed or replaced")
	}
	src, err := t.head(ctx, fromKey)
	if err != nil {
		if err = t.mapErr("rename", fromKey, err); !errors.Is(err, storage.ErrNotExist) {
			return err
		}
		if ok, _, derr := t.findDir(ctx, "rename", fromKey+"/"); derr != nil || ok {
			if derr != nil {
				return derr
			}
			return newErr("rename", keys, storage.ErrUnsupported, "renaming directories is not supported on S3 storage")
		}
		return err
	}
	if fromKey == toKey {
		return nil // copying onto itself then deleting would lose the file
	}
	if ok, _, err := t.findDir(ctx, "rename", toKey+"/"); err != nil || ok {
		if err != nil {
			return err
		}
		return newErr("rename", keys, storage.ErrExist, "a directory has the target name")
	}
	if err := t.checkParent(ctx, "rename", to); err != nil {
		return err
	}
	// A checksum in the tags is bound to the source's ETag: it moves to
	// the copy's (metadata is copied by CopyObject as it is).
	sum, tags, sumErr := t.storedSum(ctx, fromKey, src)
	_, inMeta := src.Metadata[metaSHA256]
	etag, err := t.copy(ctx, fromKey, toKey, aws.ToInt64(src.ContentLength))
	if err != nil {
		return err
	}
	if sumErr == nil && (!inMeta || copyPartSize(aws.ToInt64(src.ContentLength)) > 0) && etag != "" {
		t.tagChecksum(ctx, toKey, etag, sum, tags)
	}
	if err := t.keepParent(ctx, "rename", fromKey); err != nil {
		return err
	}
	_, err = do(ctx, t.b, "DeleteObject", t.b.client.DeleteObject, &s3.DeleteObjectInput{Bucket: &t.b.bucket, Key: &fromKey})
	if err != nil {
		return t.mapErr("rename", keys, fmt.Errorf("copied, but the source could not be deleted: %w", err))
	}
	return nil
}

// SetModTime fails: S3 sets an object's time when it is written.
func (t *tree) SetModTime(ctx context.Context, name string, _ time.Time) error {
	key, _, err := t.resolve(ctx, "chtimes", name)
	if err != nil {
		return err
	}
	return newErr("chtimes", key, storage.ErrUnsupported, "S3 objects cannot be given a modification time")
}

// Chmod fails: S3 objects have no permission bits.
func (t *tree) Chmod(ctx context.Context, name string, _ fs.FileMode) error {
	key, _, err := t.resolve(ctx, "chmod", name)
	if err != nil {
		return err
	}
	return newErr("chmod", key, storage.ErrUnsupported, "S3 objects have no permission bits")
}

// Capabilities reports that S3 objects are written whole, once, but that
// uploads can be resumed and appended to by writing a new object
// (resume.go).
func (t *tree) Capabilities() storage.Capabilities {
	return storage.Capabilities{Append: true, WriteOffset: true}
}

// Close does nothing: a tree holds no resources, and uploads and
// downloads in progress finish or fail on their own.
func (t *tree) Close() error { return nil }

// Locate is the object key of name, for events.
func (t *tree) Locate(name string) string {
	return t.prefix + strings.TrimPrefix(name, "/")
}
