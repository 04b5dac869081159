package pgusers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
)

// Channel is the LISTEN/NOTIFY channel the users table's trigger
// notifies on every change.
const Channel = "cloudftpd_users"

// Options configure an Authenticator.
type Options struct {
	// Anonymous and AnonymousHome are as in auth.Options: a user of the
	// database called "anonymous" or "ftp" wins over the anonymous login.
	Anonymous     bool
	AnonymousHome string
	// PollInterval is how often the change counter is read besides
	// LISTEN (default 5s). It also bounds how long a database that stops
	// answering without closing the connection goes unnoticed.
	PollInterval time.Duration
	// Timeout bounds each query and connection attempt (default 5s).
	Timeout time.Duration
	// Logger receives the database's comings and goings; nil discards.
	Logger *slog.Logger
}

// Authenticator logs in the users of the database. It serves logins from
// an in-memory copy of the users table, so a login costs no query and a
// flood of them cannot load the database; Start keeps the copy current:
// it LISTENs for the table's notifications and reloads on each one, and
// every PollInterval it also reads the table's change counter, in case a
// notification was lost with a connection.
//
// While the copy is not known to be current (before the first load, and
// from the moment the listening connection fails or a poll fails until
// the database answers again), logins fail with auth.ErrUnavailable: a
// node cut off from the database cannot tell a deleted user or a changed
// password, and says so (421) instead of guessing.
type Authenticator struct {
	pool     *pgxpool.Pool
	opts     Options
	log      *slog.Logger
	verifier *auth.Verifier

	snap atomic.Pointer[snapshot]
	// up is whether snap is known to be current.
	up atomic.Bool
	// reloads counts snapshot loads, for tests.
	reloads atomic.Int64

	startOnce sync.Once
	stop      context.CancelFunc
	done      chan struct{}
}

type snapshot struct {
	version int64
	users   map[string]record
}

type record struct {
	hash string
	user auth.User
}

var (
	_ auth.Authenticator = (*Authenticator)(nil)
	_ auth.Lister        = (*Authenticator)(nil)
)

// NewAuthenticator returns an Authenticator over pool (which stays the
// caller's). It knows no users until Start has loaded them.
func NewAuthenticator(pool *pgxpool.Pool, opts Options) *Authenticator {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{pool: pool, opts: opts, log: log, verifier: auth.NewVerifier(log), done: make(chan struct{})}
	a.snap.Store(&snapshot{version: -1})
	return a
}

// Start runs the loop that keeps the users current until ctx ends or
// Close is called; calls after the first do nothing.
func (a *Authenticator) Start(ctx context.Context) {
	a.startOnce.Do(func() {
		ctx, a.stop = context.WithCancel(ctx)
		go func() {
			defer close(a.done)
			a.run(ctx)
		}()
	})
}

// Close stops the loop started by Start and waits for it.
func (a *Authenticator) Close() error {
	started := false
	a.startOnce.Do(func() {}) // no Start after Close
	if a.stop != nil {
		a.stop()
		started = true
	}
	if started {
		<-a.done
	}
	return nil
}

// Authenticate implements auth.Authenticator with FileAuthenticator's
// semantics: auth.ErrUnknownUser after the work of a real verification,
// auth.ErrBadCredentials for a wrong password; and auth.ErrUnavailable
// while the database is out of reach.
func (a *Authenticator) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	if !a.up.Load() {
		return nil, fmt.Errorf("%w: the user database is not reachable", auth.ErrUnavailable)
	}
	rec, ok := a.snap.Load().users[name]
	if !ok {
		if a.opts.Anonymous {
			if u := auth.AnonymousUser(name, a.opts.AnonymousHome); u != nil {
				return u, nil
			}
		}
		return nil, a.verifier.Unknown(ctx, password)
	}
	if err := a.verifier.Check(ctx, name, rec.hash, password); err != nil {
		return nil, err
	}
	u := rec.user
	return &u, nil
}

// ControlTLSPolicy returns the user's tls ("required", "optional" or "")
// for the decision at USER, from the in-memory copy.
func (a *Authenticator) ControlTLSPolicy(name string) string {
	return a.snap.Load().users[name].user.TLS
}

// ListUsers implements auth.Lister from the in-memory copy, sorted by
// name; while the database is out of reach it fails, so that work on
// stale limits (retention) waits.
func (a *Authenticator) ListUsers(ctx context.Context) ([]auth.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !a.up.Load() {
		return nil, fmt.Errorf("%w: the user database is not reachable", auth.ErrUnavailable)
	}
	users := a.snap.Load().users
	out := make([]auth.User, 0, len(users))
	for _, r := range users {
		out = append(out, r.user)
	}
	slices.SortFunc(out, func(x, y auth.User) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// Ready reports whether the users are known to be current.
func (a *Authenticator) Ready() bool { return a.up.Load() }

// WaitReady waits until Ready or ctx ends, and reports Ready.
func (a *Authenticator) WaitReady(ctx context.Context) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !a.up.Load() {
		select {
		case <-ctx.Done():
			return a.up.Load()
		case <-t.C:
		}
	}
	return true
}

// run keeps a listening session going (pgdb.Follower): it loads the
// users when the session starts and again on each notification, and
// polls the change counter when none comes for PollInterval.
func (a *Authenticator) run(ctx context.Context) {
	f := pgdb.Follower{
		Pool:             a.pool,
		Channel:          Channel,
		Timeout:          a.opts.Timeout,
		PollInterval:     a.opts.PollInterval,
		Log:              a.log,
		Up:               &a.up,
		Unavailable:      "user database unavailable: logins are refused with 421 until it answers again",
		StillUnavailable: "user database still unavailable",
		Load:             a.load,
		// Notifications that came with this one (a burst of edits) are
		// all answered by the one load.
		Notified: func(ctx context.Context, conn *pgx.Conn, _ string) error { return a.load(ctx, conn) },
		Poll:     a.poll,
	}
	f.Run(ctx)
}

// poll reads the change counter, and the users when it moved (no
// notification told of the change).
func (a *Authenticator) poll(ctx context.Context, conn *pgx.Conn) error {
	v, err := a.version(ctx, conn)
	if err != nil {
		return err
	}
	if v != a.snap.Load().version {
		a.log.Warn("users changed without a notification; reloaded from the poll", "version", v)
		if err := a.load(ctx, conn); err != nil {
			return err
		}
	}
	a.markUp()
	return nil
}

func (a *Authenticator) version(ctx context.Context, conn *pgx.Conn) (int64, error) {
	qctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	var v int64
	if err := conn.QueryRow(qctx, `SELECT version FROM cloudftpd_users_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("polling for changes: %w", wrap(err))
	}
	return v, nil
}

// load reads the whole users table and its change counter in one
// snapshot of the database and swaps it in. A row that does not
// validate is left out with an error in the log (that user cannot log
// in), so that one bad row does not lock everyone out.
func (a *Authenticator) load(ctx context.Context, conn *pgx.Conn) error {
	qctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	snap := &snapshot{users: map[string]record{}}
	err := pgx.BeginTxFunc(qctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(qctx, `SELECT version FROM cloudftpd_users_version`).Scan(&snap.version); err != nil {
			return err
		}
		rows, err := tx.Query(qctx, selectUsers)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				var bad *badRow
				if errors.As(err, &bad) {
					a.log.Error("user left out: its row in cloudftpd_users is invalid", "user", bad.name, "err", bad.err)
					continue
				}
				return err
			}
			u, err := auth.EntryUser(&e)
			if err != nil {
				a.log.Error("user left out: its row in cloudftpd_users is invalid", "user", e.Name, "err", err)
				continue
			}
			snap.users[e.Name] = record{hash: e.PasswordHash, user: u}
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("loading users: %w", wrap(err))
	}
	old := a.snap.Swap(snap)
	a.reloads.Add(1)
	if old.version != snap.version {
		a.log.Info("users loaded from the database", "users", len(snap.users), "version", snap.version)
	}
	a.markUp()
	return nil
}

func (a *Authenticator) markUp() {
	if !a.up.Swap(true) && a.reloads.Load() > 1 {
		a.log.Info("user database reachable again: logins accepted")
	}
}
