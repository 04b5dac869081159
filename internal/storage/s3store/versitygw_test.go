package s3store

import (
	"fmt"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/s3test"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/storagetest"
)

// TestConformanceVersitygw runs the backend-independent suite against a
// real S3 gateway (versitygw with its POSIX backend), which, unlike
// gofakes3, checks signatures, keeps parts on disk and maps keys to files
// and directories. One gateway serves every case, each in a home of its
// own; list pages of 7 keys make the suite's 1,000-entry directory span
// many pages, and the smallest part size multipart uploads of its larger
// files.
func TestConformanceVersitygw(t *testing.T) {
	gw := s3test.Versitygw(t, "conformance")
	b, err := New(t.Context(), Options{Bucket: gw.Bucket, Prefix: "ftp", Client: gw.Client, PartSize: MinPartSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	b.pageSize = 7
	n := 0
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		n++
		s, err := b.Home(t.Context(), fmt.Sprintf("case%d", n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
