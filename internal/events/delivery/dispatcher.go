// Package delivery gets recorded events to their sinks. Its Dispatcher is
// the events.Recorder the server wires into the protocol engine: Record
// writes the event to an Outbox and returns once it is durable; one
// goroutine per sink then reads the outbox in order and delivers. The
// outbox is internal/state's SQLite database for one node, or
// internal/pgoutbox's PostgreSQL tables that several nodes share (each
// sink then delivered by the one node holding its lease).
//
// Delivery is at least once, with the event's stable id for receivers to
// deduplicate by, and in order per sink: a sink's failing event is retried
// with capped exponential backoff and holds back the events after it for
// that sink only. A sink whose backlog passes its max_backlog loses its
// oldest undelivered events (one warning per episode, and a counter)
// rather than ever blocking Record.
//
// It offers:
//   - Dispatcher (New, Record, Run, Reopen, Stats, Close);
//   - Outbox, what an outbox store implements;
//   - Sink, what a destination implements, and the four built from
//     events.SinkConfig: an audit log (JSON lines), an xferlog, a webhook
//     (HMAC-signed POST) and a command hook;
//   - XferlogLine, the xferlog(5) rendering of one event;
//   - Signature and the webhook header names, for receivers and tests.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// Outbox is where events wait for their sinks: an append-only log with a
// cursor per sink. *state.Store (SQLite, one node) and *pgoutbox.Store
// (PostgreSQL, several nodes) implement it.
//
// Append returns once the event is durable; appending an id already
// there does nothing. A sink's cursor says every event up to it is done;
// Pending returns the events after it in order (or, while a failed
// delivery backs off, none and the time of the next attempt),
// MarkDelivered moves it forward (never back), MarkFailed records a
// failed attempt at the head event, and Trim moves it past all but the
// newest keep events. Register creates a cursor at the end of the log,
// Forget deletes one, Prune deletes events every cursor is past.
//
// A shared outbox lets one process at a time deliver a sink: its Pending
// returns no events, and when to look again, while another process holds
// the sink; its Forget returns events.ErrSinkInUse for a sink another
// process delivers. Every method wraps an unknown sink's error so that
// it reads well in a log line.
type Outbox interface {
	Append(ctx context.Context, e events.Event) error
	Register(ctx context.Context, sink string) (bool, error)
	Sinks(ctx context.Context) ([]string, error)
	Forget(ctx context.Context, sink string) (int64, error)
	Progress(ctx context.Context, sink string) (events.SinkProgress, error)
	Pending(ctx context.Context, sink string, limit int, now time.Time) ([]events.Event, time.Time, error)
	MarkDelivered(ctx context.Context, sink, id string, now time.Time) error
	MarkFailed(ctx context.Context, sink, id string, cause error, nextAttempt time.Time) error
	Trim(ctx context.Context, sink string, keep int64) (dropped, backlog int64, err error)
	Prune(ctx context.Context, olderThan time.Time) (int64, error)
}

// appendNotifier is implemented by a shared outbox that hears of events
// other processes append (PostgreSQL's LISTEN/NOTIFY): each one wakes the
// sinks, as a local Record does, so a sink held here delivers an event
// recorded on another node at once rather than at the next poll.
type appendNotifier interface{ Appended() <-chan struct{} }

// A Sink delivers events to one destination.
//
// Deliver gets events in outbox order and delivers them in that order,
// returning how many, from the start, it delivered. An error stops at
// that count: the dispatcher retries events[n] after a backoff, so a sink
// must return an error only when retrying can help and is safe. ctx ends
// at shutdown; a sink that stops then returns ctx's error.
type Sink interface {
	Deliver(ctx context.Context, evs []events.Event) (int, error)
}

// batchSizer is implemented by sinks that want fewer events per Deliver
// than the dispatcher's batch (a command hook: its concurrency).
type batchSizer interface{ BatchSize() int }

// reopener is implemented by file sinks (Dispatcher.Reopen).
type reopener interface{ Reopen() error }

// Options tune a Dispatcher; the zero value is the production setting.
type Options struct {
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
	// RecordTimeout bounds one Record (30s): the session waiting on it
	// has already done what the event reports.
	RecordTimeout time.Duration
	// Poll is how often an idle sink looks at the outbox without being
	// woken (1s): it moves the cursors of sinks whose filter skips the
	// events being recorded, so they hold back neither pruning nor
	// their backlog count, without a write per event.
	Poll time.Duration
	// PruneEvery is the interval between Prune runs (1m).
	PruneEvery time.Duration
	// BatchSize is the most events handed to one Deliver (256).
	BatchSize int
}

// Dispatcher records events into the outbox and runs the delivery loops.
// Record may be called before Run (events wait in the outbox) and after
// Run returned (they are delivered at the next start).
type Dispatcher struct {
	store     Outbox
	retention time.Duration
	opts      Options
	log       *slog.Logger
	sinks     []*sinkLoop
	running   atomic.Bool
}

// SinkStats is a snapshot of one sink's counters since the process
// started, shaped for a Prometheus collector calling Stats at scrape time.
type SinkStats struct {
	Name string
	Kind events.Kind
	// Queued counts recorded events that pass the sink's filter.
	Queued uint64
	// Delivered counts events the sink delivered (a command hook: ran,
	// whatever its exit status).
	Delivered uint64
	// Retried counts failed attempts that will be tried again.
	Retried uint64
	// Failed counts command hooks that ran and failed (non-zero exit,
	// killed at the timeout): logged, not retried.
	Failed uint64
	// Dropped counts outbox events skipped because the backlog passed
	// max_backlog (whether or not the filter wanted them).
	Dropped uint64
	// Backlog is the events after the sink's cursor, last time it looked.
	Backlog int64
	// LastError is the last failed attempt's error, "" once delivering.
	LastError string
}

type sinkLoop struct {
	cfg  events.SinkConfig
	sink Sink
	wake chan struct{} // buffered(1): Record's nudge, coalesced

	queued, delivered, retried, failed, dropped atomic.Uint64
	backlog                                     atomic.Int64
	mu                                          sync.Mutex
	lastError                                   string
}

// New builds the sinks of cfg (validating it), registers their cursors in
// store, and forgets the cursors of sinks no longer configured, so they
// stop holding back pruning (logged, with what they left undelivered;
// a shared outbox keeps those another node still delivers).
// The caller keeps store and closes it after Run returned and Close.
func New(ctx context.Context, store Outbox, cfg events.Config, opts Options) (*Dispatcher, error) {
	return newDispatcher(ctx, store, cfg, opts, nil)
}

// newDispatcher lets tests put their own Sink behind a config.
func newDispatcher(ctx context.Context, store Outbox, cfg events.Config, opts Options, build func(events.SinkConfig) (Sink, error)) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RecordTimeout <= 0 {
		opts.RecordTimeout = 30 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.PruneEvery <= 0 {
		opts.PruneEvery = time.Minute
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	d := &Dispatcher{store: store, retention: cfg.Retention, opts: opts, log: opts.Logger}
	if build == nil {
		build = func(c events.SinkConfig) (Sink, error) { return buildSink(c, opts.Logger) }
	}
	keep := map[string]bool{}
	for _, c := range cfg.Sinks {
		sink, err := build(c)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("events: sink %s: %w", c.Name, err)
		}
		d.sinks = append(d.sinks, &sinkLoop{cfg: c, sink: sink, wake: make(chan struct{}, 1)})
		if _, err := store.Register(ctx, c.Name); err != nil {
			d.Close()
			return nil, fmt.Errorf("events: %w", err)
		}
		keep[c.Name] = true
	}
	names, err := store.Sinks(ctx)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("events: %w", err)
	}
	for _, n := range names {
		if keep[n] {
			continue
		}
		left, err := store.Forget(ctx, n)
		if errors.Is(err, events.ErrSinkInUse) {
			// A node with another config (a rolling change) still
			// delivers it; the last node to drop it forgets it.
			d.log.Warn("events: sink not configured here but another node delivers it; its place in the outbox is kept", "sink", n)
			continue
		}
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("events: %w", err)
		}
		d.log.Warn("events: sink no longer configured; its place in the outbox is removed", "sink", n, "undelivered", left)
	}
	return d, nil
}

func buildSink(c events.SinkConfig, log *slog.Logger) (Sink, error) {
	switch c.Kind {
	case events.KindAudit:
		return OpenAudit(c.Path)
	case events.KindXferlog:
		return OpenXferlog(c.Path, time.Local)
	case events.KindWebhook:
		return NewWebhook(c.URL, c.Secret, c.Timeout), nil
	case events.KindCommand:
		return NewCommand(c.Name, c.Command, c.Concurrency, c.Timeout, log)
	case events.KindSQS:
		return NewSQS(c.QueueURL, c.Region, c.Endpoint, c.Timeout), nil
	}
	return nil, fmt.Errorf("kind %q has no sink", c.Kind)
}

// Record implements events.Recorder: it stamps e, appends it to the
// outbox, and returns once that is on disk, waking the sinks whose
// filter wants it. It does not log; its error is the caller's to log.
func (d *Dispatcher) Record(e events.Event) error {
	e.Stamp(d.opts.Now())
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.RecordTimeout)
	defer cancel()
	if err := d.store.Append(ctx, e); err != nil {
		return fmt.Errorf("events: record %s %s: %w", e.Type, e.ID, err)
	}
	for _, s := range d.sinks {
		if s.cfg.Match(&e) {
			s.queued.Add(1)
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// Run delivers until ctx ends, then waits for its goroutines (a command
// hook that is running finishes first, within its timeout) and returns
// nil. It may be called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("events: Run called twice")
	}
	var wg sync.WaitGroup
	for _, s := range d.sinks {
		wg.Go(func() { d.deliverLoop(ctx, s) })
	}
	wg.Go(func() { d.pruneLoop(ctx) })
	if n, ok := d.store.(appendNotifier); ok {
		wg.Go(func() { d.forwardAppends(ctx, n.Appended()) })
	}
	wg.Wait()
	return nil
}

// forwardAppends wakes every sink when the outbox reports an event
// appended elsewhere: which sinks want it is for them to find out.
func (d *Dispatcher) forwardAppends(ctx context.Context, appended <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-appended:
		}
		for _, s := range d.sinks {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Reopen reopens the file sinks' files (after logrotate moved them; the
// server calls it on SIGUSR1). Each sink keeps its old file if the new one
// cannot be opened.
func (d *Dispatcher) Reopen() error {
	var errs []error
	for _, s := range d.sinks {
		if r, ok := s.sink.(reopener); ok {
			if err := r.Reopen(); err != nil {
				errs = append(errs, fmt.Errorf("events: sink %s: %w", s.cfg.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Close closes the sinks' files. Call it after Run returned.
func (d *Dispatcher) Close() error {
	var errs []error
	for _, s := range d.sinks {
		if c, ok := s.sink.(interface{ Close() error }); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("events: sink %s: %w", s.cfg.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Stats returns every sink's counters, in configuration order.
func (d *Dispatcher) Stats() []SinkStats {
	out := make([]SinkStats, 0, len(d.sinks))
	for _, s := range d.sinks {
		s.mu.Lock()
		last := s.lastError
		s.mu.Unlock()
		out = append(out, SinkStats{
			Name: s.cfg.Name, Kind: s.cfg.Kind,
			Queued: s.queued.Load(), Delivered: s.delivered.Load(), Retried: s.retried.Load(),
			Failed: s.failed.Load(), Dropped: s.dropped.Load(), Backlog: s.backlog.Load(),
			LastError: last,
		})
	}
	return out
}

// deliverLoop is one sink's delivery: trim the backlog, take the next
// batch (unless backing off), hand the events the filter wants to the
// sink, and move the cursor past what was delivered or skipped.
func (d *Dispatcher) deliverLoop(ctx context.Context, s *sinkLoop) {
	log := d.log.With("sink", s.cfg.Name, "kind", s.cfg.Kind)
	// A command hook counts its own failures (they are not errors:
	// the hook ran and is not retried).
	if f, ok := s.sink.(interface{ setFailed(func()) }); ok {
		f.setFailed(func() { s.failed.Add(1) })
	}
	batch := d.opts.BatchSize
	if b, ok := s.sink.(batchSizer); ok && b.BatchSize() > 0 {
		batch = min(batch, b.BatchSize())
	}
	attempts := 0
	if p, err := d.store.Progress(ctx, s.cfg.Name); err == nil {
		attempts = p.Attempts // a backoff survives a restart
	}
	var dropping bool // in a drop episode
	var episodeDropped int64
	for ctx.Err() == nil {
		dropped, backlog, err := d.store.Trim(ctx, s.cfg.Name, int64(s.cfg.MaxBacklog))
		if err != nil {
			d.pause(ctx, log, err)
			continue
		}
		s.backlog.Store(backlog)
		if dropped > 0 {
			s.dropped.Add(uint64(dropped))
			episodeDropped += dropped
			if !dropping {
				dropping = true
				log.Warn("events: sink's backlog passed max_backlog; dropping its oldest undelivered events until it catches up",
					"max_backlog", s.cfg.MaxBacklog, "dropped", dropped, "last_error", s.lastErr())
			}
		} else if dropping && backlog <= int64(s.cfg.MaxBacklog)/2 {
			dropping = false
			log.Info("events: sink caught up after dropping events", "dropped", episodeDropped, "backlog", backlog)
			episodeDropped = 0
		}

		now := d.opts.Now()
		evs, retryAt, err := d.store.Pending(ctx, s.cfg.Name, batch, now)
		if err != nil {
			d.pause(ctx, log, err)
			continue
		}
		if len(evs) == 0 {
			d.wait(ctx, s, retryAt.Sub(now))
			continue
		}
		var want []events.Event
		var at []int // want[i] is evs[at[i]]
		for i := range evs {
			if s.cfg.Match(&evs[i]) {
				want = append(want, evs[i])
				at = append(at, i)
			}
		}
		n, derr := len(want), error(nil)
		if len(want) > 0 {
			n, derr = d.deliver(ctx, log, s, want)
		}
		// Done: everything before the first undelivered wanted event,
		// or the whole batch (skipped events included).
		done := len(evs)
		if derr != nil {
			done = at[n]
		}
		if done > 0 {
			// Recorded even at shutdown: what was delivered stays
			// delivered, and is not sent again at the next start.
			mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := d.store.MarkDelivered(mctx, s.cfg.Name, evs[done-1].ID, d.opts.Now()); err != nil {
				log.Error("events: recording delivery failed; those events will be delivered again", "err", err)
			}
			cancel()
		}
		if derr == nil || n > 0 {
			attempts = 0
			s.setLastErr("")
		}
		s.delivered.Add(uint64(n))
		if derr == nil {
			continue
		}
		if ctx.Err() != nil {
			return // shutting down: not the receiver's failure
		}
		attempts++
		delay := backoff(s.cfg.RetryMin, s.cfg.RetryMax, attempts)
		failing := want[n]
		s.retried.Add(1)
		s.setLastErr(derr.Error())
		log.Warn("events: delivery failed; retrying", "event", failing.ID, "type", failing.Type,
			"attempt", attempts, "retry_in", delay.Round(time.Millisecond), "err", derr)
		if err := d.store.MarkFailed(ctx, s.cfg.Name, failing.ID, derr, d.opts.Now().Add(delay)); err != nil {
			d.pause(ctx, log, err)
		}
	}
}

// deliver calls the sink, turning a panic into a retried error (one
// bad event must not take the server down) and holding a sink to its
// contract: an error leaves at least one event undelivered.
func (d *Dispatcher) deliver(ctx context.Context, log *slog.Logger, s *sinkLoop, evs []events.Event) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("events: sink panicked", "panic", p, "stack", string(debug.Stack()))
			n, err = 0, fmt.Errorf("events: sink %s panicked: %v", s.cfg.Name, p)
		}
	}()
	n, err = s.sink.Deliver(ctx, evs)
	n = max(0, min(n, len(evs)))
	if err != nil && n == len(evs) {
		log.Warn("events: sink reported an error after delivering everything; taken as delivered", "err", err)
		err = nil
	}
	return n, err
}

// wait sleeps until the retry time (when d > 0), a wake-up, or a poll.
func (d *Dispatcher) wait(ctx context.Context, s *sinkLoop, until time.Duration) {
	wait := d.opts.Poll
	if until > 0 {
		// Backing off: Record's wake-ups still come through, so that
		// a growing backlog is trimmed while the receiver is down.
		wait = until
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-s.wake:
	case <-t.C:
	}
}

// pause follows a store error: logged, then a second's wait, so a broken
// disk costs a log line a second rather than a busy loop.
func (d *Dispatcher) pause(ctx context.Context, log *slog.Logger, err error) {
	if ctx.Err() != nil {
		return
	}
	log.Error("events: outbox", "err", err)
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (d *Dispatcher) pruneLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.PruneEvery)
	defer t.Stop()
	for {
		n, err := d.store.Prune(ctx, d.opts.Now().Add(-d.retention))
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Error("events: pruning the outbox", "err", err)
		case n > 0:
			d.log.Debug("events: pruned the outbox", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// backoff is lo doubled per attempt after the first, capped at hi, less
// up to a fifth at random so that sinks failing together do not retry in
// step.
func backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if j := int64(d / 5); j > 0 {
		d -= time.Duration(rand.Int64N(j))
	}
	return d
}

func (s *sinkLoop) setLastErr(msg string) {
	s.mu.Lock()
	s.lastError = msg
	s.mu.Unlock()
}

func (s *sinkLoop) lastErr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastError
}
