package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudftpd/cloudftpd/internal/s3test"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

func TestCopyRanges(t *testing.T) {
	for _, tt := range []struct {
		n, target int64
		want      []int64
	}{
		{5 * mib, 512 * mib, []int64{5 * mib}},
		{512 * mib, 512 * mib, []int64{512 * mib}},
		{512*mib + 1, 512 * mib, []int64{256*mib + 1, 256 * mib}},
		{12 * mib, 10 * mib, []int64{6 * mib, 6 * mib}},
		{25*mib + 1, 10 * mib, []int64{25*mib/3 + 1, 25*mib/3 + 1, 25 * mib / 3}},
	} {
		got := copyRanges(tt.n, tt.target)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("copyRanges(%d, %d) = %v, want %v", tt.n, tt.target, got, tt.want)
		}
	}
	// Every prefix S3 can hold: parts within S3's limits, adding up, and
	// leaving most of the 10,000 parts for the new data.
	for _, n := range []int64{MinPartSize, 1 << 30, 19 << 30, 1<<40 + 7, 5 << 40} {
		sizes := copyRanges(n, minCopyPartSize)
		var sum int64
		for _, s := range sizes {
			if s < MinPartSize || s > MaxPartSize {
				t.Errorf("copyRanges(%d): a part of %d bytes", n, s)
			}
			sum += s
		}
		if sum != n || len(sizes) > maxCopyParts {
			t.Errorf("copyRanges(%d): %d parts adding up to %d", n, len(sizes), sum)
		}
	}
}

// resumeCase is one resumed upload: the object has old bytes (nil: none),
// the upload continues it as opts say and sends add.
type resumeCase struct {
	name string
	old  []byte
	opts storage.CreateOptions
	add  []byte
	// viaWrite sends add with Write rather than ReadFrom.
	viaWrite bool
}

// want is what the object holds after the case's upload.
func (c resumeCase) want() []byte {
	keep := c.opts.Offset
	if c.opts.Append {
		keep = int64(len(c.old))
	}
	return append(bytes.Clone(c.old[:keep]), c.add...)
}

func resumeCases() []resumeCase {
	old := randomData(12*mib + 3) // three parts of 5 MiB
	add := randomData(7*mib + 5)[7:]
	small := []byte("0123456789")
	return []resumeCase{
		{name: "offset 0", old: old, opts: storage.CreateOptions{}, add: add[:mib]},
		{name: "inside the first part, one PUT", old: old, opts: storage.CreateOptions{Offset: 100}, add: add[:50]},
		{name: "inside the first part", old: old, opts: storage.CreateOptions{Offset: mib + 7}, add: add, viaWrite: true},
		{name: "just below the minimum part", old: old, opts: storage.CreateOptions{Offset: MinPartSize - 1}, add: add},
		{name: "at a part boundary", old: old, opts: storage.CreateOptions{Offset: MinPartSize}, add: add},
		{name: "inside the second part", old: old, opts: storage.CreateOptions{Offset: 7*mib + 1}, add: add[:3], viaWrite: true},
		{name: "two copy parts", old: old, opts: storage.CreateOptions{Offset: 12 * mib}, add: add[:5*mib+1]},
		{name: "at the end, nothing sent", old: old, opts: storage.CreateOptions{Offset: int64(len(old))}},
		{name: "at the end", old: old, opts: storage.CreateOptions{Offset: int64(len(old))}, add: add[:mib]},
		{name: "append", old: old, opts: storage.CreateOptions{Append: true}, add: add},
		{name: "append to a small file", old: small, opts: storage.CreateOptions{Append: true}, add: []byte("abc")},
		{name: "append to an empty file", old: []byte{}, opts: storage.CreateOptions{Append: true}, add: []byte("abc")},
		{name: "append to a missing file", opts: storage.CreateOptions{Append: true}, add: add[:6*mib]},
	}
}

// runResume stores c.old under name (a multipart upload with its checksum
// stored, as the server would; tagged: check that it is, which needs
// object tags for a multipart upload), then runs the case's upload.
func runResume(t *testing.T, s storage.Storage, name string, c resumeCase, tagged bool) error {
	t.Helper()
	if c.old != nil {
		up, err := s.Create(t.Context(), name, storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Write(c.old); err != nil {
			t.Fatal(err)
		}
		up.(storage.ChecksumSetter).SetSHA256(sha256.Sum256(c.old))
		if err := up.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		if sum, err := s.(storage.Checksummer).SHA256(t.Context(), name); tagged && (err != nil || sum != sha256.Sum256(c.old)) {
			t.Fatalf("the original's checksum is not stored: %v", err)
		}
	}
	up, err := s.Create(t.Context(), name, c.opts)
	if err != nil {
		return fmt.Errorf("Create: %w", err)
	}
	defer up.Abort()
	if c.viaWrite {
		_, err = io.CopyBuffer(writerOnly{up}, bytes.NewReader(c.add), make([]byte, 100_000))
	} else {
		_, err = io.Copy(up, bytes.NewReader(c.add))
	}
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	// What the server would do: only whole uploads get a checksum.
	up.(storage.ChecksumSetter).SetSHA256(sha256.Sum256(c.add))
	return up.Commit(t.Context())
}

// TestResumeVersitygw resumes uploads at several offsets against a real
// gateway: the prefix is copied inside S3 (5 MiB and more, in one part or
// two) or read (below), and the result is the old object's first bytes
// followed by the new ones, with no checksum claimed for it.
func TestResumeVersitygw(t *testing.T) {
	gw := s3test.Versitygw(t, "resume")
	b, err := New(t.Context(), Options{Bucket: gw.Bucket, Client: gw.Client, PartSize: MinPartSize, Concurrency: 2, ChecksumTags: true})
	if err != nil {
		t.Fatal(err)
	}
	b.copyPartMax = 10 * mib // a 12 MiB prefix takes two copy parts
	s, _ := b.Home(t.Context(), "alice")
	for i, c := range resumeCases() {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("/f%d", i)
			key := "alice" + name
			if err := runResume(t, s, name, c, true); err != nil {
				t.Fatal(err)
			}
			got, err := gw.Get(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.want(); !bytes.Equal(got, want) {
				t.Fatalf("object: %d bytes, sha256 %x; want %d bytes, %x", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
			}
			resumed := c.old != nil && (c.opts.Offset > 0 || c.opts.Append)
			sum, err := s.(storage.Checksummer).SHA256(t.Context(), name)
			switch {
			case resumed && !errors.Is(err, storage.ErrNoChecksum):
				t.Errorf("SHA256 after the resume: %x, %v; want ErrNoChecksum", sum, err)
			case !resumed && (err != nil || sum != sha256.Sum256(got)) && c.opts.Offset == 0 && !c.opts.Append:
				t.Errorf("SHA256 of a whole upload: %x, %v", sum, err)
			}
			if resumed {
				noStoredSum(t, gw, key)
			}
			if p := gw.PendingUploads(t); len(p) > 0 {
				t.Errorf("multipart uploads left open: %v", p)
			}
		})
	}
	if b.partCopy.Load() != partCopyYes {
		t.Errorf("versitygw's UploadPartCopy was not found to work (state %d)", b.partCopy.Load())
	}
}

// noStoredSum checks that the object key carries none of the checksum
// metadata or tags of the object it replaced.
func noStoredSum(t *testing.T, gw *s3test.Server, key string) {
	t.Helper()
	head, err := gw.Head(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := head.Metadata[metaSHA256]; ok {
		t.Errorf("the resumed object kept the metadata %s=%s", metaSHA256, v)
	}
	tags, err := gw.Client.GetObjectTagging(t.Context(), &s3.GetObjectTaggingInput{Bucket: &gw.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range tags.TagSet {
		if k := aws.ToString(tg.Key); k == tagSHA256 || k == tagETag {
			t.Errorf("the resumed object kept the tag %s=%s", k, aws.ToString(tg.Value))
		}
	}
}

// TestResumeCutVersitygw: a resumed upload cut in the middle leaves the
// object as it was and no multipart upload behind, and resuming it again
// from the same offset completes it.
func TestResumeCutVersitygw(t *testing.T) {
	gw := s3test.Versitygw(t, "resumecut")
	b, err := New(t.Context(), Options{Bucket: gw.Bucket, Client: gw.Client, PartSize: MinPartSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	b.reabortAfter = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond}
	s, _ := b.Home(t.Context(), "alice")
	whole := randomData(30 * mib)
	const have = 9*mib + 11 // what a first upload left
	gw.Put(t, "alice/big.bin", whole[:have])

	up, err := s.Create(t.Context(), "/big.bin", storage.CreateOptions{Offset: have})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(whole[have : 20*mib]); err != nil { // two parts on their way
		t.Fatal(err)
	}
	if err := up.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if got, _ := gw.Get(t.Context(), "alice/big.bin"); !bytes.Equal(got, whole[:have]) {
		t.Fatalf("the cut resume changed the object: %d bytes", len(got))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(gw.PendingUploads(t)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if p := gw.PendingUploads(t); len(p) > 0 {
		t.Errorf("multipart uploads left open after the cut: %v", p)
	}

	up, err = s.Create(t.Context(), "/big.bin", storage.CreateOptions{Offset: have})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if _, err := io.Copy(up, bytes.NewReader(whole[have:])); err != nil {
		t.Fatal(err)
	}
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := gw.Get(t.Context(), "alice/big.bin"); sha256.Sum256(got) != sha256.Sum256(whole) {
		t.Fatalf("after resuming again: %d bytes, differs", len(got))
	}
}

// TestResumeChangedVersitygw: a prefix is never taken from another
// version than the one the resume began with. The copy (and the read) is
// conditional on the ETag: an object replaced meanwhile fails the upload,
// and the replacement stays.
func TestResumeChangedVersitygw(t *testing.T) {
	gw := s3test.Versitygw(t, "resumechanged")
	b, err := New(t.Context(), Options{Bucket: gw.Bucket, Client: gw.Client, PartSize: MinPartSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := b.Home(t.Context(), "alice")
	for i, tc := range []struct {
		name   string
		offset int64
		known  bool // UploadPartCopy known to work: no probe, the copy fails
	}{
		{"read", mib, false},
		{"copy probe", 6 * mib, false},
		{"copy", 6 * mib, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offset := tc.offset
			if tc.known {
				b.partCopy.Store(partCopyYes)
			}
			key := fmt.Sprintf("alice/changed%d", i)
			gw.Put(t, key, randomData(8*mib))
			head, err := gw.Head(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			other := bytes.Repeat([]byte("other writer "), mib)
			gw.Put(t, key, other)
			u := newUpload(t.Context(), s.(*tree), key, false)
			defer u.Abort()
			p := prefix{size: offset, etag: aws.ToString(head.ETag)}
			if offset < MinPartSize {
				err = u.readPrefix(p)
			} else {
				var copied bool
				copied, err = u.copyPrefix(p)
				if copied {
					_, err = u.Write([]byte("new"))
					if err == nil {
						err = u.Commit(t.Context())
					}
				}
			}
			if err == nil || !strings.Contains(err.Error(), "changed since") {
				t.Fatalf("a prefix from a replaced version: %v, want the file changed", err)
			}
			if got, _ := gw.Get(t.Context(), key); !bytes.Equal(got, other) {
				t.Error("the other writer's object was replaced")
			}
		})
	}
}

// TestResumeFake: gofakes3 has no UploadPartCopy (it takes the request for
// an UploadPart without a body). The first resume finds out with a
// one-byte probe and reads the prefix through the server instead, as do
// the next ones without probing; the results are still right, and the
// requests carry the ETag condition.
func TestResumeFake(t *testing.T) {
	f := newFake(t)
	b := f.backend(t, Options{PartSize: MinPartSize, Concurrency: 2})
	s, _ := b.Home(t.Context(), "alice")
	for i, c := range resumeCases() {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("/f%d", i)
			f.reset()
			if err := runResume(t, s, name, c, false); err != nil {
				t.Fatal(err)
			}
			if got, want := f.get(t, "alice"+name), c.want(); !bytes.Equal(got, want) {
				t.Fatalf("object: %d bytes; want %d", len(got), len(want))
			}
			if p := f.pendingUploads(t); len(p) > 0 {
				t.Errorf("multipart uploads left open: %v", p)
			}
			for _, r := range f.requests() {
				if r.method == "GET" && r.header.Get("Range") != "" && r.header.Get("If-Match") == "" {
					t.Errorf("prefix read without If-Match: %v", r.header)
				}
				if r.copySource != "" && r.header.Get("X-Amz-Copy-Source-If-Match") == "" {
					t.Errorf("copy without x-amz-copy-source-if-match: %v", r.header)
				}
			}
		})
	}
	if b.partCopy.Load() != partCopyNo {
		t.Errorf("gofakes3's missing UploadPartCopy was not detected (state %d)", b.partCopy.Load())
	}
	copies := 0
	for _, r := range f.requests() {
		if r.copySource != "" {
			copies++
		}
	}
	if copies != 0 {
		t.Errorf("%d copy requests after the server was known not to copy parts", copies)
	}
}

// TestResumeMemory: a prefix read through the server (no UploadPartCopy)
// streams through the part buffers of the memory budget, not into memory
// whole.
func TestResumeMemory(t *testing.T) {
	f := newFake(t)
	b := f.backend(t, Options{PartSize: MinPartSize, Concurrency: 1, UploadMemory: 2 * MinPartSize})
	b.partCopy.Store(partCopyNo)
	s, _ := b.Home(t.Context(), "alice")
	old := randomData(23 * mib)
	f.put(t, "alice/f", string(old))
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{Append: true})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if _, err := up.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := up.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.get(t, "alice/f"); !bytes.Equal(got, append(old, "tail"...)) {
		t.Fatalf("object: %d bytes", len(got))
	}
	if _, peak := b.mem.usage(); peak > 2*MinPartSize {
		t.Errorf("peak part memory %d, budget %d", peak, 2*MinPartSize)
	}
}
