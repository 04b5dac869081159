package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/ftp"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgquota"
	"github.com/cloudftpd/cloudftpd/internal/pgusers"
	"github.com/cloudftpd/cloudftpd/internal/quota"
	"github.com/cloudftpd/cloudftpd/internal/state"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// startQuotas builds the quota keeper. It opens nothing: the state store
// is opened at the first use of a quota (a server whose users have none
// never creates it). With auth.store = "postgres" usage is in the
// database instead, shared with the other nodes (internal/pgquota).
func (s *Server) startQuotas(cfg *config.Config) {
	if cfg.Auth.Store == config.StorePostgres {
		s.quotas = quota.New(quota.Options{Logger: s.logger, Shared: pgShared{s: s, node: pgquota.NodeName()}})
		return
	}
	dir := cfg.Events.StateDir // the state database's directory
	s.quotas = quota.New(quota.Options{
		Logger: s.logger,
		Open: func(ctx context.Context) (quota.Store, error) {
			return s.quotaStore(ctx, dir)
		},
	})
}

// pgShared is quota usage in the database of the committed wiring
// (auth.store = "postgres"), under one node name for the server's life.
// The pool is looked up at each use: the wiring builds it after the
// keeper, and a reload may replace it.
type pgShared struct {
	s    *Server
	node string
}

var _ quota.Shared = pgShared{}

var errNoQuotaDB = errors.New(`quota usage is kept in PostgreSQL, and the running config no longer has auth.store = "postgres": restart the server`)

func (p pgShared) ledger() (*pgquota.Ledger, error) {
	p.s.mu.Lock()
	w := p.s.wiring
	p.s.mu.Unlock()
	if w == nil || w.pgPool == nil {
		return nil, errNoQuotaDB
	}
	return pgquota.New(w.pgPool, pgquota.Options{Node: p.node}), nil
}

func (p pgShared) UsageOf(ctx context.Context, user string) (state.Usage, bool, error) {
	l, err := p.ledger()
	if err != nil {
		return state.Usage{}, false, err
	}
	return l.UsageOf(ctx, user)
}

func (p pgShared) SetUsage(ctx context.Context, user string, u quota.Usage, scanned time.Time, replace bool) (state.Usage, error) {
	l, err := p.ledger()
	if err != nil {
		return state.Usage{}, err
	}
	return l.SetUsage(ctx, user, u, scanned, replace)
}

func (p pgShared) Exchange(ctx context.Context, user string, x quota.Exchange) (quota.Granted, error) {
	l, err := p.ledger()
	if err != nil {
		return quota.Granted{}, err
	}
	return l.Exchange(ctx, user, x)
}

func (p pgShared) Renew(ctx context.Context) error {
	l, err := p.ledger()
	if err != nil {
		return err
	}
	return l.Renew(ctx)
}

func (p pgShared) ReleaseAll(ctx context.Context) error {
	l, err := p.ledger()
	if err != nil {
		return err
	}
	return l.ReleaseAll(ctx)
}

// quotaStore returns the state store for quota usage: the events' one
// when it is open, else one opened now (closed with it by closeEvents).
// A server without a state directory (a config built in code) keeps
// usage in memory: nil, nil.
func (s *Server) quotaStore(ctx context.Context, dir string) (quota.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		return s.store, nil
	}
	if dir == "" {
		return nil, nil
	}
	st, err := state.Open(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("server.state_dir: %w", err)
	}
	s.store = st
	return st, nil
}

// closeQuotas writes the usage out, once no session can change it.
func (s *Server) closeQuotas() {
	if s.quotas == nil {
		return
	}
	if err := s.quotas.Close(); err != nil {
		s.logger.Error("quota", "err", err)
	}
}

// quotaKeeper is a quota.Keeper as the sessions' ftp.QuotaKeeper.
type quotaKeeper struct{ k *quota.Keeper }

func (q quotaKeeper) Quota(ctx context.Context, u *auth.User, fs storage.Storage) (ftp.Quota, error) {
	l := u.Limits
	if u.Anonymous || (l.QuotaBytes <= 0 && l.QuotaFiles <= 0) {
		return nil, nil
	}
	t, err := q.k.Tracker(ctx, u.Name, quota.Limits{Bytes: l.QuotaBytes, Files: l.QuotaFiles}, fs)
	if err != nil {
		return nil, err
	}
	return quotaTracker{t}, nil
}

// quotaTracker is a quota.Tracker as an ftp.Quota.
type quotaTracker struct{ *quota.Tracker }

func (q quotaTracker) Upload(ctx context.Context, old, base int64, inPlace bool) (ftp.QuotaUpload, error) {
	u, err := q.Tracker.Upload(ctx, quota.UploadSpec{Old: old, Base: base, InPlace: inPlace})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// controlService is what the control socket controls: the defender's
// bans (503 when it is disabled) and the quotas.
type controlService struct{ s *Server }

var (
	_ control.Service      = controlService{}
	_ control.QuotaService = controlService{}
)

var errNoDefender = fmt.Errorf("the defender is disabled ([defender] enabled = false): %w", control.ErrUnavailable)

func (c controlService) Bans(ctx context.Context) ([]defender.Ban, error) {
	if c.s.defender == nil {
		return nil, nil
	}
	return c.s.bans().Bans(ctx)
}

func (c controlService) Ban(ctx context.Context, p netip.Prefix, d time.Duration, reason string) (defender.Ban, error) {
	if c.s.defender == nil {
		return defender.Ban{}, errNoDefender
	}
	return c.s.bans().Ban(ctx, p, d, reason)
}

func (c controlService) Unban(ctx context.Context, p netip.Prefix) error {
	if c.s.defender == nil {
		return errNoDefender
	}
	return c.s.bans().Unban(ctx, p)
}

func (c controlService) QuotaUsage(context.Context) ([]control.QuotaUsage, error) {
	var out []control.QuotaUsage
	for _, st := range c.s.quotas.Statuses() {
		if st.Known {
			out = append(out, usageJSON(st))
		}
	}
	return out, nil
}

func (c controlService) ScanQuota(ctx context.Context, user string) (control.QuotaUsage, error) {
	return c.s.ScanQuota(ctx, user)
}

// ScanQuota walks user's tree again (`cloudftpd quota scan` with the
// server running) and makes the result the usage in force: sessions
// see it at once, and it is written to the state store before this
// returns.
func (s *Server) ScanQuota(ctx context.Context, user string) (control.QuotaUsage, error) {
	s.mu.Lock()
	w := s.wiring
	s.mu.Unlock()
	e, err := findUser(ctx, w.Users, w.pgPool, user)
	if err != nil {
		return control.QuotaUsage{}, err
	}
	limits, err := e.LimitsEntry.Parse()
	if err != nil {
		return control.QuotaUsage{}, err // validated when loaded: not expected
	}
	tree, err := w.Storage.Home(ctx, e.HomeDir())
	if err != nil {
		return control.QuotaUsage{}, fmt.Errorf("quota: %s's home: %w", user, err)
	}
	defer tree.Close()
	st, err := s.quotas.Rescan(ctx, user, quota.Limits{Bytes: limits.QuotaBytes, Files: limits.QuotaFiles}, tree)
	if err != nil {
		return control.QuotaUsage{}, err
	}
	if err := s.quotas.Flush(ctx); err != nil {
		s.logger.Error("quota: writing the scanned usage", "user", user, "err", err)
	}
	return usageJSON(st), nil
}

func usageJSON(st quota.Status) control.QuotaUsage {
	u := control.QuotaUsage{
		User: st.User, Bytes: st.Used.Bytes, Files: st.Used.Files,
		QuotaBytes: st.Limits.Bytes, QuotaFiles: st.Limits.Files,
		ReservedBytes: st.Reserved.Bytes, ReservedFiles: st.Reserved.Files,
	}
	if !st.Scanned.IsZero() {
		t := st.Scanned.UTC()
		u.Scanned = &t
	}
	return u
}

// findUser returns the entry of user in the users file uf, or in the
// database of pool when there is one (auth.store = "postgres").
func findUser(ctx context.Context, uf *auth.UsersFile, pool *pgxpool.Pool, user string) (*auth.UserEntry, error) {
	if pool != nil {
		e, err := pgusers.NewStore(pool).Get(ctx, user)
		if err != nil {
			return nil, err
		}
		if e == nil {
			return nil, fmt.Errorf("%w %q in the database", control.ErrUnknownUser, user)
		}
		return e, nil
	}
	e := uf.Find(user)
	if e == nil {
		return nil, fmt.Errorf("%w %q in the users file", control.ErrUnknownUser, user)
	}
	return e, nil
}

// ErrNoStateDir is returned by ScanQuotaOffline for a config without a
// state directory: there is nowhere to keep the figure.
var ErrNoStateDir = errors.New("the config has no server.state_dir to keep quota usage in")

// ScanQuotaOffline is `cloudftpd quota scan` with the server stopped: it
// walks user's tree in the config's storage and writes the result to the
// state store, where the next start finds it; with auth.store =
// "postgres", to the database, where every node uses it at once.
func ScanQuotaOffline(ctx context.Context, cfg *config.Config, user string, logger *slog.Logger) (control.QuotaUsage, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Auth.Store == config.StorePostgres {
		return scanQuotaDB(ctx, cfg, user, logger)
	}
	if cfg.Events.StateDir == "" {
		return control.QuotaUsage{}, ErrNoStateDir
	}
	if cfg.Auth.UsersFilePolicy() == config.PolicyOff {
		return control.QuotaUsage{}, fmt.Errorf("%w %q: the config has no users file", control.ErrUnknownUser, user)
	}
	uf, err := auth.LoadUsersFile(cfg.Path(cfg.Auth.UsersFile))
	if err != nil {
		return control.QuotaUsage{}, err
	}
	e := uf.Find(user)
	if e == nil {
		return control.QuotaUsage{}, fmt.Errorf("%w %q in %s", control.ErrUnknownUser, user, cfg.Path(cfg.Auth.UsersFile))
	}
	limits, err := e.LimitsEntry.Parse()
	if err != nil {
		return control.QuotaUsage{}, err
	}
	b, err := newBackend(ctx, cfg, cfg.Storage, logger)
	if err != nil {
		return control.QuotaUsage{}, fmt.Errorf("storage: %w", err)
	}
	if c, ok := b.(interface{ Close() error }); ok {
		defer c.Close()
	}
	tree, err := b.Home(ctx, e.HomeDir())
	if err != nil {
		return control.QuotaUsage{}, fmt.Errorf("quota: %s's home: %w", user, err)
	}
	defer tree.Close()

	st, err := state.Open(ctx, cfg.Events.StateDir)
	if err != nil {
		return control.QuotaUsage{}, err
	}
	defer st.Close()
	// A short server run of its own: claim the usage (which marks every
	// row stale if the last server crashed), scan, write, release.
	k := quota.New(quota.Options{Logger: logger, Open: func(context.Context) (quota.Store, error) { return st, nil }})
	res, err := k.Rescan(ctx, user, quota.Limits{Bytes: limits.QuotaBytes, Files: limits.QuotaFiles}, tree)
	if cerr := k.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return control.QuotaUsage{}, err
	}
	return usageJSON(res), nil
}

// scanQuotaDB is ScanQuotaOffline for usage in PostgreSQL: the user and
// the usage are both in the database.
func scanQuotaDB(ctx context.Context, cfg *config.Config, user string, logger *slog.Logger) (control.QuotaUsage, error) {
	pool, err := pgdb.Open(pgdb.OptionsFrom(cfg))
	if err != nil {
		return control.QuotaUsage{}, err
	}
	defer pool.Close()
	e, err := findUser(ctx, nil, pool, user)
	if err != nil {
		return control.QuotaUsage{}, err
	}
	tree, closeTree, err := homeTree(ctx, cfg, e, logger)
	if err != nil {
		return control.QuotaUsage{}, err
	}
	defer closeTree()
	limits, err := e.LimitsEntry.Parse()
	if err != nil {
		return control.QuotaUsage{}, err
	}
	k := quota.New(quota.Options{Logger: logger, Shared: pgquota.New(pool, pgquota.Options{})})
	res, err := k.Rescan(ctx, user, quota.Limits{Bytes: limits.QuotaBytes, Files: limits.QuotaFiles}, tree)
	if cerr := k.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return control.QuotaUsage{}, err
	}
	return usageJSON(res), nil
}

// homeTree opens the home of e in the config's storage; closeTree
// closes it and the backend.
func homeTree(ctx context.Context, cfg *config.Config, e *auth.UserEntry, logger *slog.Logger) (storage.Storage, func(), error) {
	b, err := newBackend(ctx, cfg, cfg.Storage, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("storage: %w", err)
	}
	closeBackend := func() {
		if c, ok := b.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	tree, err := b.Home(ctx, e.HomeDir())
	if err != nil {
		closeBackend()
		return nil, nil, fmt.Errorf("quota: %s's home: %w", e.Name, err)
	}
	return tree, func() { tree.Close(); closeBackend() }, nil
}
