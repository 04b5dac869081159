package quota

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/state"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/local"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// send drives u the way internal/ftp's copyData drives a gate: it asks
// how much the next chunk (at most chunk bytes) may move, moves that much
// of what is left of size bytes, and reports it. It returns the bytes
// moved and the gate's error.
// ctx is the context of the tests' quota calls, which never wait here
// (no shared store).
var ctx = context.Background()

func send(u *Upload, size, chunk int64) (int64, error) {
	var sent int64
	for {
		n, err := u.Allow(ctx, chunk)
		if err != nil {
			return sent, err
		}
		if n < 1 {
			return sent, fmt.Errorf("Allow returned %d, want at least 1", n)
		}
		moved := min(n, size-sent)
		sent += moved
		if err := u.Moved(moved); err != nil {
			return sent, err
		}
		if moved < n {
			return sent, nil // the data ended
		}
	}
}

func newTracker(t *testing.T, l Limits, used Usage) *Tracker {
	t.Helper()
	k := New(Options{})
	t.Cleanup(func() { k.Close() })
	tr := k.tracker("alice")
	tr.SetLimits(l)
	tr.Set(used, time.Time{})
	return tr
}

func quotaErr(t *testing.T, err error) *storage.QuotaError {
	t.Helper()
	var qe *storage.QuotaError
	if !errors.As(err, &qe) || !errors.Is(err, storage.ErrQuota) {
		t.Fatalf("err = %v, want a *storage.QuotaError matching ErrQuota", err)
	}
	return qe
}

func TestUploadOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		limits   Limits
		used     Usage
		spec     UploadSpec
		size     int64 // bytes the client sends
		chunk    int64
		wantFail bool
		wantUsed Usage // after Commit (or Abort when it fails)
	}{
		{name: "new file fits", limits: Limits{Bytes: 100}, used: Usage{40, 1}, spec: UploadSpec{Old: -1}, size: 60, chunk: 16, wantUsed: Usage{100, 2}},
		{name: "new file one byte over", limits: Limits{Bytes: 100}, used: Usage{40, 1}, spec: UploadSpec{Old: -1}, size: 61, chunk: 16, wantFail: true, wantUsed: Usage{40, 1}},
		{name: "empty file at a full quota", limits: Limits{Bytes: 100}, used: Usage{100, 1}, spec: UploadSpec{Old: -1}, size: 0, chunk: 16, wantUsed: Usage{100, 2}},
		{name: "replace, delta fits", limits: Limits{Bytes: 100}, used: Usage{90, 2}, spec: UploadSpec{Old: 50}, size: 60, chunk: 7, wantUsed: Usage{100, 2}},
		{name: "replace, delta too big", limits: Limits{Bytes: 100}, used: Usage{90, 2}, spec: UploadSpec{Old: 50}, size: 61, chunk: 7, wantFail: true, wantUsed: Usage{90, 2}},
		{name: "replace with smaller at a quota lowered below usage", limits: Limits{Bytes: 100}, used: Usage{150, 2}, spec: UploadSpec{Old: 50}, size: 10, chunk: 7, wantUsed: Usage{110, 2}},
		{name: "files only", limits: Limits{Files: 3}, used: Usage{1 << 40, 2}, spec: UploadSpec{Old: -1}, size: 1000, chunk: 64, wantUsed: Usage{1<<40 + 1000, 3}},
		{name: "one big chunk", limits: Limits{Bytes: 1 << 20}, used: Usage{}, spec: UploadSpec{Old: -1}, size: 1<<20 + 1, chunk: 4 << 20, wantFail: true, wantUsed: Usage{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(t, tc.limits, tc.used)
			u, err := tr.Upload(ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			sent, err := send(u, tc.size, tc.chunk)
			if tc.wantFail {
				quotaErr(t, err)
				u.Abort()
			} else {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				if sent != tc.size {
					t.Fatalf("sent %d of %d bytes", sent, tc.size)
				}
				if err := u.Prepare(ctx, tc.spec.Old, sent); err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				u.Commit(tc.spec.Old, sent)
			}
			st := tr.Status()
			if st.Used != tc.wantUsed || st.Reserved != (Usage{}) {
				t.Errorf("used %+v reserved %+v, want used %+v and nothing reserved", st.Used, st.Reserved, tc.wantUsed)
			}
		})
	}
}

// TestInPlaceNeverPastQuota: an APPE never writes a byte past the quota,
// and what it wrote counts even when it fails.
func TestInPlaceNeverPastQuota(t *testing.T) {
	tr := newTracker(t, Limits{Bytes: 100}, Usage{70, 1})
	u, err := tr.Upload(ctx, UploadSpec{Old: 20, Base: 20, InPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := send(u, 50, 8)
	quotaErr(t, err)
	if sent != 30 {
		t.Fatalf("APPE wrote %d bytes, want exactly the 30 left", sent)
	}
	u.Commit(20, 20+sent)
	if st := tr.Status(); st.Used != (Usage{100, 1}) || st.Reserved != (Usage{}) {
		t.Errorf("after the APPE: %+v", st)
	}
}

func TestFileCount(t *testing.T) {
	tr := newTracker(t, Limits{Files: 2}, Usage{10, 1})
	first, err := tr.Upload(ctx, UploadSpec{Old: -1})
	if err != nil {
		t.Fatal(err)
	}
	// The slot is held while the first upload runs.
	_, err = tr.Upload(ctx, UploadSpec{Old: -1})
	if qe := quotaErr(t, err); !qe.Files || qe.Used != 2 || qe.Limit != 2 || qe.InFlight != 1 {
		t.Errorf("refusal %+v", qe)
	} else if got, want := qe.Error(), "Quota exceeded: 2 of 2 files used (1 of them being uploaded)."; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	// Replacing an existing file needs no slot.
	repl, err := tr.Upload(ctx, UploadSpec{Old: 5})
	if err != nil {
		t.Fatalf("replace refused: %v", err)
	}
	repl.Abort()
	first.Abort()
	again, err := tr.Upload(ctx, UploadSpec{Old: -1})
	if err != nil {
		t.Fatalf("slot not given back by Abort: %v", err)
	}
	// A file that vanished during the upload needs a slot at commit.
	gone, _ := tr.Upload(ctx, UploadSpec{Old: 3})
	if err := gone.Prepare(ctx, -1, 3); err == nil {
		t.Error("Prepare found a slot for a second new file with the quota at 2")
	}
	gone.Abort()
	if err := again.Prepare(ctx, -1, 4); err != nil {
		t.Fatal(err)
	}
	again.Commit(-1, 4)
	if st := tr.Status(); st.Used != (Usage{14, 2}) || st.Reserved != (Usage{}) {
		t.Errorf("after the commit: %+v", st)
	}
	tr.Removed(4)
	if st := tr.Status(); st.Used != (Usage{10, 1}) {
		t.Errorf("after Removed: %+v", st)
	}
}

// TestParallelUploads runs 20 uploads of random sizes at once against one
// tracker: the bytes committed never exceed the quota, usage is exactly
// what was committed, every refusal is a quota error, and nothing stays
// reserved.
func TestParallelUploads(t *testing.T) {
	for round := range 20 {
		const limit = 1000
		tr := newTracker(t, Limits{Bytes: limit, Files: 15}, Usage{100, 1})
		var mu sync.Mutex
		var committed, refused int64
		var wg sync.WaitGroup
		for i := range 20 {
			size := int64(rand.IntN(200))
			wg.Go(func() {
				u, err := tr.Upload(ctx, UploadSpec{Old: -1})
				if err != nil {
					quotaErr(t, err) // the file count
					mu.Lock()
					refused++
					mu.Unlock()
					return
				}
				sent, err := send(u, size, int64(1+i%17))
				if err == nil {
					err = u.Prepare(ctx, -1, sent)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					quotaErr(t, err)
					u.Abort()
					refused++
					return
				}
				u.Commit(-1, sent)
				committed += sent
			})
		}
		wg.Wait()
		st := tr.Status()
		if st.Used.Bytes != 100+committed || st.Used.Bytes > limit || st.Used.Files > 15 || st.Reserved != (Usage{}) {
			t.Fatalf("round %d: %+v, committed %d", round, st, committed)
		}
		if refused == 0 && committed < 900 {
			t.Fatalf("round %d: nothing refused but only %d committed", round, committed)
		}
	}
}

// TestUnchanged: an upload learns whether the user's files changed
// since it started (then its commit must look at the target again).
func TestUnchanged(t *testing.T) {
	tr := newTracker(t, Limits{Bytes: 100}, Usage{})
	a, _ := tr.Upload(ctx, UploadSpec{Old: -1})
	b, _ := tr.Upload(ctx, UploadSpec{Old: 10})
	if !a.Unchanged() || !b.Unchanged() {
		t.Fatal("changed before anything happened")
	}
	a.Prepare(ctx, -1, 0)
	a.Commit(-1, 0)
	if b.Unchanged() {
		t.Error("b does not see a's commit")
	}
	c, _ := tr.Upload(ctx, UploadSpec{Old: -1})
	tr.Removed(3)
	if c.Unchanged() {
		t.Error("c does not see the removal")
	}
	b.Abort()
	c.Abort()
}

func TestQuotaErrorText(t *testing.T) {
	e := &storage.QuotaError{Used: 98 * (10 << 30) / 100, Limit: 10 << 30}
	if got, want := e.Error(), "Quota exceeded: 9.7 GiB of 10 GiB used."; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	e.InFlight = 120 << 20
	if got, want := e.Error(), "Quota exceeded: 9.7 GiB of 10 GiB used (120 MiB of it by uploads in progress)."; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestScan(t *testing.T) {
	ctx := context.Background()
	files := map[string]int{"a.txt": 10, "d/b.bin": 200, "d/e/c": 0, "d/e/f/g": 3000}
	check := func(t *testing.T, tree storage.Storage) {
		t.Helper()
		u, err := Scan(ctx, tree)
		if err != nil {
			t.Fatal(err)
		}
		if want := (Usage{3210, 4}); u != want {
			t.Errorf("Scan = %+v, want %+v", u, want)
		}
	}
	t.Run("memstore", func(t *testing.T) {
		b := memstore.New()
		for name, n := range files {
			if err := b.WriteFile("alice/"+name, make([]byte, n)); err != nil {
				t.Fatal(err)
			}
		}
		b.MkdirAll("alice/empty/dir")
		tree, err := b.Home(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		check(t, tree)
	})
	t.Run("local", func(t *testing.T) {
		b, err := local.New(t.TempDir(), local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tree, err := b.Home(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		defer tree.Close()
		for name, n := range files {
			writeFile(t, tree, name, n)
		}
		// An upload in progress is not counted.
		up, err := tree.Create(ctx, "/d/pending", storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		up.Write(make([]byte, 999))
		defer up.Abort()
		check(t, tree)
	})
}

func writeFile(t *testing.T, tree storage.Storage, name string, n int) {
	t.Helper()
	ctx := context.Background()
	dir := ""
	for i, c := range name {
		if c == '/' {
			dir = name[:i]
			if err := tree.Mkdir(ctx, "/"+dir); err != nil && !errors.Is(err, storage.ErrExist) {
				t.Fatal(err)
			}
		}
	}
	up, err := tree.Create(ctx, "/"+name, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := up.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestKeeperPersistence: usage is scanned at first use, written to the
// state store, trusted after a clean stop, and scanned again after a
// crash (a keeper that never closed).
func TestKeeperPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := memstore.New()
	b.WriteFile("alice/a", make([]byte, 100))
	tree, _ := b.Home(ctx, "alice")
	var stores []*state.Store
	t.Cleanup(func() {
		for _, s := range stores {
			s.Close()
		}
	})
	newKeeper := func() *Keeper {
		return New(Options{FlushInterval: 10 * time.Millisecond, Open: func(ctx context.Context) (Store, error) {
			s, err := state.Open(ctx, dir)
			if err == nil {
				stores = append(stores, s)
			}
			return s, err
		}})
	}
	limits := Limits{Bytes: 1000}

	k := newKeeper()
	tr, err := k.Tracker(ctx, "alice", limits, tree)
	if err != nil {
		t.Fatal(err)
	}
	if st := tr.Status(); st.Used != (Usage{100, 1}) || st.Scanned.IsZero() {
		t.Fatalf("first use: %+v, want the scanned 100 bytes in 1 file", st)
	}
	u, _ := tr.Upload(ctx, UploadSpec{Old: -1})
	send(u, 50, 16)
	u.Prepare(ctx, -1, 50)
	u.Commit(-1, 50)
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}

	// The tree changes behind the server's back: the stored figure is
	// trusted after a clean stop.
	b.WriteFile("alice/b", make([]byte, 7))
	k = newKeeper()
	tr, err = k.Tracker(ctx, "alice", limits, tree)
	if err != nil {
		t.Fatal(err)
	}
	if st := tr.Status(); st.Used != (Usage{150, 2}) {
		t.Fatalf("after a clean restart: %+v, want the stored 150 bytes in 2 files", st)
	}
	tr.Removed(50)
	// Let the flush loop write it, then "crash": no Close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		row, _, _ := stores[len(stores)-1].UsageOf(ctx, "alice")
		if row.Bytes == 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flush loop never wrote the change: %+v", row)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(k.stop)
	<-k.done

	k = newKeeper()
	defer k.Close()
	tr, err = k.Tracker(ctx, "alice", limits, tree)
	if err != nil {
		t.Fatal(err)
	}
	if st := tr.Status(); st.Used != (Usage{107, 2}) {
		t.Fatalf("after a crash: %+v, want a fresh scan (107 bytes in 2 files)", st)
	}
}
