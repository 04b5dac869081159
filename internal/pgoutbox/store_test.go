package pgoutbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

func openPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Open(pgdb.Options{DSN: dsn, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// migrated is a new database of c with the schema, as `cloudftpd db
// migrate` leaves it.
func migrated(t testing.TB, c *pgtest.Cluster) string {
	t.Helper()
	dsn := c.NewDatabase(t)
	applied, err := pgdb.Migrate(context.Background(), openPool(t, dsn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "00002_outbox.sql") {
		t.Fatalf("migrate applied %v; want 00002_outbox.sql among them", applied)
	}
	return dsn
}

// node opens a store on a pool of its own, as a separate process would,
// closed when the test ends.
func node(t testing.TB, dsn, name string, lease time.Duration, logs *clienttest.LogBuffer) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := Options{Node: name, Lease: lease}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	s, err := Open(ctx, openPool(t, dsn), opts)
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

func count(t *testing.T, s *Store, query string) (n int64) {
	t.Helper()
	if err := s.pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStore runs the single-node behaviour internal/state's tests check,
// against a real PostgreSQL: each subtest on a database of its own.
func TestStore(t *testing.T) {
	c := pgtest.Start(t)
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, dsn string)
	}{
		{"RoundTrip", testRoundTrip},
		{"RegisterStartsAtEnd", testRegisterStartsAtEnd},
		{"Reopen", testReopen},
		{"AppendIdempotent", testAppendIdempotent},
		{"ConcurrentAppend", testConcurrentAppend},
		{"Trim", testTrim},
		{"Prune", testPrune},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, migrated(t, c)) })
	}
	t.Run("NoSchema", func(t *testing.T) {
		_, err := Open(context.Background(), openPool(t, c.NewDatabase(t)), Options{})
		if err == nil || !strings.Contains(err.Error(), "cloudftpd db migrate") {
			t.Fatalf("Open on a database never migrated: %v; want an error saying to run db migrate", err)
		}
	})
}

// testRoundTrip walks one sink through append, pending, delivered, a
// failure with backoff and recovery, and checks that a second sink keeps
// its own place.
func testRoundTrip(t *testing.T, dsn string) {
	ctx := context.Background()
	s := node(t, dsn, "n1", 0, nil)
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
	if err := s.MarkFailed(ctx, "nobody", all[0], nil, t0); !errors.Is(err, ErrUnknownSink) {
		t.Fatalf("MarkFailed of an unknown sink: %v, want ErrUnknownSink", err)
	}
	if err := s.MarkDelivered(ctx, "a", "no-such-id", t0); err == nil || !strings.Contains(err.Error(), "no event") {
		t.Fatalf("MarkDelivered of an unknown event: %v", err)
	}
}

// testRegisterStartsAtEnd: a sink added later gets new events only.
func testRegisterStartsAtEnd(t *testing.T, dsn string) {
	ctx := context.Background()
	s := node(t, dsn, "n1", 0, nil)
	appendN(t, s, 0, 3)
	s.Register(ctx, "late")
	later := appendN(t, s, 3, 2)
	if got := pending(t, s, "late", t0); !slices.Equal(got, ids(later)) {
		t.Fatalf("pending = %v, want only the later %v", got, ids(later))
	}
}

// testReopen: everything survives Close and Open (a restarted node).
func testReopen(t *testing.T, dsn string) {
	ctx := context.Background()
	s := node(t, dsn, "n1", 0, nil)
	s.Register(ctx, "a")
	all := ids(appendN(t, s, 0, 4))
	s.MarkDelivered(ctx, "a", all[0], t0)
	s.Pending(ctx, "a", 1, t0) // takes the lease
	if err := s.MarkFailed(ctx, "a", all[1], errors.New("down"), t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, event(9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}

	s = node(t, dsn, "n1-again", 0, nil)
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

// testAppendIdempotent: appending the same id twice, from two nodes too,
// stores it once.
func testAppendIdempotent(t *testing.T, dsn string) {
	ctx := context.Background()
	s, other := node(t, dsn, "n1", 0, nil), node(t, dsn, "n2", 0, nil)
	s.Register(ctx, "a")
	e := event(1)
	for _, n := range []*Store{s, s, other} {
		if err := n.Append(ctx, e); err != nil {
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

// testConcurrentAppend: appends from many goroutines on two nodes
// (sharing transactions within each node) are all stored, once each,
// with gapless seqs, and come back in seq order.
func testConcurrentAppend(t *testing.T, dsn string) {
	ctx := context.Background()
	nodes := []*Store{node(t, dsn, "n1", 0, nil), node(t, dsn, "n2", 0, nil)}
	nodes[0].Register(ctx, "a")
	const workers, each = 8, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string]bool{}
	for w := range workers {
		s := nodes[w%2]
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
	s := nodes[0]
	if n, lo, hi := count(t, s, `SELECT COUNT(*) FROM cloudftpd_outbox`), count(t, s, `SELECT MIN(seq) FROM cloudftpd_outbox`),
		count(t, s, `SELECT MAX(seq) FROM cloudftpd_outbox`); n != workers*each || lo != 1 || hi != n {
		t.Fatalf("outbox has %d rows, seq %d..%d; want %d rows, seq 1..%d", n, lo, hi, workers*each, workers*each)
	}
	if batches := count(t, s, `SELECT COUNT(DISTINCT xmin::text) FROM cloudftpd_outbox`); batches >= workers*each {
		t.Errorf("%d transactions for %d appends: concurrent appends were not batched", batches, workers*each)
	} else {
		t.Logf("%d appends in %d transactions", workers*each, batches)
	}
	evs, _, _ := s.Pending(ctx, "a", 1000, t0)
	for _, e := range evs {
		delete(want, e.ID)
	}
	if len(want) != 0 {
		t.Fatalf("%d appended events not pending", len(want))
	}
}

// testTrim: a backlog over the limit loses its oldest events, and only
// for that sink.
func testTrim(t *testing.T, dsn string) {
	ctx := context.Background()
	s := node(t, dsn, "n1", 0, nil)
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
	if _, _, err := s.Trim(ctx, "nobody", 0); !errors.Is(err, ErrUnknownSink) {
		t.Errorf("Trim of an unknown sink: %v", err)
	}
}

// testPrune: only events every sink is done with, and old enough, go;
// a forgotten sink no longer holds them back.
func testPrune(t *testing.T, dsn string) {
	ctx := context.Background()
	s := node(t, dsn, "n1", 0, nil)
	s.Register(ctx, "fast")
	s.Register(ctx, "slow")
	all := ids(appendN(t, s, 0, 6)) // times t0 .. t0+5ms
	s.MarkDelivered(ctx, "fast", all[5], t0)
	s.MarkDelivered(ctx, "slow", all[2], t0)
	rows := func() int64 { return count(t, s, `SELECT COUNT(*) FROM cloudftpd_outbox`) }
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
		if n != tc.want || rows() != tc.left {
			t.Errorf("%s: pruned %d, %d left; want %d, %d", tc.name, n, rows(), tc.want, tc.left)
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

// TestLease: one node at a time delivers a sink. The holder keeps it
// past its lease by renewing; the other gets no events and the time to
// look again, may not record failures nor forget the sink; a clean Close
// hands the sink over at once, from the cursor.
func TestLease(t *testing.T) {
	c := pgtest.Start(t)
	dsn := migrated(t, c)
	ctx := context.Background()
	const lease = 600 * time.Millisecond
	var logs clienttest.LogBuffer
	a, b := node(t, dsn, "node-a", lease, &logs), node(t, dsn, "node-b", lease, &logs)
	a.Register(ctx, "hook")
	all := ids(appendN(t, b, 0, 4)) // appended on b, delivered by a: the table is shared

	if got := pending(t, a, "hook", time.Now()); !slices.Equal(got, all) {
		t.Fatalf("holder's pending = %v, want %v", got, all)
	}
	now := time.Now()
	got, retry, err := b.Pending(ctx, "hook", 100, now)
	if err != nil || len(got) != 0 || retry.Before(now.Add(lease/2)) || retry.After(now.Add(lease+time.Second)) {
		t.Fatalf("other node's pending = %v, retry in %v, %v; want none, retry within the lease (%v)", ids(got), retry.Sub(now), err, lease)
	}
	if err := b.MarkFailed(ctx, "hook", all[0], errors.New("x"), now); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("MarkFailed by a node without the lease: %v, want ErrLeaseLost", err)
	}
	if _, err := b.Forget(ctx, "hook"); !errors.Is(err, events.ErrSinkInUse) {
		t.Fatalf("Forget of a sink another node holds: %v, want events.ErrSinkInUse", err)
	}
	// Three leases later, a still holds it: renewed in the background.
	time.Sleep(3 * lease)
	if got, _, _ := b.Pending(ctx, "hook", 100, time.Now()); len(got) != 0 {
		t.Fatalf("the other node got %d events while the holder was alive", len(got))
	}
	if err := a.MarkDelivered(ctx, "hook", all[1], time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var took []string
	for time.Since(start) < 5*time.Second && took == nil {
		took = pending(t, b, "hook", time.Now())
		time.Sleep(10 * time.Millisecond)
	}
	if !slices.Equal(took, all[2:]) {
		t.Fatalf("after the holder closed: pending = %v, want the rest from the cursor %v", took, all[2:])
	}
	t.Logf("handed over in %v (lease %v)", time.Since(start), lease)
	if !strings.Contains(logs.String(), "handed over") {
		t.Errorf("no log line for the handover:\n%s", logs.String())
	}
}
