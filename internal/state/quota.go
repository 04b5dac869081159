package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Usage is what one user stores, as the quota keeper last wrote it.
type Usage struct {
	User         string
	Bytes, Files int64
	// Stale is set when a server holding usage stopped without writing
	// it out (a crash): the figures may be off and must be recomputed.
	Stale bool
	// Scanned is when the figures were last computed by walking the
	// user's tree (zero: never); Updated is when they were last written.
	Scanned, Updated time.Time
}

// ClaimUsage is called by a server before it uses quota usage. If the
// previous holder never released it (it crashed, or was killed, after
// its last write), every row is marked stale first, and recovered is
// true. Then the usage is claimed until ReleaseUsage.
func (s *Store) ClaimUsage(ctx context.Context, now time.Time) (recovered bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("state: claim usage: %w", err)
	}
	defer tx.Rollback()
	var claimed int
	if err := tx.QueryRowContext(ctx, `SELECT claimed FROM quota_claim WHERE id = 1`).Scan(&claimed); err != nil {
		return false, fmt.Errorf("state: claim usage: %w", err)
	}
	if claimed != 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE quota_usage SET stale = 1`); err != nil {
			return false, fmt.Errorf("state: claim usage: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE quota_claim SET claimed = 1, claimed_ms = $1 WHERE id = 1`, now.UnixMilli()); err != nil {
		return false, fmt.Errorf("state: claim usage: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("state: claim usage: %w", err)
	}
	return claimed != 0, nil
}

// ReleaseUsage says that every change of usage has been written: the
// next ClaimUsage finds the rows as they are.
func (s *Store) ReleaseUsage(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE quota_claim SET claimed = 0 WHERE id = 1`); err != nil {
		return fmt.Errorf("state: release usage: %w", err)
	}
	return nil
}

// UsageOf returns user's row; ok is false when there is none.
func (s *Store) UsageOf(ctx context.Context, user string) (u Usage, ok bool, err error) {
	var stale int
	var scanned, updated int64
	err = s.db.QueryRowContext(ctx,
		`SELECT user_name, bytes, files, stale, scanned_ms, updated_ms FROM quota_usage WHERE user_name = $1`, user).
		Scan(&u.User, &u.Bytes, &u.Files, &stale, &scanned, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Usage{}, false, nil
	}
	if err != nil {
		return Usage{}, false, fmt.Errorf("state: usage of %s: %w", user, err)
	}
	u.Stale, u.Scanned, u.Updated = stale != 0, fromMillis(scanned), fromMillis(updated)
	return u, true, nil
}

// AllUsage returns every row, sorted by user.
func (s *Store) AllUsage(ctx context.Context) ([]Usage, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT user_name, bytes, files, stale, scanned_ms, updated_ms FROM quota_usage ORDER BY user_name`)
	if err != nil {
		return nil, fmt.Errorf("state: usage: %w", err)
	}
	defer rows.Close()
	var out []Usage
	for rows.Next() {
		var u Usage
		var stale int
		var scanned, updated int64
		if err := rows.Scan(&u.User, &u.Bytes, &u.Files, &stale, &scanned, &updated); err != nil {
			return nil, fmt.Errorf("state: usage: %w", err)
		}
		u.Stale, u.Scanned, u.Updated = stale != 0, fromMillis(scanned), fromMillis(updated)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: usage: %w", err)
	}
	return out, nil
}

// PutUsage writes rows in one transaction (one fsync), replacing each
// user's row. A zero Updated is written as now.
func (s *Store) PutUsage(ctx context.Context, rows []Usage, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state: put usage: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO quota_usage (user_name, bytes, files, stale, scanned_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6)
		 ON CONFLICT (user_name) DO UPDATE SET bytes = excluded.bytes, files = excluded.files, stale = excluded.stale,
		 scanned_ms = excluded.scanned_ms, updated_ms = excluded.updated_ms`)
	if err != nil {
		return fmt.Errorf("state: put usage: %w", err)
	}
	defer stmt.Close()
	for _, u := range rows {
		updated := u.Updated
		if updated.IsZero() {
			updated = now
		}
		stale := 0
		if u.Stale {
			stale = 1
		}
		var scanned int64
		if !u.Scanned.IsZero() {
			scanned = u.Scanned.UnixMilli()
		}
		if _, err := stmt.ExecContext(ctx, u.User, u.Bytes, u.Files, stale, scanned, updated.UnixMilli()); err != nil {
			return fmt.Errorf("state: put usage of %s: %w", u.User, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("state: put usage: %w", err)
	}
	return nil
}
