package s3store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudftpd/cloudftpd/internal/s3test"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// TestChecksumStored covers where an upload's SHA-256 goes on S3, against
// versitygw and gofakes3: metadata for a single PutObject, tags bound to
// the ETag for a multipart upload; both carried over by Rename, neither
// believed once the object was replaced by another writer.
func TestChecksumStored(t *testing.T) {
	for _, srv := range []struct {
		name  string
		start func(testing.TB, string) *s3test.Server
		// tags: the server keeps object tags, and ChecksumTags is on;
		// gofakes3 does not (it would take PutObjectTagging for a
		// PutObject), so there the fallback shows: no stored value for
		// multipart uploads, and the object intact.
		tags bool
	}{{"versitygw", s3test.Versitygw, true}, {"gofakes3", s3test.Fake, false}} {
		t.Run(srv.name, func(t *testing.T) {
			gw := srv.start(t, "sums")
			b, err := New(t.Context(), Options{Bucket: gw.Bucket, Prefix: "ftp", Client: gw.Client, PartSize: MinPartSize, Concurrency: 2, ChecksumTags: srv.tags})
			if err != nil {
				t.Fatal(err)
			}
			st, err := b.Home(t.Context(), "alice")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			tr := st.(*tree)
			small := []byte("a small file, one PutObject")
			large := bytes.Repeat([]byte("0123456789abcdef"), (MinPartSize+MinPartSize/2)/16) // two parts

			put := func(name string, data []byte, sum bool) {
				t.Helper()
				up, err := tr.Create(t.Context(), name, storage.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := up.Write(data); err != nil {
					t.Fatal(err)
				}
				if sum {
					up.(storage.ChecksumSetter).SetSHA256(sha256.Sum256(data))
				}
				if err := up.Commit(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			want := func(name string, data []byte) {
				t.Helper()
				got, err := tr.SHA256(t.Context(), name)
				if err != nil || got != sha256.Sum256(data) {
					t.Fatalf("SHA256(%s) = %x, %v; want %x", name, got, err, sha256.Sum256(data))
				}
			}
			none := func(name string) {
				t.Helper()
				if got, err := tr.SHA256(t.Context(), name); !errors.Is(err, storage.ErrNoChecksum) {
					t.Fatalf("SHA256(%s) = %x, %v; want ErrNoChecksum", name, got, err)
				}
			}

			put("/small", small, true)
			want("/small", small)
			if h, err := gw.Head(t.Context(), "ftp/alice/small"); err != nil || h.Metadata[metaSHA256] == "" {
				t.Errorf("metadata of a single-PUT upload: %v, %v", h.Metadata, err)
			}
			put("/large", large, true)
			if !srv.tags {
				none("/large")
				if got, err := gw.Get(t.Context(), "ftp/alice/large"); err != nil || !bytes.Equal(got, large) {
					t.Fatalf("multipart upload without tags: object %d bytes, %v; want it intact", len(got), err)
				}
				return
			}
			want("/large", large)
			if err := tr.Rename(t.Context(), "/small", "/small2"); err != nil {
				t.Fatal(err)
			}
			want("/small2", small)
			if err := tr.Rename(t.Context(), "/large", "/large2"); err != nil {
				t.Fatal(err)
			}
			want("/large2", large)

			put("/plain", small, false)
			none("/plain")
			put("/plain-large", large, false)
			none("/plain-large")

			// Another writer replaces the objects: their values go. For
			// the multipart one, the old tags are even put back on the new
			// object: the ETag binding still refuses them.
			tags, err := gw.Client.GetObjectTagging(t.Context(), &s3.GetObjectTaggingInput{Bucket: &gw.Bucket, Key: new("ftp/alice/large2")})
			if err != nil {
				t.Fatal(err)
			}
			gw.Put(t, "ftp/alice/small2", []byte("rewritten"))
			none("/small2")
			gw.Put(t, "ftp/alice/large2", []byte("rewritten"))
			if _, err := gw.Client.PutObjectTagging(t.Context(), &s3.PutObjectTaggingInput{
				Bucket: &gw.Bucket, Key: new("ftp/alice/large2"), Tagging: &s3types.Tagging{TagSet: tags.TagSet},
			}); err != nil {
				t.Fatal(err)
			}
			none("/large2")

			if _, err := tr.SHA256(t.Context(), "/missing"); !errors.Is(err, storage.ErrNotExist) {
				t.Errorf("SHA256 of a missing object: %v", err)
			}
		})
	}
}
