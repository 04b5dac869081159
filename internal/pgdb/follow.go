package pgdb

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Follower keeps an in-memory copy of some tables current: it holds a
// LISTEN session on a connection of its own, reads everything when the
// session starts, answers each notification, and polls (a change
// counter, say) when none comes for PollInterval, in case a
// notification was lost with a connection. pgusers and pgbans both
// follow their tables this way; what differs between them is in the
// funcs.
type Follower struct {
	Pool    *pgxpool.Pool
	Channel string
	// ApplicationName, when set, names the session, so that an operator
	// (or a test) can find it in pg_stat_activity.
	ApplicationName string
	// Timeout bounds taking a connection and the LISTEN.
	Timeout time.Duration
	// PollInterval is how long to wait for a notification before Poll,
	// and the longest pause between sessions.
	PollInterval time.Duration
	Log          *slog.Logger
	// Up is cleared when a session ends; the funcs set it when the copy
	// is current again.
	Up *atomic.Bool
	// Unavailable is logged (Error) once when the database goes away,
	// StillUnavailable (Debug) on each failed retry after.
	Unavailable, StillUnavailable string

	// Listening, when set, is called once LISTEN is in place, before Load.
	Listening func()
	// Load reads everything.
	Load func(ctx context.Context, conn *pgx.Conn) error
	// Notified answers a notification.
	Notified func(ctx context.Context, conn *pgx.Conn, payload string) error
	// Poll checks for changes no notification told of.
	Poll func(ctx context.Context, conn *pgx.Conn) error
}

// Run keeps a listening session going until ctx ends, starting it again
// after a failure with a growing pause (200ms up to PollInterval).
func (f *Follower) Run(ctx context.Context) {
	reported := false
	Retry(ctx, f.PollInterval, f.listen, func(err error) bool {
		wasUp := f.Up.Swap(false)
		// One error line when the database goes away, not one per retry.
		if wasUp || !reported {
			f.Log.Error(f.Unavailable, "err", err)
			reported = true
		} else {
			f.Log.Debug(f.StillUnavailable, "err", err)
		}
		return wasUp
	})
}

// Retry runs session until ctx ends, again after each failure with a
// pause that grows from 200ms to maxPause. failed is told of each
// failure (not of ctx ending); when it returns true the pause starts
// over from 200ms (the session had been working).
func Retry(ctx context.Context, maxPause time.Duration, session func(context.Context) error, failed func(error) bool) {
	const firstPause = 200 * time.Millisecond
	pause := firstPause
	for {
		err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if failed(err) {
			pause = firstPause
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		pause = min(2*pause, maxPause)
	}
}

// Listen takes a connection of its own out of pool, names the session
// appName (when set, so that an operator or a test can find it in
// pg_stat_activity) and LISTENs on channel, each step within timeout.
// Its errors say which step failed ("connecting: ", "LISTEN: ").
// The connection does not go back to the pool: the caller closes it
// with the func returned.
func Listen(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration, channel, appName string) (*pgx.Conn, func(), error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	pc, err := pool.Acquire(actx)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("connecting: %w", err)
	}
	// The connection is LISTENing: it must not go back to the pool.
	conn := pc.Hijack()
	closeConn := func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if appName != "" {
		if _, err := conn.Exec(qctx, "SELECT set_config('application_name', $1, false)", appName); err != nil {
			closeConn()
			return nil, nil, fmt.Errorf("LISTEN: %w", err)
		}
	}
	if _, err := conn.Exec(qctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		closeConn()
		return nil, nil, fmt.Errorf("LISTEN: %w", err)
	}
	return conn, closeConn, nil
}

// listen LISTENs, loads everything and then follows the notifications,
// polling when none comes for PollInterval. It returns the error that
// ended it.
func (f *Follower) listen(ctx context.Context) error {
	conn, closeConn, err := Listen(ctx, f.Pool, f.Timeout, f.Channel, f.ApplicationName)
	if err != nil {
		return err
	}
	defer closeConn()
	if f.Listening != nil {
		f.Listening()
	}
	if err := f.Load(ctx, conn); err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, f.PollInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			if err := f.Notified(ctx, conn, n.Payload); err != nil {
				return err
			}
			continue
		case !pgconn.Timeout(err):
			return fmt.Errorf("waiting for changes: %w", err)
		}
		if err := f.Poll(ctx, conn); err != nil {
			return err
		}
	}
}
