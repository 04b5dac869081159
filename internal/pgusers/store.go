// Package pgusers keeps cloudftpd's users in PostgreSQL (auth.store =
// "postgres"), in the table cloudftpd_users that internal/pgdb's
// migrations create:
//
//   - Store reads and edits the users, for `cloudftpd user ...`;
//   - Authenticator logs them in, as auth.FileAuthenticator does for the
//     users file, from an in-memory copy of the table that every node
//     keeps current through LISTEN/NOTIFY and a poll of a change counter.
//
// A row holds the same fields as a users-file [[user]] table and is
// validated the same way (auth.UserEntry.Validate); the limits keys are
// one JSON object in the users file's key names.
package pgusers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// Errors of Store's edits.
var (
	ErrNoUser = errors.New("no such user")
	ErrExists = errors.New("user already exists")
)

// Store reads and edits the users table. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool, which stays the caller's.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const selectUsers = `SELECT name, password_hash, home, permissions, tls, tls_data, binary_only, limits::text FROM cloudftpd_users`

// scanEntry reads one row of selectUsers. A limits document that does
// not decode is an error naming the user; the fields are not validated
// (List shows rows as they are).
func scanEntry(row pgx.Row) (auth.UserEntry, error) {
	var e auth.UserEntry
	var limits string
	if err := row.Scan(&e.Name, &e.PasswordHash, &e.Home, &e.Permissions, &e.TLS, &e.TLSData, &e.BinaryOnly, &limits); err != nil {
		return e, err
	}
	if err := decodeLimits(limits, &e.LimitsEntry); err != nil {
		return e, &badRow{name: e.Name, err: fmt.Errorf("limits: %w", err)}
	}
	return e, nil
}

// badRow is a row that was read but does not make a user.
type badRow struct {
	name string
	err  error
}

func (e *badRow) Error() string { return fmt.Sprintf("user %q: %v", e.name, e.err) }
func (e *badRow) Unwrap() error { return e.err }

// decodeLimits reads a limits document strictly: a key cloudftpd does
// not know is an error, as in the users file, so that a typo cannot
// silently drop a limit.
func decodeLimits(doc string, into *auth.LimitsEntry) error {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

func encodeLimits(l auth.LimitsEntry) (string, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return "", err
	}
	if bytes.Equal(b, []byte("null")) {
		return "{}", nil
	}
	return string(b), nil
}

// List returns every user, sorted by name.
func (s *Store) List(ctx context.Context) ([]auth.UserEntry, error) {
	rows, err := s.pool.Query(ctx, selectUsers+` ORDER BY name`)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []auth.UserEntry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, e)
	}
	return out, wrap(rows.Err())
}

// Get returns the user called name, or nil when there is none.
func (s *Store) Get(ctx context.Context, name string) (*auth.UserEntry, error) {
	e, err := scanEntry(s.pool.QueryRow(ctx, selectUsers+` WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(err)
	}
	return &e, nil
}

// Add adds a user, validated as the users file would validate it; it
// fails with ErrExists when the name is taken.
func (s *Store) Add(ctx context.Context, e auth.UserEntry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("user %q: %w", e.Name, err)
	}
	limits, err := encodeLimits(e.LimitsEntry)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO cloudftpd_users (name, password_hash, home, permissions, tls, tls_data, binary_only, limits)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) ON CONFLICT (name) DO NOTHING`,
		e.Name, e.PasswordHash, e.Home, e.Permissions, e.TLS, e.TLSData, e.BinaryOnly, limits)
	if err != nil {
		return wrap(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %q", ErrExists, e.Name)
	}
	return nil
}

// SetPassword replaces a user's password hash.
func (s *Store) SetPassword(ctx context.Context, name, hash string) error {
	return s.update(ctx, name, func(e *auth.UserEntry) { e.PasswordHash = hash })
}

// SetLimits changes a user's limits in place: edit gets the limit keys.
// The result must validate, or nothing changes.
func (s *Store) SetLimits(ctx context.Context, name string, edit func(*auth.LimitsEntry)) error {
	return s.update(ctx, name, func(e *auth.UserEntry) { edit(&e.LimitsEntry) })
}

func (s *Store) update(ctx context.Context, name string, edit func(*auth.UserEntry)) error {
	return s.Update(ctx, name, func(e *auth.UserEntry) error { edit(e); return nil })
}

// Update edits a user in one transaction, the row locked, so that two
// edits of one user at once do not lose either. edit may change any
// field but the name, or return an error (returned as is) to change
// nothing; the result must validate.
func (s *Store) Update(ctx context.Context, name string, edit func(*auth.UserEntry) error) error {
	var editErr error
	err := wrap(pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		e, err := scanEntry(tx.QueryRow(ctx, selectUsers+` WHERE name = $1 FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", ErrNoUser, name)
		}
		if err != nil {
			return err
		}
		if editErr = edit(&e); editErr != nil {
			return editErr
		}
		if e.Name != name {
			editErr = fmt.Errorf("user %q: the name cannot be changed", name)
			return editErr
		}
		if err := e.Validate(); err != nil {
			return fmt.Errorf("user %q: %w", name, err)
		}
		limits, err := encodeLimits(e.LimitsEntry)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE cloudftpd_users SET password_hash = $2, home = $3, permissions = $4, tls = $5, tls_data = $6,
			binary_only = $7, limits = $8::jsonb WHERE name = $1`,
			name, e.PasswordHash, e.Home, e.Permissions, e.TLS, e.TLSData, e.BinaryOnly, limits)
		return err
	}))
	if editErr != nil {
		return editErr
	}
	return err
}

// Delete removes a user.
func (s *Store) Delete(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM cloudftpd_users WHERE name = $1`, name)
	if err != nil {
		return wrap(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %q", ErrNoUser, name)
	}
	return nil
}

// wrap adds what an operator needs to a database error: a missing table
// means the schema was never migrated.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
		return fmt.Errorf("pgusers: the database has no cloudftpd schema (run \"cloudftpd db migrate\"): %w", err)
	}
	if errors.Is(err, ErrNoUser) || errors.Is(err, ErrExists) {
		return err
	}
	return fmt.Errorf("pgusers: %w", err)
}
