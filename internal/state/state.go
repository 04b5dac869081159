// Package state is cloudftpd's state store: what must survive a restart.
// Today that is the event outbox and each sink's place in it; bans, quota
// usage and database-backed users are meant to join it.
//
// The store is an SQLite database (modernc.org/sqlite, pure Go) in a state
// directory, in WAL mode with synchronous=FULL, so a committed event
// survives kill -9 and, as far as SQLite and the disk can promise, a power
// cut. Its schema is a set of goose migrations embedded in the binary and
// applied at Open, written in SQL that PostgreSQL accepts too. The
// outbox several nodes share is internal/pgoutbox, on the same tables'
// shape in internal/pgdb's migrations, plus a lease per sink.
//
// It offers:
//   - Open and Close;
//   - Append, which returns once an event is durable (concurrent appends
//     share one transaction and one fsync);
//   - per-sink cursors: Register, Pending, MarkDelivered, MarkFailed,
//     Trim (drop a backlog), Progress, Sinks and Forget;
//   - Prune, which deletes events every sink is done with.
//
// A sink's cursor says every event up to it is done; delivery is in order
// (seq), so a failing event holds back the ones after it for that sink
// only. See migrations/00001_outbox.sql for the tables.
package state

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/events/batch"
)

//go:embed migrations/*.sql
var migrations embed.FS

// FileName is the database's name inside the state directory.
const FileName = "state.db"

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("state: store is closed")

// ErrUnknownSink is returned for a sink that was never registered.
var ErrUnknownSink = errors.New("state: unknown sink")

// maxBatch bounds how many appends share one transaction.
const maxBatch = 512

// commitTimeout bounds one append transaction. It is the store's own, not
// a caller's: a batch carries many callers' events, and one caller giving
// up must not fail the others.
const commitTimeout = 30 * time.Second

// Store is an open state database. Its methods are safe for concurrent
// use.
type Store struct {
	db *sql.DB

	// appends batches Append's rows: with an fsync per commit, that is
	// what lets many sessions record at once without queueing behind
	// each other's fsyncs.
	appends   *batch.Batcher[events.OutboxRow]
	closeOnce sync.Once
}

// Open opens the store in dir, creating the directory (mode 0700) and the
// database (0600) if needed, and applies pending migrations.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	// Created here so that its mode is ours; SQLite gives the -wal and
	// -shm files the database file's mode.
	if f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	} else {
		f.Close()
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL: the WAL is fsynced at every commit, so a committed event
	// survives a power cut, not only a crash of the process.
	q.Add("_pragma", "synchronous(FULL)")
	// Writes take the lock at BEGIN, so two writers never deadlock
	// upgrading from a read; busy_timeout then queues them.
	q.Set("_txlock", "immediate")
	dsn := (&url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", abs, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %s: %w", abs, err)
	}
	s := &Store{db: db}
	s.appends = batch.New(maxBatch, s.commit)
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	return nil
}

// Close waits for appends in progress and closes the database. Append
// fails with ErrClosed afterwards.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.appends.Close()
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("state: close: %w", cerr)
		}
	})
	return err
}

// Append records e (which must have an ID, see events.Event.Stamp) and
// returns once it is committed to disk. Appending an ID that is already
// in the outbox does nothing, so a retried Append cannot duplicate an
// event. If ctx ends first, Append returns its error and the event may
// or may not have been written.
func (s *Store) Append(ctx context.Context, e events.Event) error {
	row, err := events.NewOutboxRow(e)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	err = s.appends.Submit(ctx, row)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, batch.ErrClosed):
		return ErrClosed
	default:
		return fmt.Errorf("state: append %s: %w", e.ID, err)
	}
}

func (s *Store) commit(rows []events.OutboxRow) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var last int64
	if err := tx.QueryRowContext(ctx,
		`UPDATE outbox_seq SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq`,
		len(rows)).Scan(&last); err != nil {
		return err
	}
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO outbox (seq, id, created_ms, type, body) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	// A duplicate id leaves its seq unused: a gap, which only makes
	// Trim's and Progress's backlog counts an upper bound.
	seq := last - int64(len(rows))
	for _, r := range rows {
		seq++
		if _, err := stmt.ExecContext(ctx, seq, r.ID, r.Created, r.Type, string(r.Body)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Register creates sink's cursor if it has none, at the end of the
// outbox: a new sink gets the events recorded from now on, not the
// retained history. It reports whether the cursor is new.
func (s *Store) Register(ctx context.Context, sink string) (bool, error) {
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO sink_cursors (sink, delivered_seq) SELECT $1, last_seq FROM outbox_seq WHERE id = 1 ON CONFLICT (sink) DO NOTHING`,
		sink)
	if err != nil {
		return false, fmt.Errorf("state: register %s: %w", sink, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Forget deletes sink's cursor, so it no longer holds back Prune. It
// reports how many events were left undelivered.
func (s *Store) Forget(ctx context.Context, sink string) (int64, error) {
	p, err := s.Progress(ctx, sink)
	if err != nil {
		return 0, err
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sink_cursors WHERE sink = $1`, sink); err != nil {
		return 0, fmt.Errorf("state: forget %s: %w", sink, err)
	}
	return p.Backlog, nil
}

// Sinks lists the registered sinks' names.
func (s *Store) Sinks(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sink FROM sink_cursors ORDER BY sink`)
	if err != nil {
		return nil, fmt.Errorf("state: sinks: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("state: sinks: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: sinks: %w", err)
	}
	return names, nil
}

// Progress is a sink's place in the outbox (the type every outbox
// store reports, see events.SinkProgress).
type Progress = events.SinkProgress

// Progress returns sink's cursor state.
func (s *Store) Progress(ctx context.Context, sink string) (Progress, error) {
	p := Progress{Sink: sink}
	var next, delivered int64
	err := s.db.QueryRowContext(ctx,
		`SELECT q.last_seq - c.delivered_seq, c.failing_id, c.attempts, c.next_attempt_ms, c.last_error, c.delivered_ms, c.dropped
		 FROM sink_cursors c, outbox_seq q WHERE c.sink = $1 AND q.id = 1`, sink).
		Scan(&p.Backlog, &p.FailingID, &p.Attempts, &next, &p.LastError, &delivered, &p.Dropped)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("%w %q", ErrUnknownSink, sink)
	}
	if err != nil {
		return p, fmt.Errorf("state: progress %s: %w", sink, err)
	}
	p.NextAttempt = fromMillis(next)
	p.LastDelivered = fromMillis(delivered)
	return p, nil
}

// Pending returns up to limit events after sink's cursor, oldest first.
// While a failed delivery waits for its next attempt (MarkFailed's
// nextAttempt is after now), it returns no events and that time.
func (s *Store) Pending(ctx context.Context, sink string, limit int, now time.Time) ([]events.Event, time.Time, error) {
	var cursor, next int64
	err := s.db.QueryRowContext(ctx,
		`SELECT delivered_seq, next_attempt_ms FROM sink_cursors WHERE sink = $1`, sink).Scan(&cursor, &next)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, fmt.Errorf("%w %q", ErrUnknownSink, sink)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("state: pending %s: %w", sink, err)
	}
	if next > now.UnixMilli() {
		return nil, fromMillis(next), nil
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT body FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2`, cursor, limit)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("state: pending %s: %w", sink, err)
	}
	defer rows.Close()
	var evs []events.Event
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, time.Time{}, fmt.Errorf("state: pending %s: %w", sink, err)
		}
		var e events.Event
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			return nil, time.Time{}, fmt.Errorf("state: pending %s: event body: %w", sink, err)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, fmt.Errorf("state: pending %s: %w", sink, err)
	}
	return evs, time.Time{}, nil
}

// MarkDelivered moves sink's cursor to the event id: it and every event
// before it are done. It clears the retry state. A cursor already past id
// stays where it is.
func (s *Store) MarkDelivered(ctx context.Context, sink, id string, now time.Time) error {
	seq, err := s.seqOf(ctx, id)
	if err != nil {
		return fmt.Errorf("state: mark %s delivered to %s: %w", id, sink, err)
	}
	res, err := s.db.ExecContext(ctx,
		`UPDATE sink_cursors SET delivered_seq = $2, failing_id = '', attempts = 0, next_attempt_ms = 0, last_error = '', delivered_ms = $3
		 WHERE sink = $1 AND delivered_seq < $2`, sink, seq, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("state: mark %s delivered to %s: %w", id, sink, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Progress(ctx, sink); err != nil {
			return err
		}
	}
	return nil
}

// MarkFailed records a failed attempt at delivering id to sink: Pending
// returns nothing for sink until nextAttempt. Attempts count up while the
// same event keeps failing.
func (s *Store) MarkFailed(ctx context.Context, sink, id string, cause error, nextAttempt time.Time) error {
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	res, err := s.db.ExecContext(ctx,
		`UPDATE sink_cursors SET attempts = CASE WHEN failing_id = $2 THEN attempts + 1 ELSE 1 END,
		 failing_id = $2, next_attempt_ms = $3, last_error = $4 WHERE sink = $1`,
		sink, id, nextAttempt.UnixMilli(), msg)
	if err != nil {
		return fmt.Errorf("state: mark %s failed for %s: %w", id, sink, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w %q", ErrUnknownSink, sink)
	}
	return nil
}

// Trim drops sink's oldest undelivered events so that at most keep remain,
// moving its cursor past the others; the outbox itself is untouched (Prune
// removes them once no sink needs them). It returns how many were dropped
// and the backlog left. A retry in progress keeps its backoff: the
// receiver that failed it is no healthier for the drop.
func (s *Store) Trim(ctx context.Context, sink string, keep int64) (dropped, backlog int64, err error) {
	p, err := s.Progress(ctx, sink)
	if err != nil {
		return 0, 0, err
	}
	if p.Backlog <= keep {
		return 0, p.Backlog, nil // the common case: a read, no write lock
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("state: trim %s: %w", sink, err)
	}
	defer tx.Rollback()
	var cursor, last int64
	if err := tx.QueryRowContext(ctx,
		`SELECT c.delivered_seq, q.last_seq FROM sink_cursors c, outbox_seq q WHERE c.sink = $1 AND q.id = 1`,
		sink).Scan(&cursor, &last); err != nil {
		return 0, 0, fmt.Errorf("state: trim %s: %w", sink, err)
	}
	to := last - keep
	if to <= cursor {
		return 0, last - cursor, nil
	}
	if _, err := tx.ExecContext(ctx,
		`UPDATE sink_cursors SET delivered_seq = $2, dropped = dropped + $3 WHERE sink = $1`,
		sink, to, to-cursor); err != nil {
		return 0, 0, fmt.Errorf("state: trim %s: %w", sink, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("state: trim %s: %w", sink, err)
	}
	return to - cursor, keep, nil
}

// Prune deletes the events that every registered sink is done with and
// that were recorded before olderThan. It returns how many it deleted.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM outbox WHERE created_ms < $1 AND seq <= COALESCE(
		   (SELECT MIN(delivered_seq) FROM sink_cursors),
		   (SELECT last_seq FROM outbox_seq WHERE id = 1))`,
		olderThan.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("state: prune: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (s *Store) seqOf(ctx context.Context, id string) (int64, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx, `SELECT seq FROM outbox WHERE id = $1`, id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("no event %s in the outbox", id)
	}
	return seq, err
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
