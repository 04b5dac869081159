package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

// The SQLite store is an Outbox (internal/pgoutbox's tests check theirs).
var _ Outbox = (*state.Store)(nil)

// fast are retry settings for tests: real backoff, in milliseconds.
func fast(c events.SinkConfig) events.SinkConfig {
	c.RetryMin, c.RetryMax = 10*time.Millisecond, 80*time.Millisecond
	return c
}

func openStore(t *testing.T, dir string) *state.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := state.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// logBuffer collects a logger's lines and counts the ones that say
// something.
type logBuffer struct{ clienttest.LogBuffer }

func (l *logBuffer) count(substr string) int { return strings.Count(l.String(), substr) }

func testOptions(logs *logBuffer) Options {
	return Options{
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Poll:       20 * time.Millisecond,
		PruneEvery: 50 * time.Millisecond,
	}
}

// run starts d.Run and stops it when the test ends.
func run(t *testing.T, d *Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return after its context ended")
			}
			d.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or 20s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stats(d *Dispatcher, name string) SinkStats {
	for _, s := range d.Stats() {
		if s.Name == name {
			return s
		}
	}
	return SinkStats{}
}

func record(t *testing.T, d *Dispatcher, evs ...events.Event) []string {
	t.Helper()
	var ids []string
	for _, e := range evs {
		if e.ID == "" {
			e.ID = events.NewID(time.Now())
		}
		if err := d.Record(e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

func uploads(n int) []events.Event {
	var evs []events.Event
	for i := range n {
		evs = append(evs, events.Event{Type: events.UploadCommitted, User: "alice", Path: fmt.Sprintf("/in/f%03d", i), Size: int64(i), Result: events.ResultOK})
	}
	return evs
}

// fakeSink records what it delivered and fails while fail says so.
type fakeSink struct {
	mu        sync.Mutex
	got       []string
	calls     int
	callTimes []time.Time
	fail      func(call int, e events.Event) bool
}

func (f *fakeSink) Deliver(ctx context.Context, evs []events.Event) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.callTimes = append(f.callTimes, time.Now())
	for i, e := range evs {
		if f.fail != nil && f.fail(f.calls, e) {
			return i, errors.New("receiver says no")
		}
		f.got = append(f.got, e.ID)
	}
	return len(evs), nil
}

func (f *fakeSink) delivered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func newFake(t *testing.T, store *state.Store, logs *logBuffer, sinks map[string]*fakeSink, cfgs ...events.SinkConfig) *Dispatcher {
	t.Helper()
	for i := range cfgs {
		if cfgs[i].Kind == "" {
			cfgs[i].Kind, cfgs[i].Path = events.KindAudit, "unused"
		}
	}
	d, err := newDispatcher(context.Background(), store, events.Config{StateDir: "x", Sinks: cfgs}, testOptions(logs),
		func(c events.SinkConfig) (Sink, error) { return sinks[c.Name], nil })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRetryInOrder: a sink failing in the middle of a batch gets the
// failing event again after a backoff, then the rest, in record order,
// each delivered once; the counters say so.
func TestRetryInOrder(t *testing.T) {
	store := openStore(t, t.TempDir())
	var logs logBuffer
	flaky := &fakeSink{fail: func(call int, e events.Event) bool { return call <= 3 && e.Path == "/in/f004" }}
	d := newFake(t, store, &logs, map[string]*fakeSink{"flaky": flaky}, fast(events.SinkConfig{Name: "flaky"}))
	ids := record(t, d, uploads(10)...)
	run(t, d)
	eventually(t, "all 10 delivered", func() bool { return len(flaky.delivered()) == 10 })
	if got := flaky.delivered(); !slices.Equal(got, ids) {
		t.Fatalf("delivered %v, want once each in record order %v", got, ids)
	}
	eventually(t, "the counters", func() bool { return stats(d, "flaky").Delivered == 10 })
	st := stats(d, "flaky")
	if st.Queued != 10 || st.Delivered != 10 || st.Retried != 3 || st.LastError != "" {
		t.Errorf("stats = %+v; want 10 queued and delivered, 3 retried, no last error", st)
	}
	if n := logs.count("delivery failed; retrying"); n != 3 {
		t.Errorf("%d retry log lines, want 3:\n%s", n, logs.String())
	}
	// The backoff doubles: the gaps before attempts 3 and 4 are about
	// 20ms and 40ms (less up to a fifth), never shorter than 80%.
	flaky.mu.Lock()
	times := flaky.callTimes
	flaky.mu.Unlock()
	for i, want := range []time.Duration{10, 20, 40} {
		if gap := times[i+1].Sub(times[i]); gap < want*time.Millisecond*8/10 {
			t.Errorf("gap before attempt %d = %s, want at least %s", i+2, gap, want*time.Millisecond*8/10)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    time.Duration // before jitter
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {9, time.Minute}, {1000, time.Minute}} {
		got := backoff(time.Second, time.Minute, tc.attempt)
		if got > tc.want || got < tc.want*8/10 {
			t.Errorf("backoff(attempt %d) = %s, want %s less at most a fifth", tc.attempt, got, tc.want)
		}
	}
}

// TestFilterMovesCursor: events a sink's filter skips never reach it but
// still count as done, so its backlog empties and the outbox can be
// pruned; the other sink gets everything.
func TestFilterMovesCursor(t *testing.T) {
	ctx := context.Background()
	store := openStore(t, t.TempDir())
	var logs logBuffer
	ups, all := &fakeSink{}, &fakeSink{}
	d := newFake(t, store, &logs, map[string]*fakeSink{"ups": ups, "all": all},
		events.SinkConfig{Name: "ups", Types: []events.Type{"upload.*"}, Users: []string{"partner-*"}},
		events.SinkConfig{Name: "all"})
	mixed := []events.Event{
		{Type: events.LoginOK, User: "partner-a"},
		{Type: events.UploadCommitted, User: "partner-a", Path: "/x"},
		{Type: events.UploadCommitted, User: "staff", Path: "/y"},
		{Type: events.UploadFailed, User: "partner-b", Path: "/z"},
		{Type: events.SessionEnded, User: "partner-b"},
	}
	ids := record(t, d, mixed...)
	run(t, d)
	eventually(t, "deliveries", func() bool { return len(all.delivered()) == 5 && len(ups.delivered()) == 2 })
	if got := ups.delivered(); !slices.Equal(got, []string{ids[1], ids[3]}) {
		t.Errorf("filtered sink got %v, want the two partner uploads", got)
	}
	eventually(t, "the filtered sink's cursor past the skipped events", func() bool {
		p, _ := store.Progress(ctx, "ups")
		return p.Backlog == 0
	})
	eventually(t, "the counters", func() bool { return stats(d, "ups").Delivered == 2 })
	if st := stats(d, "ups"); st.Queued != 2 || st.Delivered != 2 {
		t.Errorf("stats = %+v, want 2 queued and delivered", st)
	}
}

// TestBacklogDrop: with the receiver down, a backlog over max_backlog
// loses its oldest events (one warning for the episode, a counter), Record
// never blocks, and once the receiver is back the newest max_backlog
// events are delivered, followed by a note that the sink caught up.
func TestBacklogDrop(t *testing.T) {
	store := openStore(t, t.TempDir())
	var logs logBuffer
	var mu sync.Mutex
	down := true
	sink := &fakeSink{fail: func(int, events.Event) bool { mu.Lock(); defer mu.Unlock(); return down }}
	d := newFake(t, store, &logs, map[string]*fakeSink{"s": sink}, fast(events.SinkConfig{Name: "s", MaxBacklog: 10}))
	run(t, d)
	var ids []string
	for _, e := range uploads(25) {
		ids = append(ids, record(t, d, e)...)
		time.Sleep(2 * time.Millisecond) // let the loop trim along the way
	}
	eventually(t, "15 dropped", func() bool { return stats(d, "s").Dropped == 15 })
	if n := logs.count("dropping its oldest"); n != 1 {
		t.Errorf("%d drop warnings, want 1 for the episode:\n%s", n, logs.String())
	}
	mu.Lock()
	down = false
	mu.Unlock()
	eventually(t, "10 delivered", func() bool { return len(sink.delivered()) == 10 })
	if got := sink.delivered(); !slices.Equal(got, ids[15:]) {
		t.Errorf("delivered %v, want the newest 10 %v", got, ids[15:])
	}
	eventually(t, "the caught-up note", func() bool { return logs.count("caught up after dropping") == 1 })
	eventually(t, "the counters", func() bool { st := stats(d, "s"); return st.Delivered == 10 && st.Backlog == 0 })
	if st := stats(d, "s"); st.Queued != 25 || st.Dropped != 15 || st.Delivered != 10 || st.Backlog != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestRemovedSinkForgotten: a sink dropped from the configuration stops
// holding back pruning, with a log line saying what it left.
func TestRemovedSinkForgotten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := openStore(t, dir)
	var logs logBuffer
	d := newFake(t, store, &logs, map[string]*fakeSink{"a": {}, "old": {}}, events.SinkConfig{Name: "a"}, events.SinkConfig{Name: "old"})
	record(t, d, uploads(3)...)
	d = newFake(t, store, &logs, map[string]*fakeSink{"a": {}}, events.SinkConfig{Name: "a"})
	if names, _ := store.Sinks(ctx); !slices.Equal(names, []string{"a"}) {
		t.Fatalf("sinks = %v, want [a]", names)
	}
	if !strings.Contains(logs.String(), "sink=old undelivered=3") {
		t.Errorf("no log line for the removed sink:\n%s", logs.String())
	}
}

// TestRecordBeforeRunAndAfterStop: events recorded while no loop runs
// wait in the outbox and go out at the next Run.
func TestRecordBeforeRunAndAfterStop(t *testing.T) {
	store := openStore(t, t.TempDir())
	var logs logBuffer
	sink := &fakeSink{}
	d := newFake(t, store, &logs, map[string]*fakeSink{"s": sink}, events.SinkConfig{Name: "s"})
	ids := record(t, d, uploads(2)...)
	stop := run(t, d)
	eventually(t, "2 delivered", func() bool { return len(sink.delivered()) == 2 })
	stop()
	ids = append(ids, record(t, d, uploads(2)...)...)
	d2 := newFake(t, store, &logs, map[string]*fakeSink{"s": sink}, events.SinkConfig{Name: "s"})
	run(t, d2)
	eventually(t, "4 delivered", func() bool { return len(sink.delivered()) == 4 })
	if got := sink.delivered(); !slices.Equal(got, ids) {
		t.Errorf("delivered %v, want %v", got, ids)
	}
	if err := d2.Run(context.Background()); err == nil {
		t.Error("a second Run was accepted")
	}
}

// panicSink panics on its first call.
type panicSink struct {
	fakeSink
	panicked atomic.Bool
}

func (p *panicSink) Deliver(ctx context.Context, evs []events.Event) (int, error) {
	if p.panicked.CompareAndSwap(false, true) {
		panic("bad sink")
	}
	return p.fakeSink.Deliver(ctx, evs)
}

// TestSinkPanicRetried: a sink that panics costs a retry and a log line
// with the stack, not the process.
func TestSinkPanicRetried(t *testing.T) {
	store := openStore(t, t.TempDir())
	var logs logBuffer
	p := &panicSink{}
	d, err := newDispatcher(context.Background(), store, events.Config{StateDir: "x", Sinks: []events.SinkConfig{
		fast(events.SinkConfig{Name: "p", Kind: events.KindAudit, Path: "unused"}),
	}}, testOptions(&logs), func(events.SinkConfig) (Sink, error) { return p, nil })
	if err != nil {
		t.Fatal(err)
	}
	ids := record(t, d, uploads(2)...)
	run(t, d)
	eventually(t, "delivery after the panic", func() bool { return len(p.delivered()) == 2 })
	if got := p.delivered(); !slices.Equal(got, ids) {
		t.Errorf("delivered %v, want %v", got, ids)
	}
	if !strings.Contains(logs.String(), "sink panicked") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("no panic log line with a stack:\n%s", logs.String())
	}
}
