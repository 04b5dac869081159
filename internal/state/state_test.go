package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func event(i int) events.Event {
	e := events.Event{Type: events.UploadCommitted, User: "alice", Path: fmt.Sprintf("/in/f%d", i), Size: int64(i), Duration: 1500 * time.Microsecond}
	e.Stamp(t0.Add(time.Duration(i) * time.Millisecond))
	return e
}

func appendN(t *testing.T, s *Store, from, n int) []events.Event {
	t.Helper()
	var evs []events.Event
	for i := from; i < from+n; i++ {
		e := event(i)
		if err := s.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	return evs
}

func ids(evs []events.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func pending(t *testing.T, s *Store, sink string, now time.Time) []string {
	t.Helper()
	evs, _, err := s.Pending(context.Background(), sink, 100, now)
	if err != nil {
		t.Fatal(err)
	}
	return ids(evs)
}

// TestRoundTrip walks one sink through append, pending, delivered, a
// failure with backoff and recovery, and checks that a second sink keeps
// its own place.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	for _, sink := range []string{"a", "b"} {
		if isNew, err := s.Register(ctx, sink); err != nil || !isNew {
			t.Fatalf("Register(%s) = %v, %v; want a new cursor", sink, isNew, err)
		}
	}
	if isNew, _ := s.Register(ctx, "a"); isNew {
		t.Fatal("Register of an existing sink made a new cursor")
	}
	evs := appendN(t, s, 0, 5)
	all := ids(evs)

	if got := pending(t, s, "a", t0); !slices.Equal(got, all) {
		t.Fatalf("pending = %v, want %v", got, all)
	}
	back, _, _ := s.Pending(ctx, "a", 1, t0)
	if len(back) != 1 || back[0].Path != evs[0].Path || back[0].Duration != evs[0].Duration || !back[0].Time.Equal(evs[0].Time) {
		t.Fatalf("event read back = %+v, want %+v", back, evs[0])
	}
	if err := s.MarkDelivered(ctx, "a", all[2], t0); err != nil {
		t.Fatal(err)
	}
	if got := pending(t, s, "a", t0); !slices.Equal(got, all[3:]) {
		t.Fatalf("after delivering 3: pending = %v, want %v", got, all[3:])
	}
	// Marking an older event does not move the cursor back.
	if err := s.MarkDelivered(ctx, "a", all[0], t0); err != nil {
		t.Fatal(err)
	}
	retry := t0.Add(time.Minute)
	for range 2 {
		if err := s.MarkFailed(ctx, "a", all[3], errors.New("503"), retry); err != nil {
			t.Fatal(err)
		}
	}
	got, at, err := s.Pending(ctx, "a", 100, t0)
	if err != nil || len(got) != 0 || !at.Equal(retry) {
		t.Fatalf("pending while backing off = %v, %v, %v; want none until %v", ids(got), at, err, retry)
	}
	p, err := s.Progress(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if p.Attempts != 2 || p.FailingID != all[3] || p.LastError != "503" || p.Backlog != 2 {
		t.Fatalf("progress = %+v; want 2 attempts at %s, error 503, backlog 2", p, all[3])
	}
	if got := pending(t, s, "a", retry); !slices.Equal(got, all[3:]) {
		t.Fatalf("pending once due = %v, want %v", got, all[3:])
	}
	if err := s.MarkDelivered(ctx, "a", all[4], retry); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Progress(ctx, "a"); p.Attempts != 0 || p.LastError != "" || p.Backlog != 0 || !p.LastDelivered.Equal(retry) {
		t.Fatalf("progress after recovery = %+v", p)
	}
	if got := pending(t, s, "b", t0); !slices.Equal(got, all) {
		t.Fatalf("sink b: pending = %v, want all %v", got, all)
	}
	if _, _, err := s.Pending(ctx, "nobody", 1, t0); !errors.Is(err, ErrUnknownSink) {
		t.Fatalf("Pending of an unknown sink: %v, want ErrUnknownSink", err)
	}
	if err := s.MarkDelivered(ctx, "nobody", all[0], t0); !errors.Is(err, ErrUnknownSink) {
		t.Fatalf("MarkDelivered of an unknown sink: %v, want ErrUnknownSink", err)
	}
}

// TestRegisterStartsAtEnd: a sink added later gets new events only.
func TestRegisterStartsAtEnd(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	appendN(t, s, 0, 3)
	s.Register(ctx, "late")
	later := appendN(t, s, 3, 2)
	if got := pending(t, s, "late", t0); !slices.Equal(got, ids(later)) {
		t.Fatalf("pending = %v, want only the later %v", got, ids(later))
	}
}

// TestReopen: everything survives Close and Open.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	s.Register(ctx, "a")
	all := ids(appendN(t, s, 0, 4))
	s.MarkDelivered(ctx, "a", all[0], t0)
	s.MarkFailed(ctx, "a", all[1], errors.New("down"), t0.Add(time.Second))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, event(9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	s = open(t, dir)
	if got := pending(t, s, "a", t0.Add(time.Second)); !slices.Equal(got, all[1:]) {
		t.Fatalf("pending after reopen = %v, want %v", got, all[1:])
	}
	if p, _ := s.Progress(ctx, "a"); p.Attempts != 1 || p.LastError != "down" {
		t.Fatalf("progress after reopen = %+v", p)
	}
	more := ids(appendN(t, s, 10, 1))
	if got := pending(t, s, "a", t0.Add(time.Second)); !slices.Equal(got, append(all[1:], more...)) {
		t.Fatalf("seq did not continue after reopen: pending = %v", got)
	}
}

// TestOpenPragmas: the durability settings are in force on the pool's
// connections.
func TestOpenPragmas(t *testing.T) {
	s := open(t, t.TempDir())
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "10000"},
	} {
		var got string
		if err := s.db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
		}
	}
}

// TestAppendIdempotent: appending the same id twice stores it once.
func TestAppendIdempotent(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	s.Register(ctx, "a")
	e := event(1)
	for range 2 {
		if err := s.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if got := pending(t, s, "a", t0); !slices.Equal(got, []string{e.ID}) {
		t.Fatalf("pending = %v, want the event once", got)
	}
	if err := s.Append(ctx, events.Event{Type: events.LoginOK}); err == nil {
		t.Fatal("Append of an event without an id succeeded")
	}
}

// TestConcurrentAppend: appends from many goroutines (sharing
// transactions) are all stored, once each, with gapless seqs.
func TestConcurrentAppend(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	s.Register(ctx, "a")
	const workers, each = 8, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string]bool{}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				e := event(w*1000 + i)
				if err := s.Append(ctx, e); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[e.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var n, minSeq, maxSeq int64
	if err := s.db.QueryRow(`SELECT COUNT(*), MIN(seq), MAX(seq) FROM outbox`).Scan(&n, &minSeq, &maxSeq); err != nil {
		t.Fatal(err)
	}
	if n != workers*each || minSeq != 1 || maxSeq != n {
		t.Fatalf("outbox has %d rows, seq %d..%d; want %d rows, seq 1..%d", n, minSeq, maxSeq, workers*each, workers*each)
	}
	evs, _, _ := s.Pending(ctx, "a", 1000, t0)
	for _, e := range evs {
		delete(want, e.ID)
	}
	if len(want) != 0 {
		t.Fatalf("%d appended events not pending", len(want))
	}
}

// TestTrim: a backlog over the limit loses its oldest events, and only
// for that sink.
func TestTrim(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	s.Register(ctx, "slow")
	s.Register(ctx, "other")
	all := ids(appendN(t, s, 0, 10))
	for _, tc := range []struct {
		keep                 int64
		wantDropped, wantLog int64
		wantPending          []string
	}{
		{keep: 20, wantDropped: 0, wantLog: 10, wantPending: all},
		{keep: 3, wantDropped: 7, wantLog: 3, wantPending: all[7:]},
		{keep: 3, wantDropped: 0, wantLog: 3, wantPending: all[7:]},
		{keep: 0, wantDropped: 3, wantLog: 0, wantPending: nil},
	} {
		dropped, backlog, err := s.Trim(ctx, "slow", tc.keep)
		if err != nil {
			t.Fatal(err)
		}
		if dropped != tc.wantDropped || backlog != tc.wantLog {
			t.Errorf("Trim(%d) = %d dropped, backlog %d; want %d, %d", tc.keep, dropped, backlog, tc.wantDropped, tc.wantLog)
		}
		if got := pending(t, s, "slow", t0); !slices.Equal(got, tc.wantPending) {
			t.Errorf("after Trim(%d): pending = %v, want %v", tc.keep, got, tc.wantPending)
		}
	}
	if p, _ := s.Progress(ctx, "slow"); p.Dropped != 10 {
		t.Errorf("dropped over the sink's life = %d, want 10", p.Dropped)
	}
	if got := pending(t, s, "other", t0); !slices.Equal(got, all) {
		t.Errorf("other sink lost events to the trim: %v", got)
	}
}

// TestPrune: only events every sink is done with, and old enough, go;
// a forgotten sink no longer holds them back.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	s.Register(ctx, "fast")
	s.Register(ctx, "slow")
	all := ids(appendN(t, s, 0, 6)) // times t0 .. t0+5ms
	s.MarkDelivered(ctx, "fast", all[5], t0)
	s.MarkDelivered(ctx, "slow", all[2], t0)
	count := func() (n int64) {
		s.db.QueryRow(`SELECT COUNT(*) FROM outbox`).Scan(&n)
		return n
	}
	for _, tc := range []struct {
		name      string
		olderThan time.Time
		forget    string
		want      int64 // deleted
		left      int64
	}{
		{"too recent", t0, "", 0, 6},
		{"up to the slowest cursor", t0.Add(time.Hour), "", 3, 3},
		{"again: nothing new", t0.Add(time.Hour), "", 0, 3},
		{"slow sink forgotten", t0.Add(time.Hour), "slow", 3, 0},
	} {
		if tc.forget != "" {
			if left, err := s.Forget(ctx, tc.forget); err != nil || left != 3 {
				t.Fatalf("Forget = %d, %v; want 3 undelivered", left, err)
			}
		}
		n, err := s.Prune(ctx, tc.olderThan)
		if err != nil {
			t.Fatal(err)
		}
		if n != tc.want || count() != tc.left {
			t.Errorf("%s: pruned %d, %d left; want %d, %d", tc.name, n, count(), tc.want, tc.left)
		}
	}
	if names, _ := s.Sinks(ctx); !slices.Equal(names, []string{"fast"}) {
		t.Errorf("Sinks = %v, want [fast]", names)
	}
	// With no sinks at all, old events go too.
	s.Forget(ctx, "fast")
	appendN(t, s, 100, 2)
	if n, _ := s.Prune(ctx, t0.Add(time.Hour)); n != 2 {
		t.Errorf("pruned %d with no sinks, want 2", n)
	}
}
