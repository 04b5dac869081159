package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/pgbans"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
)

// banClient is what `cloudftpd ban` works on: a running server's control
// socket (control.Client), or with --db the bans the nodes share in
// PostgreSQL.
type banClient interface {
	ListBans(ctx context.Context) ([]defender.Ban, error)
	Ban(ctx context.Context, p netip.Prefix, d time.Duration, reason string) (defender.Ban, error)
	Unban(ctx context.Context, p netip.Prefix) error
}

// dbBans are the shared bans, changed as a node changes them: refused
// inside the config's allow list, escalated by its ban times. The nodes
// learn of a change through the database's notification.
type dbBans struct {
	store *pgbans.Store
	d     *defender.Defender // the config's [defender], for its lists and times
	close func()
}

// openDBBans opens the database of the config (--config, or
// ./cloudftpd.toml), which must keep the users, and so the bans, in
// PostgreSQL.
func openDBBans(configFlag string) (*dbBans, error) {
	path := configPath(configFlag)
	if path == "" {
		return nil, usageError{"--db: no config to find the database in (--config FILE, or ./cloudftpd.toml)"}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if cfg.Auth.Store != config.StorePostgres {
		return nil, fmt.Errorf("--db: %s keeps no bans in a database (only auth.store = \"postgres\" does)", cfg.File)
	}
	dc := &cfg.Defender
	d, err := defender.New(defender.Config{
		Threshold: dc.Threshold, Window: dc.Window.D(), BanTime: dc.BanTime.D(), MaxBanTime: dc.MaxBanTime.D(),
		Allow: dc.AllowPrefixes(), Deny: dc.DenyPrefixes(),
	})
	if err != nil {
		return nil, err
	}
	pool, err := pgdb.Open(pgdb.OptionsFrom(cfg))
	if err != nil {
		d.Close()
		return nil, err
	}
	host, _ := os.Hostname()
	return &dbBans{store: pgbans.NewStore(pool, host), d: d, close: func() { pool.Close(); d.Close() }}, nil
}

func (b *dbBans) ListBans(ctx context.Context) ([]defender.Ban, error) { return b.store.List(ctx) }

func (b *dbBans) Ban(ctx context.Context, p netip.Prefix, dur time.Duration, reason string) (defender.Ban, error) {
	key, err := b.d.CheckBan(p, dur)
	if err != nil {
		return defender.Ban{}, err
	}
	return b.store.Ban(ctx, key, dur, reason, b.d.Limits())
}

func (b *dbBans) Unban(ctx context.Context, p netip.Prefix) error { return b.store.Unban(ctx, p) }

// errDBAndSocket: --db and --socket name two different things.
var errDBAndSocket = errors.New("--db and --socket: choose one")
