package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/s3test"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

const mib = 1 << 20

// randomData returns n reproducible pseudo-random bytes.
func randomData(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

// writerOnly hides an Upload's ReadFrom, so io.Copy goes through Write.
type writerOnly struct{ io.Writer }

func TestMultipartUpload(t *testing.T) {
	for _, tt := range []struct {
		name string
		copy func(up storage.Upload, data []byte) error
	}{
		{"Write", func(up storage.Upload, data []byte) error {
			// Chunks that do not divide the part size.
			_, err := io.CopyBuffer(writerOnly{up}, bytes.NewReader(data), make([]byte, 100_000))
			return err
		}},
		{"ReadFrom", func(up storage.Upload, data []byte) error {
			n, err := io.Copy(up, io.LimitReader(bytes.NewReader(data), int64(len(data))))
			if err == nil && n != int64(len(data)) {
				err = errors.New("short copy")
			}
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			s, _ := f.backend(t, Options{PartSize: 5 * mib, Concurrency: 2}).Home(t.Context(), "alice")
			data := randomData(12 * mib)
			f.reset()
			up, err := s.Create(t.Context(), "/big.bin", storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer up.Abort()
			if err := tt.copy(up, data); err != nil {
				t.Fatalf("copy: %v", err)
			}
			if err := up.Commit(t.Context()); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if got, want := sha256.Sum256(f.get(t, "alice/big.bin")), sha256.Sum256(data); got != want {
				t.Error("object read back differs from the upload")
			}
			if n := f.count(isCreateUpload); n != 1 {
				t.Errorf("%d CreateMultipartUpload requests, want 1", n)
			}
			// With the SDK's default checksums (AWS), the upload declares
			// CRC32 and every part carries one, as S3 then requires.
			for _, r := range f.requests() {
				if isCreateUpload(r) && r.header.Get("X-Amz-Checksum-Algorithm") != "CRC32" {
					t.Errorf("CreateMultipartUpload without the CRC32 checksum algorithm: %v", r.header)
				}
				if isUploadPart(r) && r.header.Get("X-Amz-Checksum-Crc32") == "" {
					t.Errorf("UploadPart without a CRC32 checksum: %v", r.header)
				}
			}
			if n := f.count(isUploadPart); n != 3 { // 5 + 5 + 2 MiB
				t.Errorf("%d UploadPart requests, want 3", n)
			}
			if n := f.count(isCompleteUpload); n != 1 {
				t.Errorf("%d CompleteMultipartUpload requests, want 1", n)
			}
			if n := f.count(isPlainPut); n != 0 {
				t.Errorf("%d PutObject requests, want none", n)
			}
			if p := f.pendingUploads(t); len(p) != 0 {
				t.Errorf("multipart uploads left: %v", p)
			}
			if _, err := up.Write([]byte("x")); err == nil {
				t.Error("Write after Commit succeeded")
			}
			if err := up.Commit(t.Context()); err == nil {
				t.Error("second Commit succeeded")
			}
		})
	}
}

// TestSmallUploadIsOnePut checks that a file smaller than a part is sent
// with one PutObject, conditional when exclusive.
func TestSmallUploadIsOnePut(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{}).Home(t.Context(), "alice")
	f.reset()
	up, err := s.Create(t.Context(), "/small", storage.CreateOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "hello")
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	var puts []request
	for _, r := range f.requests() {
		if isPlainPut(r) {
			puts = append(puts, r)
		}
	}
	if len(puts) != 1 || puts[0].header.Get("If-None-Match") != "*" {
		t.Errorf("PutObject requests %+v, want one with If-None-Match: *", puts)
	}
	if n := f.count(isCreateUpload); n != 0 {
		t.Errorf("%d CreateMultipartUpload requests for 5 bytes", n)
	}
	if got := string(f.get(t, "alice/small")); got != "hello" {
		t.Errorf("object reads %q", got)
	}
}

func TestAbortMultipart(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{PartSize: 5 * mib}).Home(t.Context(), "alice")
	f.put(t, "alice/f", "old")
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(randomData(12 * mib)); err != nil {
		t.Fatal(err)
	}
	if err := up.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	// Two parts were started; Abort may cancel the second before it
	// reaches the server.
	if n := f.count(isCreateUpload); n != 1 {
		t.Errorf("%d multipart uploads started, want 1 (the test needs one)", n)
	}
	if got := string(f.get(t, "alice/f")); got != "old" {
		t.Errorf("after Abort the object reads %q, want the old content", got)
	}
	if p := f.pendingUploads(t); len(p) != 0 {
		t.Errorf("multipart uploads left after Abort: %v", p)
	}
	aborts := f.count(func(r request) bool { return r.method == "DELETE" && r.query.Has("uploadId") })
	if aborts != 1 {
		t.Errorf("%d AbortMultipartUpload requests, want 1", aborts)
	}
	if err := up.Commit(t.Context()); err == nil {
		t.Error("Commit after Abort succeeded")
	}
}

// TestAbortAgainAfterCancelledPart checks that an upload whose part
// request was cancelled in flight is aborted again later: the server may
// still store that part after the first abort and so revive the upload
// (versitygw does). Uploads whose parts all finished are aborted once.
func TestAbortAgainAfterCancelledPart(t *testing.T) {
	isAbort := func(r request) bool { return r.method == "DELETE" && r.query.Has("uploadId") }
	for _, tt := range []struct {
		name       string
		hang       bool // part 2 hangs until the client gives up on it
		wantAborts int
	}{
		{"part in flight", true, 3},
		{"parts done", false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			b := f.backend(t, Options{PartSize: 5 * mib, Concurrency: 2})
			b.reabortAfter = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
			s, _ := b.Home(t.Context(), "alice")
			inFlight := make(chan struct{})
			f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if !tt.hang || r.Method != "PUT" || r.URL.Query().Get("partNumber") != "2" {
					return false
				}
				// Read the body first: only then does the server watch
				// the connection and cancel r's context when the client
				// closes it.
				io.Copy(io.Discard, r.Body)
				close(inFlight)
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				return true
			})
			up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := up.Write(randomData(11 * mib)); err != nil {
				t.Fatal(err)
			}
			if tt.hang {
				<-inFlight
			} else {
				up.(*upload).wg.Wait() // both parts stored
			}
			if err := up.Abort(); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for f.count(isAbort) < tt.wantAborts && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // time for any abort too many
			if n := f.count(isAbort); n != tt.wantAborts {
				t.Errorf("%d AbortMultipartUpload requests, want %d", n, tt.wantAborts)
			}
			if p := f.pendingUploads(t); len(p) != 0 {
				t.Errorf("multipart uploads left: %v", p)
			}
		})
	}
}

// TestExclusiveMultipart checks the check before completion on a server
// that ignores If-None-Match on CompleteMultipartUpload (gofakes3 does).
func TestExclusiveMultipart(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{PartSize: 5 * mib}).Home(t.Context(), "alice")
	up, err := s.Create(t.Context(), "/race", storage.CreateOptions{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	if _, err := up.Write(randomData(11 * mib)); err != nil {
		t.Fatal(err)
	}
	f.put(t, "alice/race", "early")
	if err := up.Commit(t.Context()); !errors.Is(err, storage.ErrExist) {
		t.Errorf("exclusive Commit after the target appeared: %v, want ErrExist", err)
	}
	if got := string(f.get(t, "alice/race")); got != "early" {
		t.Errorf("object reads %q, want the one that appeared", got)
	}
	if p := f.pendingUploads(t); len(p) != 0 {
		t.Errorf("multipart uploads left: %v", p)
	}
	var completes []request
	for _, r := range f.requests() {
		if isCompleteUpload(r) {
			completes = append(completes, r)
		}
	}
	if len(completes) != 0 {
		t.Errorf("CompleteMultipartUpload sent although the target exists: %+v", completes)
	}
}

// TestPartFailure checks that a part refused by the server fails the
// upload, aborts the multipart upload and publishes nothing.
func TestPartFailure(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{PartSize: 5 * mib, Concurrency: 1}).Home(t.Context(), "alice")
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != "PUT" || r.URL.Query().Get("partNumber") != "2" {
			return false
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
		return true
	})
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	data := randomData(5 * mib)
	for range 5 {
		if _, err = up.Write(data); err != nil {
			break
		}
	}
	if err == nil {
		err = up.Commit(t.Context())
	}
	if !errors.Is(err, storage.ErrPermission) {
		t.Errorf("upload with a refused part: %v, want ErrPermission", err)
	}
	if err := up.Commit(t.Context()); err == nil {
		t.Error("Commit after a failed part succeeded")
	}
	if p := f.pendingUploads(t); len(p) != 0 {
		t.Errorf("multipart uploads left: %v", p)
	}
	if _, err := s.Stat(t.Context(), "/f"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat after the failed upload: %v, want ErrNotExist", err)
	}
}

// TestUploadMemory checks that an upload holds at most Concurrency+1 part
// buffers whatever the file size. The server drops the parts' bodies so
// that only the client's memory is measured.
func TestUploadMemory(t *testing.T) {
	const size = 64 * mib
	f := newFake(t)
	s, _ := f.backend(t, Options{PartSize: 5 * mib, Concurrency: 2}).Home(t.Context(), "alice")

	var received atomic.Int64
	var peak atomic.Uint64
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for p := peak.Load(); ms.HeapInuse > p && !peak.CompareAndSwap(p, ms.HeapInuse); p = peak.Load() {
		}
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == "PUT" && r.URL.Query().Has("partNumber") {
			sample()
			n, _ := io.Copy(io.Discard, r.Body)
			received.Add(n)
			r.Body = io.NopCloser(strings.NewReader("x"))
			r.ContentLength = 1
			r.Header.Set("Content-Length", "1")
		}
		return false
	})

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak.Store(before.HeapInuse)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				sample()
			}
		}
	})

	up, err := s.Create(t.Context(), "/big", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	// A stream, not a 64 MiB slice: only the upload's buffers count.
	n, err := io.Copy(up, io.LimitReader(rand.NewChaCha8([32]byte{2}), size))
	if err != nil || n != size {
		t.Fatalf("copy: %d bytes, %v", n, err)
	}
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	sample()

	if got := received.Load(); got != size {
		t.Errorf("server received %d bytes of parts, want %d", got, size)
	}
	if n := f.count(isUploadPart); n != 13 {
		t.Errorf("%d parts, want 13", n)
	}
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("heap in use grew by %.1f MiB for a %d MiB upload", float64(growth)/mib, size/mib)
	if growth > 40*mib {
		t.Errorf("heap in use grew by %.1f MiB, want < 40 MiB (3 buffers of 5 MiB)", float64(growth)/mib)
	}
}

func TestPartSizeFor(t *testing.T) {
	for _, tt := range []struct {
		base, limit int64
		n           int32
		want        int64
	}{
		{5 * mib, MaxPartSize, 1, 5 * mib},
		{5 * mib, MaxPartSize, 1000, 5 * mib},
		{5 * mib, MaxPartSize, 1001, 10 * mib},
		{5 * mib, MaxPartSize, 2001, 20 * mib},
		{5 * mib, MaxPartSize, 10_000, 5 * mib << 9},
		{16 * mib, MaxPartSize, 8001, 4096 * mib},
		{16 * mib, MaxPartSize, 9001, MaxPartSize},
		{16 * mib, MaxPartSize, 10_000, MaxPartSize},
		{MaxPartSize, MaxPartSize, 5000, MaxPartSize},
		{1 << 30, MaxPartSize, 4001, MaxPartSize},
		// The upload memory caps the growth, also between two doublings.
		{16 * mib, 256 * mib, 4001, 256 * mib},
		{16 * mib, 256 * mib, 10_000, 256 * mib},
		{16 * mib, 100 * mib, 2001, 64 * mib},
		{16 * mib, 100 * mib, 3001, 100 * mib},
		{16 * mib, 16 * mib, 9000, 16 * mib},
	} {
		if got := partSizeFor(tt.base, tt.limit, tt.n); got != tt.want {
			t.Errorf("partSizeFor(%d, %d, %d) = %d, want %d", tt.base, tt.limit, tt.n, got, tt.want)
		}
	}
	// What 10,000 parts cover, for the documentation's claims.
	for _, tt := range []struct {
		base, limit     int64
		atLeast, atMost int64
	}{
		{MinPartSize, MaxPartSize, 48 << 40 / 10, 5 << 40},                     // 4.8 TiB
		{DefaultPartSize, MaxPartSize, 5 << 40, 100 << 40},                     // S3's largest object
		{DefaultPartSize, DefaultUploadMemory, 169 << 40 / 100, 17 << 40 / 10}, // 1.69 TiB with the defaults
		{DefaultPartSize, 2 << 30, 5 << 40, 100 << 40},                         // 5 TiB needs 2 GiB
		{DefaultPartSize, 1 << 30, 0, 5 << 40},                                 // and 1 GiB is not enough
		{MinPartSize, 2560 << 20, 48 << 40 / 10, 5 << 40},                      // 4.8 TiB from 5 MiB needs 2.5 GiB
	} {
		var total int64
		prev := int64(0)
		for n := int32(1); n <= maxParts; n++ {
			size := partSizeFor(tt.base, tt.limit, n)
			if size < prev || size > tt.limit || size > MaxPartSize {
				t.Fatalf("partSizeFor(%d, %d, %d) = %d after %d", tt.base, tt.limit, n, size, prev)
			}
			prev = size
			total += size
		}
		if total < tt.atLeast || total > tt.atMost {
			t.Errorf("10,000 parts from %d bytes up to %d cover %d bytes, want %d to %d", tt.base, tt.limit, total, tt.atLeast, tt.atMost)
		}
		if got := maxUploadSize(tt.base, tt.limit); got != total {
			t.Errorf("maxUploadSize(%d, %d) = %d, want %d", tt.base, tt.limit, got, total)
		}
		sizes := partSizes(tt.base, tt.limit)
		if sizes[0] != tt.base || sizes[len(sizes)-1] != prev {
			t.Errorf("partSizes(%d, %d) = %v", tt.base, tt.limit, sizes)
		}
	}
}

// TestCommitAbortOrder checks who wins between Commit and Abort: an Abort
// before Commit, or during Commit before the final request, means that
// nothing is published and Commit fails; once the final request is sent
// Abort is a no-op and Commit's result stands.
func TestCommitAbortOrder(t *testing.T) {
	isAbort := func(r request) bool { return r.method == "DELETE" && r.query.Has("uploadId") }
	isFinal := func(r request) bool { return isCompleteUpload(r) || isPlainPut(r) }
	for _, tt := range []struct {
		name string
		size int // of the upload: small is one PutObject, large three parts
		// block is the request held at the server until the Abort; nil
		// for none.
		block       func(*http.Request) bool
		abortFirst  bool // Abort before Commit starts; else Abort while it waits on block, or after it
		wantPublish bool
	}{
		{name: "small, abort first", size: 10, abortFirst: true},
		{name: "large, abort first", size: 11 * mib, abortFirst: true},
		{name: "large, abort while the last part is sent", size: 11 * mib,
			block: func(r *http.Request) bool { return r.Method == "PUT" && r.URL.Query().Get("partNumber") == "3" }},
		{name: "small, abort while publishing", size: 10, wantPublish: true,
			block: func(r *http.Request) bool { return r.Method == "PUT" && !r.URL.Query().Has("uploadId") }},
		{name: "large, abort while publishing", size: 11 * mib, wantPublish: true,
			block: func(r *http.Request) bool { return r.Method == "POST" && r.URL.Query().Has("uploadId") }},
		{name: "small, abort after commit", size: 10, wantPublish: true},
		{name: "large, abort after commit", size: 11 * mib, wantPublish: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			s, _ := f.backend(t, Options{PartSize: 5 * mib, Concurrency: 1}).Home(t.Context(), "alice")
			reached := make(chan struct{})
			release := make(chan struct{})
			if tt.block != nil {
				f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
					if tt.block(r) {
						close(reached)
						<-release
					}
					return false
				})
			}
			up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			data := randomData(tt.size)
			if _, err := up.Write(data[:tt.size-5]); err != nil {
				t.Fatal(err)
			}
			if tt.abortFirst {
				if err := up.Abort(); err != nil {
					t.Fatalf("Abort: %v", err)
				}
			}
			commit := make(chan error, 1)
			go func() {
				if _, err := up.Write(data[tt.size-5:]); err != nil && !tt.abortFirst {
					t.Errorf("Write: %v", err)
				}
				commit <- up.Commit(t.Context())
			}()
			if tt.block != nil {
				<-reached
				aborted := make(chan error, 1)
				go func() { aborted <- up.Abort() }()
				// Abort does not wait for the request held at the
				// server: it cancels it, or leaves it be.
				select {
				case err := <-aborted:
					if err != nil {
						t.Errorf("Abort: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("Abort waited for Commit's request")
				}
				close(release)
			}
			err = <-commit
			if !tt.abortFirst && tt.block == nil {
				if err := up.Abort(); err != nil {
					t.Errorf("Abort after Commit: %v", err)
				}
			}
			switch {
			case tt.wantPublish && err != nil:
				t.Errorf("Commit: %v, want success", err)
			case !tt.wantPublish && !errors.Is(err, errAborted) && !errors.Is(err, context.Canceled):
				t.Errorf("Commit after Abort: %v, want it to say aborted", err)
			}
			got, err := s.Stat(t.Context(), "/f")
			switch {
			case tt.wantPublish && (err != nil || got.Size != int64(tt.size)):
				t.Errorf("Stat: %+v, %v; want the object of %d bytes", got, err, tt.size)
			case !tt.wantPublish && !errors.Is(err, storage.ErrNotExist):
				t.Errorf("Stat after Abort: %+v, %v; want ErrNotExist", got, err)
			}
			if !tt.wantPublish && f.count(isFinal) != 0 {
				t.Errorf("the final request was sent after Abort")
			}
			if tt.wantPublish && f.count(isAbort) != 0 {
				t.Errorf("the multipart upload was aborted although Commit published it")
			}
			if tt.size > 5*mib { // gofakes3 fails the listing when it never had one
				if p := f.pendingUploads(t); len(p) != 0 {
					t.Errorf("multipart uploads left: %v", p)
				}
			}
			if inUse, _ := up.(*upload).t.b.mem.usage(); inUse != 0 {
				t.Errorf("%d bytes of part memory still in use", inUse)
			}
		})
	}
}

// TestCommitAbortRaceVersitygw runs Commit and Abort at the same time, many times,
// against versitygw (run it with -race): whoever wins, the object exists
// exactly when Commit reports success, and nothing is left behind.
func TestCommitAbortRaceVersitygw(t *testing.T) {
	gw := s3test.Versitygw(t, "race")
	b, err := New(t.Context(), Options{Bucket: gw.Bucket, Client: gw.Client, PartSize: MinPartSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	// A part cancelled by the Abort may still be stored by versitygw
	// after the abort, and revive the upload; see defaultReabortAfter.
	b.reabortAfter = []time.Duration{10 * time.Millisecond, 100 * time.Millisecond}
	s, _ := b.Home(t.Context(), "alice")
	sizes := []int{0, 100, 6 * mib}
	won := map[bool]int{}
	for i := range 24 {
		size := sizes[i%len(sizes)]
		name := fmt.Sprintf("/f%d", i)
		up, err := s.Create(t.Context(), name, storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Write(randomData(size)); err != nil {
			t.Fatal(err)
		}
		var commitErr, abortErr error
		var wg sync.WaitGroup
		wg.Go(func() { commitErr = up.Commit(t.Context()) })
		wg.Go(func() {
			time.Sleep(time.Duration(i%4) * time.Millisecond)
			abortErr = up.Abort()
		})
		wg.Wait()
		if abortErr != nil {
			t.Errorf("%s: Abort: %v", name, abortErr)
		}
		info, err := s.Stat(t.Context(), name)
		exists := err == nil
		if exists != (commitErr == nil) || (exists && info.Size != int64(size)) {
			t.Errorf("%s (%d bytes): Commit %v, object %+v %v", name, size, commitErr, info, err)
		}
		won[commitErr == nil]++
	}
	t.Logf("Commit won %d times, Abort %d times", won[true], won[false])
	deadline := time.Now().Add(5 * time.Second)
	p := gw.PendingUploads(t)
	for len(p) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		p = gw.PendingUploads(t)
	}
	if len(p) != 0 {
		t.Errorf("multipart uploads left: %v", p)
	}
	if inUse, _ := b.mem.usage(); inUse != 0 {
		t.Errorf("%d bytes of part memory still in use", inUse)
	}
}

// TestUploadMemoryBudgetVersitygw runs many uploads at once with a budget
// of a few parts: they take turns for the part memory and all store what
// they were given, and the memory handed out never exceeds the budget.
func TestUploadMemoryBudgetVersitygw(t *testing.T) {
	const (
		uploads = 16
		budget  = 3 * MinPartSize
	)
	gw := s3test.Versitygw(t, "budget")
	b, err := New(t.Context(), Options{Bucket: gw.Bucket, Client: gw.Client, PartSize: MinPartSize, Concurrency: 2, UploadMemory: budget})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := b.Home(t.Context(), "alice")
	sums := make([][32]byte, uploads)
	var wg sync.WaitGroup
	for i := range uploads {
		wg.Go(func() {
			size := int64(i) * mib * 3 / 4 // 0 to 11.25 MiB: one PutObject up to three parts
			data := io.LimitReader(rand.NewChaCha8([32]byte{byte(i)}), size)
			h := sha256.New()
			up, err := s.Create(t.Context(), fmt.Sprintf("/f%d", i), storage.CreateOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			defer up.Abort()
			if n, err := io.Copy(up, io.TeeReader(data, h)); err != nil || n != size {
				t.Errorf("upload %d: %d bytes, %v", i, n, err)
				return
			}
			if err := up.Commit(t.Context()); err != nil {
				t.Errorf("upload %d: Commit: %v", i, err)
			}
			h.Sum(sums[i][:0])
		})
	}
	wg.Wait()
	for i := range uploads {
		got, err := gw.Get(t.Context(), fmt.Sprintf("alice/f%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sums[i] {
			t.Errorf("f%d: %d bytes read back differ from the upload", i, len(got))
		}
	}
	inUse, peak := b.mem.usage()
	t.Logf("part memory peak %d MiB of a budget of %d MiB", peak/mib, budget/mib)
	if peak > budget || inUse != 0 {
		t.Errorf("part memory: peak %d, %d in use at the end; want at most %d and 0", peak, inUse, budget)
	}
	if peak < budget {
		t.Errorf("part memory peak %d: the uploads never had to wait, the test tests nothing", peak)
	}
}

// TestUploadWaitsForMemory checks that an upload that finds the part
// memory used up waits: until another upload gives its buffer back, or
// until its context ends (a session that is closed), and not longer.
func TestUploadWaitsForMemory(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cancel bool // end the waiting upload's context; else finish the other upload
	}{
		{"the other upload ends", false},
		{"its context ends", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			b := f.backend(t, Options{PartSize: 5 * mib, UploadMemory: 5 * mib})
			s, _ := b.Home(t.Context(), "alice")
			holder := create(t, s, "/holder")
			if _, err := holder.Write([]byte("holds the only part buffer")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			waiter, err := s.Create(ctx, "/waiter", storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer waiter.Abort()
			wrote := make(chan error, 1)
			go func() {
				_, err := waiter.Write([]byte("waits"))
				wrote <- err
			}()
			select {
			case err := <-wrote:
				t.Fatalf("Write did not wait for memory: %v", err)
			case <-time.After(200 * time.Millisecond):
			}
			if tt.cancel {
				cancel()
			} else if err := holder.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-wrote:
				switch {
				case tt.cancel && !errors.Is(err, context.Canceled):
					t.Errorf("Write after its context ended: %v, want context.Canceled", err)
				case !tt.cancel && err != nil:
					t.Errorf("Write once memory was free: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Write still waits")
			}
			if !tt.cancel {
				if err := waiter.Commit(t.Context()); err != nil {
					t.Fatal(err)
				}
				if got := string(f.get(t, "alice/waiter")); got != "waits" {
					t.Errorf("waiter stored %q", got)
				}
			}
			holder.Abort()
			waiter.Abort()
			if inUse, peak := b.mem.usage(); inUse != 0 || peak != 5*mib {
				t.Errorf("part memory: %d in use, peak %d; want 0 and %d", inUse, peak, 5*mib)
			}
		})
	}
}
