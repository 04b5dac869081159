package server_test

// The storage backends the end-to-end tests run against, and how a test
// looks at the files a server stores, whichever backend holds them.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/s3test"
)

// backend is a storage backend a test server can use.
type backend struct {
	name string
	// s3 starts the S3-compatible server holding the bucket; nil for
	// local disk.
	s3 func(t testing.TB, bucket string) *s3test.Server
}

// isS3 reports whether b has S3's limits: no MFMT, SITE CHMOD or
// directory rename, and APPE and REST+STOR that write a new object rather
// than in place (see README, "S3 storage").
func (b backend) isS3() bool { return b.s3 != nil }

var (
	localDisk = backend{name: "local"}
	// gofakes3 in process: quick, lenient.
	s3Fake = backend{name: "s3-gofakes3", s3: s3test.Fake}
	// versitygw as a subprocess: a real gateway (signatures, parts on
	// disk, S3's pagination), skipped without the program except in CI.
	s3Versitygw = backend{name: "s3-versitygw", s3: s3test.Versitygw}

	allBackends = []backend{localDisk, s3Fake, s3Versitygw}
	s3Backends  = []backend{s3Fake, s3Versitygw}
)

// forBackends runs f once per backend, each as a subtest named after it,
// like net/http's run(t, f, modes...).
func forBackends(t *testing.T, backends []backend, f func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// The bucket and key prefix of S3 test servers: the home "alice" is
// "homes/alice/".
const (
	s3Bucket = "ftp-bucket"
	s3Prefix = "homes/"
)

// useS3 points cfg at srv the way an operator would: backend = "s3" with
// an endpoint, path-style addressing and credentials from the environment;
// 5 MiB parts (S3's minimum) so that a few MiB already make a multipart
// upload.
func useS3(t *testing.T, cfg *config.Config, srv *s3test.Server) store {
	srv.Env(t)
	cfg.Storage = config.Storage{
		Backend:     "s3",
		Bucket:      srv.Bucket,
		Prefix:      s3Prefix,
		Region:      s3test.Region,
		Endpoint:    srv.URL,
		PathStyle:   true,
		PartSize:    5 << 20,
		Concurrency: 2,
	}
	return &bucketStore{srv: srv, prefix: s3Prefix}
}

// store is the test's view of what a server stores, by slash-separated
// path relative to the storage root ("alice/dir/f.txt"): files on disk, or
// objects under the prefix of a bucket.
type store interface {
	// write stores a file, creating its parent directories.
	write(t testing.TB, rel string, data []byte)
	// mkdir creates a directory and its parents.
	mkdir(t testing.TB, rel string)
	// read returns a file's content; ok is false when there is no file.
	read(t testing.TB, rel string) (data []byte, ok bool)
	// exists reports whether a file or directory exists at rel.
	exists(t testing.TB, rel string) bool
	// listTime is the modification time a listing of rel's directory
	// shows for rel. S3 lists a directory as a common prefix, without a
	// time (zero).
	listTime(t testing.TB, rel string) time.Time
	// tree maps every file under the directory rel (paths relative to
	// it) to its content, and every directory to "<dir>".
	tree(t testing.TB, rel string) map[string]string
}

// diskStore is a local backend's root directory.
type diskStore struct{ root string }

func (d diskStore) path(rel string) string { return filepath.Join(d.root, filepath.FromSlash(rel)) }

func (d diskStore) write(t testing.TB, rel string, data []byte) {
	t.Helper()
	p := d.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (d diskStore) mkdir(t testing.TB, rel string) {
	t.Helper()
	if err := os.MkdirAll(d.path(rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (d diskStore) read(t testing.TB, rel string) ([]byte, bool) {
	t.Helper()
	b, err := os.ReadFile(d.path(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

func (d diskStore) exists(t testing.TB, rel string) bool {
	t.Helper()
	_, err := os.Stat(d.path(rel))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func (d diskStore) listTime(t testing.TB, rel string) time.Time {
	t.Helper()
	fi, err := os.Stat(d.path(rel))
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime().UTC()
}

func (d diskStore) tree(t testing.TB, rel string) map[string]string {
	t.Helper()
	return treeOf(t, d.path(rel))
}

// bucketStore is an S3 backend's bucket, read and written through the
// SDK (as another S3 tool would), under the server's prefix.
type bucketStore struct {
	srv    *s3test.Server
	prefix string
}

// write puts the object and a directory marker for each parent, as MKD
// would have made them, so the tree is the one a local root would hold;
// tests of implicit directories put keys with srv.Put.
func (b *bucketStore) write(t testing.TB, rel string, data []byte) {
	t.Helper()
	if dir := path.Dir(rel); dir != "." {
		b.mkdir(t, dir)
	}
	b.srv.Put(t, b.prefix+rel, data)
}

func (b *bucketStore) mkdir(t testing.TB, rel string) {
	t.Helper()
	elems := strings.Split(rel, "/")
	for i := range elems {
		b.srv.Put(t, b.prefix+strings.Join(elems[:i+1], "/")+"/", nil)
	}
}

func (b *bucketStore) read(t testing.TB, rel string) ([]byte, bool) {
	t.Helper()
	data, err := b.srv.Get(context.Background(), b.prefix+rel)
	if s3test.NotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return data, true
}

func (b *bucketStore) exists(t testing.TB, rel string) bool {
	t.Helper()
	_, err := b.srv.Head(context.Background(), b.prefix+rel)
	if err == nil {
		return true
	}
	if !s3test.NotFound(err) {
		t.Fatal(err)
	}
	return len(b.srv.Keys(t, b.prefix+rel+"/")) > 0
}

func (b *bucketStore) listTime(t testing.TB, rel string) time.Time {
	t.Helper()
	// From a listing, not HeadObject: gofakes3 dates a multipart object
	// from the start of the upload in HEAD but from its completion in
	// listings.
	key := b.prefix + rel
	page, err := b.srv.Client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{
		Bucket: &b.srv.Bucket, Prefix: &key, Delimiter: aws.String("/"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range page.Contents {
		// The file, or a directory's marker: S3 and versitygw list a
		// marker as a common prefix, gofakes3 as an object.
		if k := aws.ToString(o.Key); k == key || k == key+"/" {
			return aws.ToTime(o.LastModified).UTC()
		}
	}
	for _, p := range page.CommonPrefixes {
		if aws.ToString(p.Prefix) == key+"/" {
			return time.Time{} // a directory, listed without a time
		}
	}
	t.Fatalf("%s: no such file or directory in the bucket", rel)
	return time.Time{}
}

func (b *bucketStore) tree(t testing.TB, rel string) map[string]string {
	t.Helper()
	base := b.prefix + rel + "/"
	tree := map[string]string{}
	for _, key := range b.srv.Keys(t, base) {
		r := strings.TrimPrefix(key, base)
		// Every directory above a key exists, marked or not.
		for dir := path.Dir(strings.TrimSuffix(r, "/")); dir != "." && dir != ""; dir = path.Dir(dir) {
			tree[dir] = "<dir>"
		}
		switch {
		case r == "": // the directory's own marker
		case strings.HasSuffix(r, "/"):
			tree[strings.TrimSuffix(r, "/")] = "<dir>"
		default:
			data, _ := b.read(t, rel+"/"+r)
			tree[r] = string(data)
		}
	}
	return tree
}
