// Package pgquota keeps quota usage in PostgreSQL, shared by every node
// of a cluster (auth.store = "postgres"), in the tables cloudftpd_quota_usage
// and cloudftpd_quota_leases that internal/pgdb's migrations create.
//
// It offers Ledger, a quota.Shared: each user's committed usage, changed
// by deltas, and the leases of room each node holds for the uploads it
// runs. Every change of a user's figures takes the lock of the user's
// usage row, so that two nodes asking for room at once are served one
// after the other and together never get more than the quota leaves:
//
//	used + the leases of every node <= quota
//
// A node spends its lease without a round trip (see quota.MinSlab and
// quota.MaxSlab for the sizes it asks for), gives back what no upload
// holds when an upload ends, and renews its leases while it runs. The
// leases of a node that stopped renewing (it died, or lost the database)
// expire after Options.LeaseTTL and are ignored and deleted by the next
// exchange for the user: their room is free again.
//
// What a dead node committed but had not written yet is not in the
// usage; `cloudftpd quota scan` computes it again. The window is small:
// a node writes each commit as the upload's reply waits for it.
package pgquota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/quota"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

// DefaultLeaseTTL is Options.LeaseTTL when unset: six renewals
// (quota.DefaultLeaseRenew) may fail before a node's room is given to
// others.
const DefaultLeaseTTL = time.Minute

// Options configure a Ledger.
type Options struct {
	// Node names this server in the lease rows; it must differ between
	// the processes sharing the database (default: host name, process
	// id and a random suffix).
	Node string
	// LeaseTTL is how long a lease lives without renewal (default
	// DefaultLeaseTTL). It must be well over the keeper's renewal
	// interval.
	LeaseTTL time.Duration
}

// Ledger is quota usage in PostgreSQL, as a quota.Shared. It is safe for
// concurrent use.
type Ledger struct {
	pool *pgxpool.Pool
	node string
	ttl  time.Duration
}

var _ quota.Shared = (*Ledger)(nil)

// New returns a Ledger over pool, which stays the caller's. It connects
// at its first use.
func New(pool *pgxpool.Pool, opts Options) *Ledger {
	if opts.Node == "" {
		opts.Node = NodeName()
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	return &Ledger{pool: pool, node: opts.Node, ttl: opts.LeaseTTL}
}

// Node is the name of this server in the lease rows.
func (l *Ledger) Node() string { return l.node }

// NodeName is a name for this process in the lease rows, unique among
// the nodes: host name, process id and a random suffix.
func NodeName() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// retry runs f again while it fails before sending anything to the
// server: after the database restarted, the pool's idle connections are
// dead and each fails once ("conn closed"), which must not fail an
// upload. A failure after a statement was sent is not retried: a delta
// whose commit may have happened is never applied twice.
func (l *Ledger) retry(ctx context.Context, f func() error) error {
	tries := int(l.pool.Config().MaxConns) + 1
	for {
		err := f()
		tries--
		if err == nil || tries == 0 || !pgconn.SafeToRetry(err) || ctx.Err() != nil {
			return err
		}
	}
}

// ttlMillis is the lease lifetime as the SQL's milliseconds.
func (l *Ledger) ttlMillis() int64 { return l.ttl.Milliseconds() }

const selectUsage = `SELECT user_name, bytes, files, scanned_at, updated_at FROM cloudftpd_quota_usage`

func scanUsage(row pgx.Row) (state.Usage, error) {
	var u state.Usage
	var scanned *time.Time
	if err := row.Scan(&u.User, &u.Bytes, &u.Files, &scanned, &u.Updated); err != nil {
		return state.Usage{}, err
	}
	if scanned != nil {
		u.Scanned = *scanned
	}
	return u, nil
}

// UsageOf returns user's committed usage; ok is false when none is
// recorded.
func (l *Ledger) UsageOf(ctx context.Context, user string) (state.Usage, bool, error) {
	var u state.Usage
	err := l.retry(ctx, func() (err error) {
		u, err = scanUsage(l.pool.QueryRow(ctx, selectUsage+` WHERE user_name = $1`, user))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return state.Usage{}, false, nil
	}
	if err != nil {
		return state.Usage{}, false, fmt.Errorf("pgquota: usage of %s: %w", user, err)
	}
	return u, true, nil
}

// AllUsage returns every user's committed usage, sorted by user, for
// `cloudftpd user list`.
func (l *Ledger) AllUsage(ctx context.Context) ([]state.Usage, error) {
	var out []state.Usage
	err := l.retry(ctx, func() error {
		rows, err := l.pool.Query(ctx, selectUsage+` ORDER BY user_name`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (state.Usage, error) { return scanUsage(r) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pgquota: usage: %w", err)
	}
	return out, nil
}

// SetUsage records a scan's result as user's committed usage: always
// with replace, else only when none is recorded. It returns the figure in
// force.
func (l *Ledger) SetUsage(ctx context.Context, user string, u quota.Usage, scanned time.Time, replace bool) (state.Usage, error) {
	q := `INSERT INTO cloudftpd_quota_usage AS q (user_name, bytes, files, scanned_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_name) DO `
	if replace {
		q += `UPDATE SET bytes = excluded.bytes, files = excluded.files, scanned_at = excluded.scanned_at, updated_at = now()`
	} else {
		// A no-op update rather than DO NOTHING, so that RETURNING gives
		// the row in force.
		q += `UPDATE SET user_name = q.user_name`
	}
	q += ` RETURNING user_name, bytes, files, scanned_at, updated_at`
	var row state.Usage
	err := l.retry(ctx, func() (err error) {
		row, err = scanUsage(l.pool.QueryRow(ctx, q, user, max(0, u.Bytes), max(0, u.Files), scanned))
		return err
	})
	if err != nil {
		return state.Usage{}, fmt.Errorf("pgquota: set usage of %s: %w", user, err)
	}
	return row, nil
}

// Exchange applies x.Delta to user's usage and sets this node's lease
// to x.Hold grown towards x.Ask, in one transaction under the lock of
// the user's usage row.
func (l *Ledger) Exchange(ctx context.Context, user string, x quota.Exchange) (quota.Granted, error) {
	var g quota.Granted
	err := l.retry(ctx, func() error { return l.exchange(ctx, user, x, &g) })
	if err != nil {
		return quota.Granted{}, fmt.Errorf("pgquota: usage of %s: %w", user, err)
	}
	return g, nil
}

func (l *Ledger) exchange(ctx context.Context, user string, x quota.Exchange, g *quota.Granted) error {
	*g = quota.Granted{}
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		// The upsert takes the row lock that orders every exchange of
		// the user, from any node.
		err := tx.QueryRow(ctx, `INSERT INTO cloudftpd_quota_usage AS q (user_name, bytes, files) VALUES ($1, GREATEST(0, $2::bigint), GREATEST(0, $3::bigint))
			ON CONFLICT (user_name) DO UPDATE SET bytes = GREATEST(0, q.bytes + $2), files = GREATEST(0, q.files + $3),
				updated_at = CASE WHEN $2 = 0 AND $3 = 0 THEN q.updated_at ELSE now() END
			RETURNING bytes, files`, user, x.Delta.Bytes, x.Delta.Files).Scan(&g.Used.Bytes, &g.Used.Files)
		if err != nil {
			return err
		}
		// Leases of nodes that stopped renewing them: their room is free.
		if _, err := tx.Exec(ctx, `DELETE FROM cloudftpd_quota_leases WHERE user_name = $1 AND expires_at <= now()`, user); err != nil {
			return err
		}
		var own quota.Usage
		var ownLive bool
		err = tx.QueryRow(ctx, `SELECT
				coalesce(sum(bytes) FILTER (WHERE node <> $2), 0), coalesce(sum(files) FILTER (WHERE node <> $2), 0),
				coalesce(sum(bytes) FILTER (WHERE node = $2), 0), coalesce(sum(files) FILTER (WHERE node = $2), 0),
				count(*) FILTER (WHERE node = $2) > 0
			FROM cloudftpd_quota_leases WHERE user_name = $1`, user, l.node).
			Scan(&g.Others.Bytes, &g.Others.Files, &own.Bytes, &own.Files, &ownLive)
		if err != nil {
			return err
		}
		g.Lease = quota.Usage{
			Bytes: grant(x.Limits.Bytes, g.Used.Bytes, g.Others.Bytes, own.Bytes, ownLive, x.Hold.Bytes, x.Need.Bytes, x.Ask.Bytes),
			Files: grant(x.Limits.Files, g.Used.Files, g.Others.Files, own.Files, ownLive, x.Hold.Files, x.Need.Files, x.Ask.Files),
		}
		if g.Lease == (quota.Usage{}) {
			_, err = tx.Exec(ctx, `DELETE FROM cloudftpd_quota_leases WHERE user_name = $1 AND node = $2`, user, l.node)
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO cloudftpd_quota_leases (user_name, node, bytes, files, expires_at)
			VALUES ($1, $2, $3, $4, now() + $5 * interval '1 millisecond')
			ON CONFLICT (user_name, node) DO UPDATE SET bytes = excluded.bytes, files = excluded.files, expires_at = excluded.expires_at`,
			user, l.node, g.Lease.Bytes, g.Lease.Files, l.ttlMillis())
		return err
	})
}

// grant is the lease a node gets in one dimension (bytes or files) of a
// quota of limit: what it holds, and of what the others leave free at
// least need (when it fits) and up to ask, but no more than an eighth of
// the free room when that is less than ask, so that near the limit one
// node's slab does not refuse another's uploads that would have fitted.
// A node whose lease had expired holds only what is still free.
func grant(limit, used, others, own int64, ownLive bool, hold, need, ask int64) int64 {
	if limit <= 0 {
		return 0 // no bound: nothing to lease
	}
	room := limit - used - others
	if ownLive {
		hold = min(hold, own)
	} else {
		hold = min(hold, max(0, room))
	}
	hold = max(0, hold)
	free := room - hold
	if ask <= 0 || free <= 0 {
		return hold
	}
	return hold + min(free, max(need, min(ask, free/8)))
}

// Renew extends every lease of this node by the lease lifetime.
func (l *Ledger) Renew(ctx context.Context) error {
	if err := l.retry(ctx, func() error {
		_, err := l.pool.Exec(ctx, `UPDATE cloudftpd_quota_leases SET expires_at = now() + $2 * interval '1 millisecond' WHERE node = $1`,
			l.node, l.ttlMillis())
		return err
	}); err != nil {
		return fmt.Errorf("pgquota: renew leases: %w", err)
	}
	return nil
}

// ReleaseAll gives back every lease of this node.
func (l *Ledger) ReleaseAll(ctx context.Context) error {
	if err := l.retry(ctx, func() error {
		_, err := l.pool.Exec(ctx, `DELETE FROM cloudftpd_quota_leases WHERE node = $1`, l.node)
		return err
	}); err != nil {
		return fmt.Errorf("pgquota: release leases: %w", err)
	}
	return nil
}
