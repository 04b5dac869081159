// Package pgdb is cloudftpd's PostgreSQL database: connecting to it from
// the config ([auth.postgres]) and creating and migrating its schema, a
// set of goose migrations embedded in the binary. `cloudftpd db migrate`
// runs them; the server never changes the schema itself, so a node of an
// older version cannot migrate under a newer one's feet.
//
// Migrations hold a PostgreSQL session advisory lock while they run, so
// several nodes may run `db migrate` at once (a deployment that migrates
// on every instance's start): one applies them, the others wait for the
// lock and then find nothing to do.
package pgdb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/cloudftpd/cloudftpd/internal/config"
)

//go:embed migrations/*.sql
var migrations embed.FS

// VersionTable is goose's bookkeeping table: named for cloudftpd, so that
// a database shared with another goose user keeps the two apart.
const VersionTable = "cloudftpd_schema_version"

// lockID is the advisory lock key migrations take ("cloudftpd" in
// ASCII, as a number), different from goose's default so that another
// goose user of the same database does not wait on cloudftpd's.
const lockID int64 = 0x636c6f7564667470

// Options say how to reach the database.
type Options struct {
	// DSN is a libpq connection string or URL; PG* environment variables
	// and ~/.pgpass fill in what it leaves out, as for psql.
	DSN string
	// PasswordFile, when set, holds the password on its first line; it
	// wins over one in the DSN, the environment or ~/.pgpass.
	PasswordFile string
	// Timeout bounds connecting (unless the DSN sets connect_timeout);
	// 0 means 5s.
	Timeout time.Duration
}

// OptionsFrom returns the [auth.postgres] options of cfg, the password
// file resolved against the config's directory.
func OptionsFrom(cfg *config.Config) Options {
	p := cfg.Auth.Postgres
	o := Options{DSN: p.DSN, Timeout: p.QueryTimeout()}
	if p.PasswordFile != "" {
		o.PasswordFile = cfg.Path(p.PasswordFile)
	}
	return o
}

// Open returns a connection pool for o. It does not connect: the first
// use does, so a server can start (and report the database down) while
// the database is unreachable.
func Open(o Options) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		// pgx's message quotes the DSN, password and all.
		return nil, errors.New("pgdb: the DSN does not parse (want \"postgres://user@host/db\" or \"host=... dbname=...\")")
	}
	if o.PasswordFile != "" {
		b, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("pgdb: password_file: %w", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		pc.ConnConfig.Password = strings.TrimSuffix(pw, "\r")
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = o.Timeout
		if o.Timeout <= 0 {
			pc.ConnConfig.ConnectTimeout = 5 * time.Second
		}
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("pgdb: %w", err)
	}
	return pool, nil
}

// Migrate brings the schema of the database behind pool to the newest
// version this binary knows, under the migration lock, and returns the
// migrations it applied (none when the schema was current).
func Migrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) ([]string, error) {
	p, db, err := provider(pool, logger)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgdb: migrate: %w", err)
	}
	var applied []string
	for _, r := range res {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

// SchemaVersion returns the version the database's schema is at (0 for
// an empty database) and the newest this binary knows.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (current, newest int64, err error) {
	p, db, err := provider(pool, nil)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	if current, newest, err = p.GetVersions(ctx); err != nil {
		return 0, 0, fmt.Errorf("pgdb: %w", err)
	}
	return current, newest, nil
}

func provider(pool *pgxpool.Pool, logger *slog.Logger) (*goose.Provider, interface{ Close() error }, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, nil, err
	}
	// Try for the lock every second for up to five minutes: a migration
	// another node runs is short, and a node stuck holding the lock loses
	// it when its connection ends.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, nil, fmt.Errorf("pgdb: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker), goose.WithTableName(VersionTable)}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, opts...)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("pgdb: migrations: %w", err)
	}
	return p, db, nil
}
