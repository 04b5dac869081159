// Package pgbans shares the defender's bans and scores between the nodes
// of a cluster through PostgreSQL (auth.store = "postgres"), in the
// tables cloudftpd_bans and cloudftpd_ban_scores that internal/pgdb's
// migrations create.
//
// Every node keeps deciding at accept from its own in-memory copy of the
// bans (internal/defender), so the check stays a map lookup and a node
// cut off from the database goes on defending itself. What this package
// adds:
//
//   - Store: the SQL. Bans with their prefix, reason, times, strikes and
//     node of origin; the points each prefix scored on all the nodes in a
//     sliding window; a ban made when those points reach the threshold,
//     once whichever nodes add to them at the same moment.
//   - Sync: the link between one node's defender and the Store. It is the
//     defender's [defender.Share]: the points it scores are sent in
//     batches (every FlushInterval), its bans at once; and it keeps the
//     defender's copy of the bans current, through LISTEN/NOTIFY (a
//     changed row is read again) and a poll of a change counter every
//     PollInterval (missed notifications, reconnections). Its Ban, Unban
//     and Bans are the control API's when the database is configured.
//
// Ended bans stay in the table, as in the defender's memory, until their
// strikes are forgotten (MaxBanTime after their end) so that the next ban
// of the prefix is longer on whichever node earns it; every node prunes
// what is older than that.
package pgbans

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/defender"
)

// Channel is the LISTEN/NOTIFY channel the bans table notifies on, with
// the changed prefix as the payload ("" for "read everything again").
const Channel = "cloudftpd_bans"

// Store reads and changes the shared bans and scores. It is safe for
// concurrent use.
type Store struct {
	pool *pgxpool.Pool
	node string
}

// NewStore returns a Store over pool (which stays the caller's) that
// signs the bans it makes with node.
func NewStore(pool *pgxpool.Pool, node string) *Store { return &Store{pool: pool, node: node} }

// querier is a pool, a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const banColumns = `prefix, reason, since, until, strikes, manual, node`

func scanBan(row pgx.Row) (defender.Ban, error) {
	var b defender.Ban
	var until *time.Time
	if err := row.Scan(&b.Prefix, &b.Reason, &b.Since, &until, &b.Strikes, &b.Manual, &b.Node); err != nil {
		return b, err
	}
	if until != nil {
		b.Until = *until
	}
	return b, nil
}

func collectBans(rows pgx.Rows, err error) ([]defender.Ban, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (defender.Ban, error) { return scanBan(r) })
}

// List returns the bans in force, sorted by prefix as the defender sorts
// them.
func (s *Store) List(ctx context.Context) ([]defender.Ban, error) {
	bans, err := collectBans(s.pool.Query(ctx, `SELECT `+banColumns+` FROM cloudftpd_bans WHERE until IS NULL OR until > now()`))
	if err != nil {
		return nil, wrap(err)
	}
	sortBans(bans)
	return bans, nil
}

// Get returns the ban of p, in force or remembered, or nil when there is
// none.
func (s *Store) Get(ctx context.Context, p netip.Prefix) (*defender.Ban, error) {
	return get(ctx, s.pool, p)
}

func get(ctx context.Context, q querier, p netip.Prefix) (*defender.Ban, error) {
	b, err := scanBan(q.QueryRow(ctx, `SELECT `+banColumns+` FROM cloudftpd_bans WHERE prefix = $1 AND (forget IS NULL OR forget > now())`, p))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(err)
	}
	return &b, nil
}

// snapshot reads the change counter and every ban in force or
// remembered, as of one moment.
func snapshot(ctx context.Context, conn *pgx.Conn) (int64, []defender.Ban, error) {
	var version int64
	var bans []defender.Ban
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT version FROM cloudftpd_bans_version`).Scan(&version); err != nil {
			return err
		}
		var err error
		bans, err = collectBans(tx.Query(ctx, `SELECT `+banColumns+` FROM cloudftpd_bans WHERE forget IS NULL OR forget > now()`))
		return err
	})
	if err != nil {
		return 0, nil, wrap(err)
	}
	return version, bans, nil
}

func version(ctx context.Context, q querier) (int64, error) {
	var v int64
	if err := q.QueryRow(ctx, `SELECT version FROM cloudftpd_bans_version`).Scan(&v); err != nil {
		return 0, wrap(err)
	}
	return v, nil
}

// Durations travel as microseconds: $n * interval '1 microsecond'.
func micros(d time.Duration) int64 { return d.Microseconds() }

// banSQL inserts or renews the bans of the prefixes $1 (cidr[]; taken
// in order, so that two statements lock their rows in one order) with the reasons
// $2, manual $3, by node $4. $5 is the length in microseconds: 0 for the
// escalated ban time (ban_time $6 doubled for each remembered strike, at
// most max_ban_time $7), -1 for a ban until lifted. With $8 set, a prefix
// already banned is left alone: that is what makes an automatic ban
// happen once however many nodes reach the threshold at the same moment.
var banSQL = func() string {
	const us = `* interval '1 microsecond'`
	until := func(strikes string) string {
		return `(CASE WHEN $5::bigint < 0 THEN NULL
			WHEN $5::bigint > 0 THEN now() + $5::bigint ` + us + `
			ELSE now() + least($7::bigint::float8, $6::bigint::float8 * power(2, least(` + strikes + ` - 1, 30))) ` + us + ` END)`
	}
	strikes := `(CASE WHEN b.forget IS NULL OR b.forget > now() THEN b.strikes + 1 ELSE 1 END)`
	return `INSERT INTO cloudftpd_bans AS b (prefix, reason, since, until, forget, strikes, manual, node)
		SELECT t.prefix, t.reason, now(), ` + until("1") + `, ` + until("1") + ` + $7::bigint ` + us + `, 1, $3, $4
		FROM unnest($1::cidr[], $2::text[]) AS t(prefix, reason) ORDER BY t.prefix
		ON CONFLICT (prefix) DO UPDATE SET
			reason = EXCLUDED.reason, since = EXCLUDED.since, manual = EXCLUDED.manual, node = EXCLUDED.node,
			strikes = ` + strikes + `,
			until = ` + until(strikes) + `,
			forget = ` + until(strikes) + ` + $7::bigint ` + us + `
		WHERE NOT $8 OR (b.until IS NOT NULL AND b.until <= now())
		RETURNING ` + banColumns
}()

// banArgs are banSQL's arguments.
type banArgs struct {
	prefixes   []netip.Prefix
	reasons    []string
	manual     bool
	dur        time.Duration // 0: escalated; defender.Forever
	lim        defender.Limits
	onlyIfFree bool
}

func (s *Store) ban(ctx context.Context, q querier, a banArgs) ([]defender.Ban, error) {
	dur := micros(a.dur)
	if a.dur == defender.Forever {
		dur = -1
	}
	return collectBans(q.Query(ctx, banSQL, a.prefixes, a.reasons, a.manual, s.node, dur,
		micros(a.lim.BanTime), micros(a.lim.MaxBanTime), a.onlyIfFree))
}

// Ban bans p (canonical) by hand for dur (0: the escalated ban time,
// defender.Forever: until Unban), replacing its ban if it has one, as
// [defender.Defender.Ban] does, and returns the ban.
func (s *Store) Ban(ctx context.Context, p netip.Prefix, dur time.Duration, reason string, lim defender.Limits) (defender.Ban, error) {
	bans, err := s.ban(ctx, s.pool, banArgs{prefixes: []netip.Prefix{p}, reasons: []string{reason}, manual: true, dur: dur, lim: lim})
	if err != nil {
		return defender.Ban{}, wrap(err)
	}
	if len(bans) != 1 {
		return defender.Ban{}, fmt.Errorf("pgbans: ban of %s: no row returned", p)
	}
	return bans[0], nil
}

// Publish writes a ban a node's defender made by itself, under the
// node's limits, and returns the ban the database holds for its prefix
// afterwards. An automatic ban is written only when the prefix is not
// banned already (another node may have banned it a moment before, or by
// hand for longer), and its length is escalated from the strikes the
// database remembers, which may be more than the node knew. A ban by hand
// replaces the prefix's ban, for the length the node gave it.
func (s *Store) Publish(ctx context.Context, b defender.Ban, lim defender.Limits) (defender.Ban, error) {
	a := banArgs{prefixes: []netip.Prefix{b.Prefix}, reasons: []string{b.Reason}, manual: b.Manual, lim: lim, onlyIfFree: !b.Manual}
	switch {
	case !b.Manual:
		a.dur = 0
	case b.Until.IsZero():
		a.dur = defender.Forever
	default:
		a.dur = max(b.Until.Sub(b.Since), time.Microsecond)
	}
	bans, err := s.ban(ctx, s.pool, a)
	if err != nil {
		return b, wrap(err)
	}
	if len(bans) == 1 {
		return bans[0], nil
	}
	// Banned already: that ban stands.
	got, err := s.Get(ctx, b.Prefix)
	if err != nil {
		return b, err
	}
	if got == nil {
		return b, fmt.Errorf("pgbans: ban of %s: neither written nor found", b.Prefix)
	}
	return *got, nil
}

// Unban lifts the ban of p (canonical) and forgets its strikes and score.
// It returns an error wrapping defender.ErrNotBanned when p has no ban in
// force of its own, naming the wider ban covering it if there is one.
func (s *Store) Unban(ctx context.Context, p netip.Prefix) error {
	var active bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The score row first, as AddScores locks them: two transactions
		// never wait for each other's rows.
		if _, err := tx.Exec(ctx, `DELETE FROM cloudftpd_ban_scores WHERE prefix = $1`, p); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `WITH d AS (DELETE FROM cloudftpd_bans WHERE prefix = $1 RETURNING until)
			SELECT count(*) > 0 FROM d WHERE until IS NULL OR until > now()`, p).Scan(&active)
	})
	if err != nil {
		return wrap(err)
	}
	if active {
		return nil
	}
	var wider netip.Prefix
	err = s.pool.QueryRow(ctx, `SELECT prefix FROM cloudftpd_bans WHERE prefix >> $1 AND (until IS NULL OR until > now())
		ORDER BY masklen(prefix) DESC LIMIT 1`, p).Scan(&wider)
	switch {
	case err == nil:
		return fmt.Errorf("pgbans: %s has no ban of its own but is covered by the ban of %s: %w", p, wider, defender.ErrNotBanned)
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("pgbans: %s: %w", p, defender.ErrNotBanned)
	default:
		return wrap(err)
	}
}

// Score is points a node scored against a prefix since its last batch.
type Score struct {
	Prefix netip.Prefix
	Points int
}

// scoresSQL adds the points $2 to the prefixes $1 (taken in order: rows
// locked in one order), from node $3, and returns each prefix's points within the
// window ($4 microseconds) on all the nodes, and how many nodes scored
// them. Points older than the window are dropped as new ones come.
const scoresSQL = `INSERT INTO cloudftpd_ban_scores AS s (prefix, scores, updated)
	SELECT t.prefix, jsonb_build_array(jsonb_build_object('at', now(), 'node', $3::text, 'points', t.points)), now()
	FROM unnest($1::cidr[], $2::int[]) AS t(prefix, points) ORDER BY t.prefix
	ON CONFLICT (prefix) DO UPDATE SET
		scores = coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(s.scores) AS e
			WHERE (e->>'at')::timestamptz > now() - $4::bigint * interval '1 microsecond'), '[]'::jsonb) || EXCLUDED.scores,
		updated = now()
	RETURNING s.prefix,
		(SELECT coalesce(sum((e->>'points')::int), 0) FROM jsonb_array_elements(s.scores) AS e)::int,
		(SELECT count(DISTINCT e->>'node') FROM jsonb_array_elements(s.scores) AS e)::int`

// AddScores adds a node's batch of points and bans, under lim, every
// prefix whose points on all the nodes within the window reach the
// threshold, unless it is banned already. It returns the bans it made.
// Nodes adding to the same prefix at once wait for each other on its row,
// so each sees the points of the others, and only one of them bans.
func (s *Store) AddScores(ctx context.Context, scores []Score, lim defender.Limits) ([]defender.Ban, error) {
	if len(scores) == 0 {
		return nil, nil
	}
	prefixes := make([]netip.Prefix, len(scores))
	points := make([]int32, len(scores))
	for i, sc := range scores {
		prefixes[i], points[i] = sc.Prefix, int32(min(sc.Points, 1<<30))
	}
	var made []defender.Ban
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, scoresSQL, prefixes, points, s.node, micros(lim.Window))
		if err != nil {
			return err
		}
		var over []netip.Prefix
		var reasons []string
		var p netip.Prefix
		var total, nodes int
		_, err = pgx.ForEachRow(rows, []any{&p, &total, &nodes}, func() error {
			if total >= lim.Threshold {
				over = append(over, p)
				reasons = append(reasons, reason(total, lim.Window, nodes))
			}
			return nil
		})
		if err != nil || len(over) == 0 {
			return err
		}
		// banSQL orders the rows itself.
		if made, err = s.ban(ctx, tx, banArgs{prefixes: over, reasons: reasons, lim: lim, onlyIfFree: true}); err != nil {
			return err
		}
		// The points that made the bans are spent; a prefix banned
		// already keeps scoring nothing (the nodes do not score it).
		_, err = tx.Exec(ctx, `DELETE FROM cloudftpd_ban_scores WHERE prefix = ANY($1::cidr[])`, over)
		return err
	})
	if err != nil {
		return nil, wrap(err)
	}
	return made, nil
}

// reason is an automatic ban's reason, like the defender's own: "10
// points in 5m0s on 2 nodes".
func reason(points int, window time.Duration, nodes int) string {
	if nodes == 1 {
		return fmt.Sprintf("%d points in %v on 1 node", points, window)
	}
	return fmt.Sprintf("%d points in %v on %d nodes", points, window, nodes)
}

// Prune deletes the bans whose strikes are forgotten and the scores with
// no point left in the window, and reports how many rows went. Rows that
// another statement holds are skipped (the next prune takes them), so a
// prune never waits for a node's batch nor makes one wait.
func (s *Store) Prune(ctx context.Context, window time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM cloudftpd_bans WHERE prefix IN
		(SELECT prefix FROM cloudftpd_bans WHERE forget <= now() FOR UPDATE SKIP LOCKED)`)
	if err != nil {
		return 0, wrap(err)
	}
	n := tag.RowsAffected()
	if tag, err = s.pool.Exec(ctx, `DELETE FROM cloudftpd_ban_scores WHERE prefix IN
		(SELECT prefix FROM cloudftpd_ban_scores WHERE updated <= now() - $1::bigint * interval '1 microsecond' FOR UPDATE SKIP LOCKED)`, micros(window)); err != nil {
		return n, wrap(err)
	}
	return n + tag.RowsAffected(), nil
}

func sortBans(bans []defender.Ban) {
	slices.SortFunc(bans, func(a, b defender.Ban) int { return comparePrefix(a.Prefix, b.Prefix) })
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// wrap adds what an operator needs to a database error: a missing table
// means the schema was never migrated.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return fmt.Errorf("pgbans: the database has no bans table (run \"cloudftpd db migrate\"): %w", err)
	}
	if strings.HasPrefix(err.Error(), "pgbans: ") {
		return err
	}
	return fmt.Errorf("pgbans: %w", err)
}
