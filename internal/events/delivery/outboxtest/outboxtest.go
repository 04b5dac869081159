// Package outboxtest is the conformance suite every outbox store
// (internal/state on SQLite, internal/pgoutbox on PostgreSQL) runs: the
// behaviour delivery.Dispatcher relies on, written once. Only tests
// import it.
package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
)

// Store is an outbox store under test.
type Store interface {
	delivery.Outbox
	Close() error
}

// Harness is what Run needs of a store.
type Harness struct {
	// Open opens a store on new, empty storage, closed when the test
	// ends, and returns with it a function opening another store on the
	// same storage (a restarted process), also closed at the end.
	Open func(t *testing.T) (s Store, reopen func(t *testing.T) Store)
	// Second, when not nil, opens another node on the same storage
	// while s is open: for an outbox several processes share.
	Second func(t *testing.T, s Store) Store
	// Rows returns the number of events in the outbox and their lowest
	// and highest seq.
	Rows func(t *testing.T, s Store) (n, minSeq, maxSeq int64)
	// Commits, when not nil, returns how many transactions wrote the
	// outbox's rows, to check that concurrent appends share them.
	Commits func(t *testing.T, s Store) int64
	// ErrUnknownSink and ErrClosed are the store's errors.
	ErrUnknownSink, ErrClosed error
}

// Run runs the suite, each case as a subtest on storage of its own.
func Run(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, h Harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"RegisterStartsAtEnd", testRegisterStartsAtEnd},
		{"Reopen", testReopen},
		{"AppendIdempotent", testAppendIdempotent},
		{"ConcurrentAppend", testConcurrentAppend},
		{"Trim", testTrim},
		{"Prune", testPrune},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, h) })
	}
}

// T0 is the time of Event(0).
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Event is the i-th test event, stamped at T0 + i ms.
func Event(i int) events.Event {
	e := events.Event{Type: events.UploadCommitted, User: "alice", Path: fmt.Sprintf("/in/f%d", i), Size: int64(i), Duration: 1500 * time.Microsecond}
	e.Stamp(T0.Add(time.Duration(i) * time.Millisecond))
	return e
}

// AppendN appends Event(from) .. Event(from+n-1) and returns them.
func AppendN(t *testing.T, s delivery.Outbox, from, n int) []events.Event {
	t.Helper()
	var evs []events.Event
	for i := from; i < from+n; i++ {
		e := Event(i)
		if err := s.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	return evs
}

// IDs are the events' ids.
func IDs(evs []events.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

// Pending is the ids of up to 100 events pending for sink at now.
func Pending(t *testing.T, s delivery.Outbox, sink string, now time.Time) []string {
	t.Helper()
	evs, _, err := s.Pending(context.Background(), sink, 100, now)
	if err != nil {
		t.Fatal(err)
	}
	return IDs(evs)
}

// testRoundTrip walks one sink through append, pending, delivered, a
// failure with backoff and recovery, and checks that a second sink keeps
// its own place.
func testRoundTrip(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	for _, sink := range []string{"a", "b"} {
		if isNew, err := s.Register(ctx, sink); err != nil || !isNew {
			t.Fatalf("Register(%s) = %v, %v; want a new cursor", sink, isNew, err)
		}
	}
	if isNew, _ := s.Register(ctx, "a"); isNew {
		t.Fatal("Register of an existing sink made a new cursor")
	}
	evs := AppendN(t, s, 0, 5)
	all := IDs(evs)

	if got := Pending(t, s, "a", T0); !slices.Equal(got, all) {
		t.Fatalf("pending = %v, want %v", got, all)
	}
	back, _, _ := s.Pending(ctx, "a", 1, T0)
	if len(back) != 1 || back[0].Path != evs[0].Path || back[0].Duration != evs[0].Duration || !back[0].Time.Equal(evs[0].Time) {
		t.Fatalf("event read back = %+v, want %+v", back, evs[0])
	}
	if err := s.MarkDelivered(ctx, "a", all[2], T0); err != nil {
		t.Fatal(err)
	}
	if got := Pending(t, s, "a", T0); !slices.Equal(got, all[3:]) {
		t.Fatalf("after delivering 3: pending = %v, want %v", got, all[3:])
	}
	// Marking an older event does not move the cursor back.
	if err := s.MarkDelivered(ctx, "a", all[0], T0); err != nil {
		t.Fatal(err)
	}
	retry := T0.Add(time.Minute)
	for range 2 {
		if err := s.MarkFailed(ctx, "a", all[3], errors.New("503"), retry); err != nil {
			t.Fatal(err)
		}
	}
	got, at, err := s.Pending(ctx, "a", 100, T0)
	if err != nil || len(got) != 0 || !at.Equal(retry) {
		t.Fatalf("pending while backing off = %v, %v, %v; want none until %v", IDs(got), at, err, retry)
	}
	p, err := s.Progress(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if p.Attempts != 2 || p.FailingID != all[3] || p.LastError != "503" || p.Backlog != 2 {
		t.Fatalf("progress = %+v; want 2 attempts at %s, error 503, backlog 2", p, all[3])
	}
	if got := Pending(t, s, "a", retry); !slices.Equal(got, all[3:]) {
		t.Fatalf("pending once due = %v, want %v", got, all[3:])
	}
	if err := s.MarkDelivered(ctx, "a", all[4], retry); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Progress(ctx, "a"); p.Attempts != 0 || p.LastError != "" || p.Backlog != 0 || !p.LastDelivered.Equal(retry) {
		t.Fatalf("progress after recovery = %+v", p)
	}
	if got := Pending(t, s, "b", T0); !slices.Equal(got, all) {
		t.Fatalf("sink b: pending = %v, want all %v", got, all)
	}
	if _, _, err := s.Pending(ctx, "nobody", 1, T0); !errors.Is(err, h.ErrUnknownSink) {
		t.Fatalf("Pending of an unknown sink: %v, want ErrUnknownSink", err)
	}
	if err := s.MarkDelivered(ctx, "nobody", all[0], T0); !errors.Is(err, h.ErrUnknownSink) {
		t.Fatalf("MarkDelivered of an unknown sink: %v, want ErrUnknownSink", err)
	}
	if err := s.MarkFailed(ctx, "nobody", all[0], nil, T0); !errors.Is(err, h.ErrUnknownSink) {
		t.Fatalf("MarkFailed of an unknown sink: %v, want ErrUnknownSink", err)
	}
	if err := s.MarkDelivered(ctx, "a", "no-such-id", T0); err == nil || !strings.Contains(err.Error(), "no event") {
		t.Fatalf("MarkDelivered of an unknown event: %v", err)
	}
}

// testRegisterStartsAtEnd: a sink added later gets new events only.
func testRegisterStartsAtEnd(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	AppendN(t, s, 0, 3)
	s.Register(ctx, "late")
	later := AppendN(t, s, 3, 2)
	if got := Pending(t, s, "late", T0); !slices.Equal(got, IDs(later)) {
		t.Fatalf("pending = %v, want only the later %v", got, IDs(later))
	}
}

// testReopen: everything survives Close and Open (a restarted process).
func testReopen(t *testing.T, h Harness) {
	ctx := context.Background()
	s, reopen := h.Open(t)
	s.Register(ctx, "a")
	all := IDs(AppendN(t, s, 0, 4))
	s.MarkDelivered(ctx, "a", all[0], T0)
	s.Pending(ctx, "a", 1, T0) // takes a shared outbox's lease
	if err := s.MarkFailed(ctx, "a", all[1], errors.New("down"), T0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, Event(9)); !errors.Is(err, h.ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	s = reopen(t)
	if got := Pending(t, s, "a", T0.Add(time.Second)); !slices.Equal(got, all[1:]) {
		t.Fatalf("pending after reopen = %v, want %v", got, all[1:])
	}
	if p, _ := s.Progress(ctx, "a"); p.Attempts != 1 || p.LastError != "down" {
		t.Fatalf("progress after reopen = %+v", p)
	}
	more := IDs(AppendN(t, s, 10, 1))
	if got := Pending(t, s, "a", T0.Add(time.Second)); !slices.Equal(got, append(all[1:], more...)) {
		t.Fatalf("seq did not continue after reopen: pending = %v", got)
	}
}

// testAppendIdempotent: appending the same id twice, from a second node
// too where there is one, stores it once.
func testAppendIdempotent(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	s.Register(ctx, "a")
	e := Event(1)
	appenders := []Store{s, s}
	if h.Second != nil {
		appenders = append(appenders, h.Second(t, s))
	}
	for _, n := range appenders {
		if err := n.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if got := Pending(t, s, "a", T0); !slices.Equal(got, []string{e.ID}) {
		t.Fatalf("pending = %v, want the event once", got)
	}
	if err := s.Append(ctx, events.Event{Type: events.LoginOK}); err == nil {
		t.Fatal("Append of an event without an id succeeded")
	}
}

// testConcurrentAppend: appends from many goroutines (on two nodes where
// the outbox is shared; sharing transactions within each) are all
// stored, once each, with gapless seqs, and come back in seq order.
func testConcurrentAppend(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	nodes := []Store{s}
	if h.Second != nil {
		nodes = append(nodes, h.Second(t, s))
	}
	s.Register(ctx, "a")
	const workers, each = 8, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string]bool{}
	for w := range workers {
		n := nodes[w%len(nodes)]
		wg.Go(func() {
			for i := range each {
				e := Event(w*1000 + i)
				if err := n.Append(ctx, e); err != nil {
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
	if n, lo, hi := h.Rows(t, s); n != workers*each || lo != 1 || hi != n {
		t.Fatalf("outbox has %d rows, seq %d..%d; want %d rows, seq 1..%d", n, lo, hi, workers*each, workers*each)
	}
	if h.Commits != nil {
		if batches := h.Commits(t, s); batches >= workers*each {
			t.Errorf("%d transactions for %d appends: concurrent appends were not batched", batches, workers*each)
		} else {
			t.Logf("%d appends in %d transactions", workers*each, batches)
		}
	}
	evs, _, _ := s.Pending(ctx, "a", 1000, T0)
	for _, e := range evs {
		delete(want, e.ID)
	}
	if len(want) != 0 {
		t.Fatalf("%d appended events not pending", len(want))
	}
}

// testTrim: a backlog over the limit loses its oldest events, and only
// for that sink.
func testTrim(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	s.Register(ctx, "slow")
	s.Register(ctx, "other")
	all := IDs(AppendN(t, s, 0, 10))
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
		if got := Pending(t, s, "slow", T0); !slices.Equal(got, tc.wantPending) {
			t.Errorf("after Trim(%d): pending = %v, want %v", tc.keep, got, tc.wantPending)
		}
	}
	if p, _ := s.Progress(ctx, "slow"); p.Dropped != 10 {
		t.Errorf("dropped over the sink's life = %d, want 10", p.Dropped)
	}
	if got := Pending(t, s, "other", T0); !slices.Equal(got, all) {
		t.Errorf("other sink lost events to the trim: %v", got)
	}
	if _, _, err := s.Trim(ctx, "nobody", 0); !errors.Is(err, h.ErrUnknownSink) {
		t.Errorf("Trim of an unknown sink: %v", err)
	}
}

// testPrune: only events every sink is done with, and old enough, go;
// a forgotten sink no longer holds them back.
func testPrune(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	s.Register(ctx, "fast")
	s.Register(ctx, "slow")
	all := IDs(AppendN(t, s, 0, 6)) // times T0 .. T0+5ms
	s.MarkDelivered(ctx, "fast", all[5], T0)
	s.MarkDelivered(ctx, "slow", all[2], T0)
	rows := func() int64 { n, _, _ := h.Rows(t, s); return n }
	for _, tc := range []struct {
		name      string
		olderThan time.Time
		forget    string
		want      int64 // deleted
		left      int64
	}{
		{"too recent", T0, "", 0, 6},
		{"up to the slowest cursor", T0.Add(time.Hour), "", 3, 3},
		{"again: nothing new", T0.Add(time.Hour), "", 0, 3},
		{"slow sink forgotten", T0.Add(time.Hour), "slow", 3, 0},
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
		if n != tc.want || rows() != tc.left {
			t.Errorf("%s: pruned %d, %d left; want %d, %d", tc.name, n, rows(), tc.want, tc.left)
		}
	}
	if names, _ := s.Sinks(ctx); !slices.Equal(names, []string{"fast"}) {
		t.Errorf("Sinks = %v, want [fast]", names)
	}
	// With no sinks at all, old events go too.
	s.Forget(ctx, "fast")
	AppendN(t, s, 100, 2)
	if n, _ := s.Prune(ctx, T0.Add(time.Hour)); n != 2 {
		t.Errorf("pruned %d with no sinks, want 2", n)
	}
}
