// Package pgoutbox is the event outbox in PostgreSQL, for several nodes
// sharing one database (auth.store = "postgres"): every node appends the
// events it records to one table, and each sink is delivered by one node
// at a time, so an event gives one delivery per sink however many nodes
// run, in order, and a node that dies hands its sinks to another.
//
// It has the methods of internal/state's SQLite outbox (it is a
// delivery.Outbox), on the tables of migration 00002_outbox.sql in
// internal/pgdb:
//   - Open and Close;
//   - Append, which returns once the event is committed (concurrent
//     appends of a node share one transaction);
//   - per-sink cursors: Register, Pending, MarkDelivered, MarkFailed,
//     Trim, Progress, Sinks and Forget;
//   - Prune, which deletes events every sink is done with;
//   - Appended, a wake-up for events other nodes append (LISTEN/NOTIFY).
//
// # Leases
//
// A sink is delivered by the node holding its lease, a row in
// cloudftpd_outbox_sinks naming the node and how long it holds it
// (Options.Lease, by the database's clock, so nodes' clocks may
// disagree). Pending takes the lease when it is free or has run out and
// renews it; a background loop renews every lease the node holds a few
// times per Lease, so a long delivery keeps it. While another node holds
// a sink, Pending returns no events and when its lease runs out. Close
// hands the leases back at once, so a node that stops cleanly (a rolling
// restart) passes its sinks on without waiting.
//
// A node killed with -9, or cut off from the database, stops renewing:
// after Lease another node takes the sink over from its cursor. Nothing
// recorded is lost. What the dead node delivered after its last
// MarkDelivered is delivered again: the at-least-once window, one batch at
// most, which receivers close by deduplicating on the event id. The same
// holds for a node that stalls for longer than Lease (a paused VM) and
// then goes on delivering the batch in hand: MarkFailed refuses it
// (ErrLeaseLost), MarkDelivered only ever moves a cursor forward, and it
// takes no new batch until the lease is free again.
package pgoutbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/events/batch"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
)

// Channel is the LISTEN/NOTIFY channel appends notify, with the
// appending node's name as the payload, and Close, with "released " and
// the node's name.
const Channel = "cloudftpd_outbox"

// DefaultLease is how long a sink's lease lasts without renewal.
const DefaultLease = 10 * time.Second

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("pgoutbox: store is closed")

// ErrUnknownSink is returned for a sink that was never registered.
var ErrUnknownSink = errors.New("pgoutbox: unknown sink")

// ErrLeaseLost is returned by MarkFailed when another node holds the
// sink's lease: this node's lease ran out while it delivered.
var ErrLeaseLost = errors.New("pgoutbox: the sink's lease was taken over by another node")

// maxBatch bounds how many appends share one transaction.
const maxBatch = 512

// commitTimeout bounds one append transaction. It is the store's own:
// a batch carries many callers' events, and one caller giving up must not
// fail the others.
const commitTimeout = 30 * time.Second

// Options tune a Store; the zero value is the production setting.
type Options struct {
	// Lease is how long a node holds a sink without renewing it
	// (DefaultLease): how long a dead node's sinks wait for another.
	// Renewals come three times per Lease.
	Lease time.Duration
	// Node names this process in the lease rows (default host name, pid
	// and a random suffix): it must differ between processes.
	Node   string
	Logger *slog.Logger
}

// Store is the outbox in one PostgreSQL database. Its methods are safe
// for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	node string
	// lease in milliseconds, as the queries take it.
	leaseMS int64
	lease   time.Duration
	log     *slog.Logger

	// appends batches Append's rows: with a WAL flush per commit, and
	// every node's appends queueing on the one counter row, that is
	// what lets many sessions record at once.
	appends   *batch.Batcher[events.OutboxRow]
	appended  chan struct{} // buffered(1): Appended's wake-ups
	closeOnce sync.Once
	stop      context.CancelFunc // the renewal and listening loops
	loops     chan struct{}      // closed when they have returned

	// elsewhere are the sinks another node held when last looked at,
	// until their lease runs out by this process's clock: Pending and
	// Trim answer for them without a query, so that a node not holding
	// a sink costs the database two queries per Lease, not two per
	// event recorded anywhere.
	mu        sync.Mutex
	elsewhere map[string]heldElsewhere
}

type heldElsewhere struct {
	until   time.Time // time.Now's clock, monotonic
	backlog int64
}

// Open checks that the database has the outbox tables (`cloudftpd db
// migrate` creates them; the server never changes the schema) and starts
// the store's loops. The caller keeps pool and closes it after Close.
func Open(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Store, error) {
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Node == "" {
		opts.Node = defaultNode()
	}
	var last int64
	if err := pool.QueryRow(ctx, `SELECT last_seq FROM cloudftpd_outbox_seq`).Scan(&last); err != nil {
		return nil, wrap("open", err)
	}
	lctx, stop := context.WithCancel(context.Background())
	s := &Store{
		pool:     pool,
		node:     opts.Node,
		lease:    opts.Lease,
		leaseMS:  opts.Lease.Milliseconds(),
		log:      opts.Logger,
		appended: make(chan struct{}, 1),
		stop:     stop,
		loops:    make(chan struct{}),

		elsewhere: make(map[string]heldElsewhere),
	}
	s.appends = batch.New(maxBatch, s.commit)
	go func() {
		defer close(s.loops)
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			s.renewLoop(lctx)
		}()
		s.listenLoop(lctx)
		<-renewed
	}()
	return s, nil
}

// defaultNode is "host:pid:random": unique per process, and it says where
// to look.
func defaultNode() string {
	host, _ := os.Hostname()
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Node is the name this store's leases carry.
func (s *Store) Node() string { return s.node }

// Close waits for appends in progress, stops renewing leases and hands
// back the ones this node holds, so another node takes its sinks over at
// once. Append fails with ErrClosed afterwards. Call it after the
// dispatcher's Run returned: a sink handed back while this node still
// delivers would be delivered twice.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.close() })
	return err
}

func (s *Store) close() error {
	s.appends.Close()
	s.stop()
	<-s.loops
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The notification tells the other nodes to look now, rather than
	// when they expected the lease to run out.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE cloudftpd_outbox_sinks SET lease_until = '-infinity' WHERE lease_holder = $1 AND lease_until > '-infinity'`, s.node)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, releasePrefix+s.node)
		return err
	})
	if err != nil {
		// Not fatal: the leases run out by themselves.
		return wrap("close: handing back leases", err)
	}
	return nil
}

// releasePrefix starts the payload of the notification Close sends.
const releasePrefix = "released "

// Append records e (which must have an ID, see events.Event.Stamp) and
// returns once the transaction holding it has committed. Appending an ID
// already in the outbox does nothing, so a retried Append cannot
// duplicate an event. If ctx ends first, Append returns its error and
// the event may or may not have been written.
func (s *Store) Append(ctx context.Context, e events.Event) error {
	row, err := events.NewOutboxRow(e)
	if err != nil {
		return fmt.Errorf("pgoutbox: %w", err)
	}
	err = s.appends.Submit(ctx, row)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, batch.ErrClosed):
		return ErrClosed
	default:
		return fmt.Errorf("pgoutbox: append %s: %w", e.ID, wrap("", err))
	}
}

func (s *Store) commit(rows []events.OutboxRow) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	ids := make([]string, len(rows))
	types := make([]string, len(rows))
	created := make([]int64, len(rows))
	bodies := make([]string, len(rows))
	for i, r := range rows {
		ids[i], types[i], created[i], bodies[i] = r.ID, r.Type, r.Created, string(r.Body)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var last int64
		if err := tx.QueryRow(ctx,
			`UPDATE cloudftpd_outbox_seq SET last_seq = last_seq + $1 RETURNING last_seq`,
			len(rows)).Scan(&last); err != nil {
			return err
		}
		// A duplicate id leaves its seq unused: a gap, which only
		// makes the backlog counts an upper bound.
		if _, err := tx.Exec(ctx,
			`INSERT INTO cloudftpd_outbox (seq, id, created_ms, type, body)
			 SELECT $1::bigint + n, id, created_ms, type, body
			 FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY AS e(id, created_ms, type, body, n)
			 ON CONFLICT (id) DO NOTHING`,
			last-int64(len(rows)), ids, created, types, bodies); err != nil {
			return err
		}
		// Delivered at commit, to the other nodes' Appended.
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, s.node)
		return err
	})
}

// Appended delivers a value (coalesced) when another node has appended
// events: the dispatcher wakes its sinks on it.
func (s *Store) Appended() <-chan struct{} { return s.appended }

// Register creates sink's cursor if it has none, at the end of the
// outbox: a new sink gets the events recorded from now on. It reports
// whether the cursor is new.
func (s *Store) Register(ctx context.Context, sink string) (bool, error) {
	tag, err := s.pool.Exec(ctx,
		`INSERT INTO cloudftpd_outbox_sinks (sink, delivered_seq) SELECT $1, last_seq FROM cloudftpd_outbox_seq ON CONFLICT (sink) DO NOTHING`,
		sink)
	if err != nil {
		return false, wrap("register "+sink, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Forget deletes sink's cursor, so it no longer holds back Prune, and
// reports how many events were left undelivered. A sink whose lease
// another node holds is kept: events.ErrSinkInUse.
func (s *Store) Forget(ctx context.Context, sink string) (int64, error) {
	p, err := s.Progress(ctx, sink)
	if err != nil {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx,
		`DELETE FROM cloudftpd_outbox_sinks WHERE sink = $1 AND (lease_holder = $2 OR lease_until < clock_timestamp())`,
		sink, s.node)
	if err != nil {
		return 0, wrap("forget "+sink, err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.Progress(ctx, sink); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("pgoutbox: forget %s: %w", sink, events.ErrSinkInUse)
	}
	return p.Backlog, nil
}

// Sinks lists the registered sinks' names.
func (s *Store) Sinks(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT sink FROM cloudftpd_outbox_sinks ORDER BY sink`)
	if err != nil {
		return nil, wrap("sinks", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, wrap("sinks", err)
	}
	return names, nil
}

// Progress returns sink's cursor state.
func (s *Store) Progress(ctx context.Context, sink string) (events.SinkProgress, error) {
	p := events.SinkProgress{Sink: sink}
	var next, delivered int64
	err := s.pool.QueryRow(ctx,
		`SELECT q.last_seq - c.delivered_seq, c.failing_id, c.attempts, c.next_attempt_ms, c.last_error, c.delivered_ms, c.dropped
		 FROM cloudftpd_outbox_sinks c, cloudftpd_outbox_seq q WHERE c.sink = $1`, sink).
		Scan(&p.Backlog, &p.FailingID, &p.Attempts, &next, &p.LastError, &delivered, &p.Dropped)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("%w %q", ErrUnknownSink, sink)
	}
	if err != nil {
		return p, wrap("progress "+sink, err)
	}
	p.NextAttempt = fromMillis(next)
	p.LastDelivered = fromMillis(delivered)
	return p, nil
}

// Pending takes or renews sink's lease and returns up to limit events
// after its cursor, oldest first. While a failed delivery waits for its
// next attempt (MarkFailed's nextAttempt is after now), it returns no
// events and that time; while another node holds the lease, no events
// and when the lease runs out (by now's clock).
func (s *Store) Pending(ctx context.Context, sink string, limit int, now time.Time) ([]events.Event, time.Time, error) {
	if h, ok := s.heldElsewhere(sink); ok {
		return nil, now.Add(time.Until(h.until)), nil
	}
	var cursor, next int64
	var prev string
	var released bool
	err := s.pool.QueryRow(ctx,
		`WITH old AS (SELECT sink, lease_holder, lease_until FROM cloudftpd_outbox_sinks WHERE sink = $1 FOR UPDATE)
		 UPDATE cloudftpd_outbox_sinks c
		 SET lease_holder = $2, lease_until = clock_timestamp() + $3 * interval '1 millisecond'
		 FROM old WHERE c.sink = old.sink AND (old.lease_holder = $2 OR old.lease_until < clock_timestamp())
		 RETURNING c.delivered_seq, c.next_attempt_ms, old.lease_holder, old.lease_until = '-infinity'`,
		sink, s.node, s.leaseMS).Scan(&cursor, &next, &prev, &released)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.heldUntil(ctx, sink, now)
	}
	if err != nil {
		return nil, time.Time{}, wrap("pending "+sink, err)
	}
	if prev != s.node && prev != "" {
		if released {
			s.log.Info("events: sink handed over by a node that stopped; delivering it here", "sink", sink, "from", prev, "node", s.node)
		} else {
			s.log.Warn("events: sink's lease ran out on another node (stopped or cut off); delivering it here from its cursor", "sink", sink, "from", prev, "node", s.node)
		}
	}
	if next > now.UnixMilli() {
		return nil, fromMillis(next), nil
	}
	rows, err := s.pool.Query(ctx,
		`SELECT body FROM cloudftpd_outbox WHERE seq > $1 ORDER BY seq LIMIT $2`, cursor, limit)
	if err != nil {
		return nil, time.Time{}, wrap("pending "+sink, err)
	}
	bodies, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, time.Time{}, wrap("pending "+sink, err)
	}
	evs := make([]events.Event, 0, len(bodies))
	for _, b := range bodies {
		var e events.Event
		if err := json.Unmarshal([]byte(b), &e); err != nil {
			return nil, time.Time{}, fmt.Errorf("pgoutbox: pending %s: event body: %w", sink, err)
		}
		evs = append(evs, e)
	}
	return evs, time.Time{}, nil
}

// heldUntil is Pending's answer for a sink another node holds: no
// events, and the time its lease runs out, on now's clock.
func (s *Store) heldUntil(ctx context.Context, sink string, now time.Time) ([]events.Event, time.Time, error) {
	var left, backlog int64
	err := s.pool.QueryRow(ctx,
		`SELECT CASE WHEN c.lease_until < clock_timestamp() THEN 0
		        ELSE CEIL(EXTRACT(EPOCH FROM c.lease_until - clock_timestamp()) * 1000)::bigint END,
		        q.last_seq - c.delivered_seq
		 FROM cloudftpd_outbox_sinks c, cloudftpd_outbox_seq q WHERE c.sink = $1`, sink).Scan(&left, &backlog)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("%w %q", ErrUnknownSink, sink)
	}
	if err != nil {
		return nil, time.Time{}, wrap("pending "+sink, err)
	}
	// A little after it runs out, so the next look finds it free
	// rather than just renewed or about to be.
	wait := time.Duration(left)*time.Millisecond + 10*time.Millisecond
	s.mu.Lock()
	s.elsewhere[sink] = heldElsewhere{until: time.Now().Add(wait), backlog: backlog}
	s.mu.Unlock()
	return nil, now.Add(wait), nil
}

// heldElsewhere reports whether another node held sink when last looked
// at and its lease has not run out since.
func (s *Store) heldElsewhere(sink string) (heldElsewhere, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.elsewhere[sink]
	if ok && !time.Now().Before(h.until) {
		delete(s.elsewhere, sink)
		ok = false
	}
	return h, ok
}

// MarkDelivered moves sink's cursor to the event id: it and every event
// before it are done. It clears the retry state. A cursor already past id
// stays where it is. Whichever node calls it, what it says is true (the
// events were delivered), so it needs no lease.
func (s *Store) MarkDelivered(ctx context.Context, sink, id string, now time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE cloudftpd_outbox_sinks c
		 SET delivered_seq = o.seq, failing_id = '', attempts = 0, next_attempt_ms = 0, last_error = '', delivered_ms = $3
		 FROM cloudftpd_outbox o WHERE o.id = $2 AND c.sink = $1 AND c.delivered_seq < o.seq`,
		sink, id, now.UnixMilli())
	if err != nil {
		return wrap("mark "+id+" delivered to "+sink, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var known bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM cloudftpd_outbox WHERE id = $1)`, id).Scan(&known); err != nil {
		return wrap("mark "+id+" delivered to "+sink, err)
	}
	if !known {
		return fmt.Errorf("pgoutbox: mark %s delivered to %s: no event %s in the outbox", id, sink, id)
	}
	_, err = s.Progress(ctx, sink)
	return err
}

// MarkFailed records a failed attempt at delivering id to sink: Pending
// returns nothing for sink until nextAttempt. Attempts count up while the
// same event keeps failing. Only the lease holder may: another node's
// backoff is not this one's (ErrLeaseLost).
func (s *Store) MarkFailed(ctx context.Context, sink, id string, cause error, nextAttempt time.Time) error {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	tag, err := s.pool.Exec(ctx,
		`UPDATE cloudftpd_outbox_sinks SET attempts = CASE WHEN failing_id = $2 THEN attempts + 1 ELSE 1 END,
		 failing_id = $2, next_attempt_ms = $3, last_error = $4 WHERE sink = $1 AND lease_holder = $5`,
		sink, id, nextAttempt.UnixMilli(), msg, s.node)
	if err != nil {
		return wrap("mark "+id+" failed for "+sink, err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.Progress(ctx, sink); err != nil {
			return err
		}
		return fmt.Errorf("%w (sink %s, event %s)", ErrLeaseLost, sink, id)
	}
	return nil
}

// Trim drops sink's oldest undelivered events so that at most keep remain,
// moving its cursor past the others; the outbox itself is untouched. It
// returns how many were dropped and the backlog left. Any node may trim
// (the cursor only moves forward), but while another node holds the sink
// this one leaves it to that one and reports the backlog last seen.
func (s *Store) Trim(ctx context.Context, sink string, keep int64) (dropped, backlog int64, err error) {
	if h, ok := s.heldElsewhere(sink); ok {
		return 0, h.backlog, nil // the holder trims
	}
	p, err := s.Progress(ctx, sink)
	if err != nil {
		return 0, 0, err
	}
	if p.Backlog <= keep {
		return 0, p.Backlog, nil // the common case: a read, no lock
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var cursor, last int64
		// Locks the sink's row only: appenders queue on the counter
		// row, which is read here without a lock.
		if err := tx.QueryRow(ctx,
			`SELECT c.delivered_seq, q.last_seq FROM cloudftpd_outbox_sinks c, cloudftpd_outbox_seq q
			 WHERE c.sink = $1 FOR UPDATE OF c`, sink).Scan(&cursor, &last); err != nil {
			return err
		}
		to := last - keep
		if to <= cursor {
			dropped, backlog = 0, last-cursor
			return nil
		}
		if _, err := tx.Exec(ctx,
			`UPDATE cloudftpd_outbox_sinks SET delivered_seq = $2, dropped = dropped + $3 WHERE sink = $1`,
			sink, to, to-cursor); err != nil {
			return err
		}
		dropped, backlog = to-cursor, keep
		return nil
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("%w %q", ErrUnknownSink, sink)
	}
	if err != nil {
		return 0, 0, wrap("trim "+sink, err)
	}
	return dropped, backlog, nil
}

// Prune deletes the events that every registered sink is done with and
// that were recorded before olderThan. It returns how many it deleted.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx,
		`DELETE FROM cloudftpd_outbox WHERE created_ms < $1 AND seq <= COALESCE(
		   (SELECT MIN(delivered_seq) FROM cloudftpd_outbox_sinks),
		   (SELECT last_seq FROM cloudftpd_outbox_seq))`,
		olderThan.UnixMilli())
	if err != nil {
		return 0, wrap("prune", err)
	}
	return tag.RowsAffected(), nil
}

// renewLoop renews the leases this node holds three times per Lease, so
// that a delivery taking longer than Pending's renewal keeps its sink.
// A lease that already ran out is not renewed: another node may have
// seen it free, and Pending takes it again if none did.
func (s *Store) renewLoop(ctx context.Context) {
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, s.lease/3)
		_, err := s.pool.Exec(rctx,
			`UPDATE cloudftpd_outbox_sinks SET lease_until = clock_timestamp() + $2 * interval '1 millisecond'
			 WHERE lease_holder = $1 AND lease_until >= clock_timestamp()`, s.node, s.leaseMS)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			s.log.Error("events: cannot renew this node's sink leases; other nodes take the sinks over when they run out", "err", err, "lease", s.lease)
		case err == nil && failing:
			failing = false
			s.log.Info("events: renewing sink leases again")
		}
	}
}

// listenLoop LISTENs for other nodes' appends on a connection of its own
// and passes them to Appended, connecting again after a failure. Without
// it sinks still see those events, at their next poll.
func (s *Store) listenLoop(ctx context.Context) {
	pgdb.Retry(ctx, s.lease, s.listen, func(err error) bool {
		s.log.Debug("events: outbox notifications interrupted; sinks poll meanwhile", "err", err)
		return false
	})
}

func (s *Store) listen(ctx context.Context) error {
	conn, closeConn, err := pgdb.Listen(ctx, s.pool, s.lease, Channel, "")
	if err != nil {
		return err
	}
	defer closeConn()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Payload == s.node {
			continue // this node's Record woke its sinks already
		}
		if strings.HasPrefix(n.Payload, releasePrefix) {
			// Leases handed back: look at every sink again now.
			s.mu.Lock()
			clear(s.elsewhere)
			s.mu.Unlock()
		}
		select {
		case s.appended <- struct{}{}:
		default:
		}
	}
}

// wrap names the store in an error and says what to do about a missing
// table.
func wrap(op string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		err = fmt.Errorf("the database has no outbox tables (run \"cloudftpd db migrate\"): %w", err)
	}
	if op == "" {
		return err
	}
	return fmt.Errorf("pgoutbox: %s: %w", op, err)
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
