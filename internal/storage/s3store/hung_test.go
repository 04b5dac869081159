package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/s3test"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// hungTimeout is the request timeout of the tests of a hung endpoint.
const hungTimeout = 2 * time.Second

// checkTimedOut fails unless err is the request timeout's, found within
// a few timeouts of start (an operation makes several requests, but the
// first that hangs ends it).
func checkTimedOut(t *testing.T, what string, err error, start time.Time) {
	t.Helper()
	took := time.Since(start)
	switch {
	case err == nil:
		t.Errorf("%s on a hung endpoint succeeded", what)
	case !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("%s on a hung endpoint: %v, want an error matching context.DeadlineExceeded", what, err)
	case errors.Is(err, context.Canceled):
		// The protocol layer would answer "cancelled" (426), not 451.
		t.Errorf("%s on a hung endpoint: %v also matches context.Canceled", what, err)
	}
	if took < hungTimeout/2 || took > 4*hungTimeout {
		t.Errorf("%s failed after %v, want about the request timeout of %v", what, took, hungTimeout)
	}
}

// TestHungEndpointVersitygw stops the gateway's process (SIGSTOP: the
// kernel still accepts connections and requests, nothing answers) and
// checks that every kind of operation fails after about the request
// timeout with an error matching context.DeadlineExceeded, instead of
// hanging, and that the backend works again once the gateway continues.
func TestHungEndpointVersitygw(t *testing.T) {
	gw := s3test.Versitygw(t, "hung")
	b, err := New(t.Context(), Options{Bucket: gw.Bucket, Client: gw.Client, PartSize: MinPartSize, Concurrency: 2, RequestTimeout: hungTimeout})
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Home(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	// Larger than what loopback's socket buffers hold, so that a download
	// started before the stop still has to wait for the gateway.
	big := randomData(48 * mib)
	gw.Put(t, "alice/big", big)
	gw.Put(t, "alice/small", []byte("small"))

	for _, tt := range []struct {
		name string
		// before runs while the gateway answers and returns what to do
		// once it is stopped.
		before func(t *testing.T) func() error
	}{
		{"Stat", func(t *testing.T) func() error {
			return func() error { _, err := s.Stat(t.Context(), "/small"); return err }
		}},
		{"Open", func(t *testing.T) func() error {
			return func() error { _, err := s.Open(t.Context(), "/small", 0); return err }
		}},
		{"Read", func(t *testing.T) func() error {
			r, err := s.Open(t.Context(), "/big", 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			if _, err := io.ReadFull(r, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			return func() error { _, err := io.Copy(io.Discard, r); return err }
		}},
		{"ReadDir", func(t *testing.T) func() error {
			return func() error { _, err := s.ReadDir(t.Context(), "/"); return err }
		}},
		{"Create", func(t *testing.T) func() error {
			return func() error { _, err := s.Create(t.Context(), "/new", storage.CreateOptions{}); return err }
		}},
		{"Commit small", func(t *testing.T) func() error {
			up := create(t, s, "/new")
			if _, err := up.Write([]byte("data")); err != nil {
				t.Fatal(err)
			}
			return func() error { return up.Commit(t.Context()) }
		}},
		{"Write and Commit multipart", func(t *testing.T) func() error {
			up := create(t, s, "/new")
			return func() error {
				if _, err := up.Write(big[:12*mib]); err != nil {
					return err
				}
				return up.Commit(t.Context())
			}
		}},
		{"Commit multipart", func(t *testing.T) func() error {
			up := create(t, s, "/new")
			if _, err := up.Write(big[:12*mib]); err != nil {
				t.Fatal(err)
			}
			up.(*upload).wg.Wait() // two parts stored: only the last and the completion hang
			return func() error { return up.Commit(t.Context()) }
		}},
		{"Rename", func(t *testing.T) func() error {
			return func() error { return s.Rename(t.Context(), "/small", "/moved") }
		}},
		{"Remove", func(t *testing.T) func() error {
			return func() error { return s.Remove(t.Context(), "/small") }
		}},
		{"Mkdir", func(t *testing.T) func() error {
			return func() error { return s.Mkdir(t.Context(), "/dir") }
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			op := tt.before(t)
			gw.Pause(t)
			start := time.Now()
			checkTimedOut(t, tt.name, op(), start)
			gw.Resume(t)
			// The backend works again. (Whether /new appears is the
			// gateway's business: it may still act on the request that
			// it had received before it stopped.)
			if _, err := s.Stat(t.Context(), "/small"); err != nil {
				t.Errorf("after the timeout, Stat /small: %v", err)
			}
		})
	}
	if inUse, _ := b.mem.usage(); inUse != 0 {
		t.Errorf("%d bytes of part memory still in use after the uploads ended", inUse)
	}
}

// create starts an upload that is aborted when the test ends.
func create(t *testing.T, s storage.Storage, name string) storage.Upload {
	t.Helper()
	up, err := s.Create(t.Context(), name, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Abort() })
	return up
}

// TestHungRequestBlocksNoOther makes the fake hang every request for one
// key, and checks that while one of them hangs the other requests of the
// backend, uploads included, go on; then that the hung one fails after
// the request timeout, and the upload memory it held is given back.
func TestHungRequestBlocksNoOther(t *testing.T) {
	f := newFake(t)
	// Long enough that the other requests (a 7 MiB upload to the fake
	// among them) finish within it on a loaded CI machine under -race:
	// at 2s they once took 2.4s.
	const timeout = 5 * time.Second
	b := f.backend(t, Options{PartSize: 5 * mib, UploadMemory: 10 * mib, RequestTimeout: timeout})
	s, _ := b.Home(t.Context(), "alice")
	release := make(chan struct{})
	defer close(release)
	hung := make(chan struct{}, 10)
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/"+testBucket+"/alice/hung" || r.Method == "DELETE" {
			return false
		}
		hung <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	})
	f.put(t, "alice/ok", "fine")

	// An upload to the hung key, holding one of the two part buffers
	// while its CreateMultipartUpload hangs, and a Stat of it.
	up := create(t, s, "/hung")
	errs := make(chan error, 2)
	go func() {
		_, err := up.Write(randomData(5*mib + 1)) // a full part is sent
		if err == nil {
			err = up.Commit(t.Context())
		}
		errs <- err
	}()
	<-hung
	go func() { _, err := s.Stat(t.Context(), "/hung"); errs <- err }()
	<-hung
	start := time.Now()

	// Meanwhile, everything else works, uploads with the other buffer.
	if _, err := s.Stat(t.Context(), "/ok"); err != nil {
		t.Errorf("Stat while another request hangs: %v", err)
	}
	if _, err := s.ReadDir(t.Context(), "/"); err != nil {
		t.Errorf("ReadDir while another request hangs: %v", err)
	}
	data := randomData(7 * mib)
	other := create(t, s, "/other")
	if _, err := io.Copy(other, bytes.NewReader(data)); err != nil {
		t.Errorf("upload while another request hangs: %v", err)
	} else if err := other.Commit(t.Context()); err != nil {
		t.Errorf("Commit while another request hangs: %v", err)
	}
	if time.Since(start) >= timeout {
		t.Errorf("the other requests took %v: they waited for the hung ones", time.Since(start))
	}
	for range 2 {
		checkTimedOutWithin(t, <-errs, start, timeout)
	}
	if got := f.get(t, "alice/other"); !bytes.Equal(got, data) {
		t.Errorf("the other upload stored %d bytes, want %d", len(got), len(data))
	}
	if inUse, peak := b.mem.usage(); inUse != 0 || peak > 10*mib {
		t.Errorf("part memory: %d in use at the end, peak %d; want 0 and at most %d", inUse, peak, 10*mib)
	}
}

// checkTimedOutWithin is checkTimedOut for another timeout.
func checkTimedOutWithin(t *testing.T, err error, start time.Time, d time.Duration) {
	t.Helper()
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("hung request: %v, want an error matching only context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 4*d {
		t.Errorf("hung request failed after %v, want about %v", took, d)
	}
}

// TestSlowButMovingIsNoTimeout checks that the request timeout is a limit
// on silence, not on duration: a download that the server trickles out
// over several timeouts, and one read by a client slower than the timeout,
// both complete.
func TestSlowButMovingIsNoTimeout(t *testing.T) {
	f := newFake(t)
	b := f.backend(t, Options{RequestTimeout: 300 * time.Millisecond})
	s, _ := b.Home(t.Context(), "alice")
	f.put(t, "alice/f", string(randomData(64<<10)))
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != "GET" || r.URL.Path != "/"+testBucket+"/alice/trickle" {
			return false
		}
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusOK)
		for range 10 { // 1 s in all, 100 ms between bytes
			time.Sleep(100 * time.Millisecond)
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
		}
		return true
	})
	for _, tt := range []struct {
		name, file string
		pause      time.Duration // between two reads of the client
		want       int
	}{
		{"server trickles", "/trickle", 0, 10},
		{"client is slow", "/f", 400 * time.Millisecond, 64 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.Open(t.Context(), tt.file, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			n := 0
			buf := make([]byte, 16<<10)
			for {
				m, err := r.Read(buf)
				n += m
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v", n, err)
				}
				time.Sleep(tt.pause)
			}
			if n != tt.want {
				t.Errorf("read %d bytes, want %d", n, tt.want)
			}
		})
	}
}
