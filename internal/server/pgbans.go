package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/pgbans"
)

// The defender's bans and scores are shared through PostgreSQL when the
// users are there (auth.store = "postgres"): the defender keeps deciding
// at accept from its own copy, and a pgbans.Sync keeps that copy in step
// with the other nodes' and pools the points (README "Several nodes").

// syncBans starts sharing the defender's bans through w's database, or
// moves them to another database, or stops sharing them, as w's config
// says. Start calls it, and Reload after its commit: a reload that keeps
// the database keeps the Sync.
func (s *Server) syncBans(w *Wiring) {
	if s.defender == nil {
		return
	}
	s.banMu.Lock()
	defer s.banMu.Unlock()
	cur := s.banSync.Load()
	if cur != nil && s.banPool == w.pgPool {
		return
	}
	if cur != nil {
		s.defender.SetShare(nil)
		s.banSync.Store(nil)
		s.banPool = nil
		if err := cur.Close(); err != nil {
			s.logger.Warn("defender: the bans and scores of this node not yet shared are lost", "err", err)
		}
		s.logger.Info("defender: bans no longer shared with that database")
	}
	if w.pgPool == nil {
		return
	}
	pc := &w.Config.Auth.Postgres
	sy := pgbans.New(w.pgPool, s.defender, pgbans.Options{
		Node:         s.opts.Node,
		PollInterval: pc.PollEvery(),
		Timeout:      pc.QueryTimeout(),
		Logger:       s.logger,
	})
	s.defender.SetShare(sy)
	s.mu.Lock()
	bg := s.bg
	s.mu.Unlock()
	sy.Start(bg)
	s.banSync.Store(sy)
	s.banPool = w.pgPool
	s.logger.Info("defender: bans and scores shared through PostgreSQL", "node", sy.Node())
}

// awaitBans gives the shared bans the time of one query to be read at
// start-up, so that a node whose database is up refuses the bans of the
// others from its first connection (its state file has its own).
func (s *Server) awaitBans(ctx context.Context, w *Wiring) {
	sy := s.banSync.Load()
	if sy == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, w.Config.Auth.Postgres.QueryTimeout())
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !sy.Ready() {
		select {
		case <-ctx.Done():
			s.logger.Warn("ban database not reachable at start-up: this node starts with its own bans and learns the others' when it answers")
			return
		case <-t.C:
		}
	}
}

// stopBans stops sharing, sending what waits: before the database's pool
// is closed.
func (s *Server) stopBans() {
	s.banMu.Lock()
	defer s.banMu.Unlock()
	if sy := s.banSync.Swap(nil); sy != nil {
		s.defender.SetShare(nil)
		s.banPool = nil
		if err := sy.Close(); err != nil {
			s.logger.Warn("defender: the bans and scores of this node not yet shared are lost", "err", err)
		}
	}
}

// bans is what the control socket and the API change: the shared bans
// when there are, the defender's own otherwise.
func (s *Server) bans() control.Service {
	if sy := s.banSync.Load(); sy != nil {
		return sharedBans{sy, s}
	}
	return control.Local(s.defender)
}

// sharedBans are the bans in the database, for the control API. An
// error of the database is logged and answered 503, without its text.
type sharedBans struct {
	sy *pgbans.Sync
	s  *Server
}

func (b sharedBans) Bans(ctx context.Context) ([]defender.Ban, error) {
	bans, err := b.sy.Bans(ctx)
	return bans, b.unavailable(err)
}

func (b sharedBans) Ban(ctx context.Context, p netip.Prefix, d time.Duration, reason string) (defender.Ban, error) {
	ban, err := b.sy.Ban(ctx, p, d, reason)
	return ban, b.unavailable(err)
}

func (b sharedBans) Unban(ctx context.Context, p netip.Prefix) error {
	return b.unavailable(b.sy.Unban(ctx, p))
}

var errBanDatabase = fmt.Errorf("the ban database is not reachable (see the server's log): %w", control.ErrUnavailable)

func (b sharedBans) unavailable(err error) error {
	if err == nil || errors.Is(err, defender.ErrNotBanned) || errors.Is(err, defender.ErrAllowed) {
		return err
	}
	b.s.logger.Error("defender: ban database", "err", err)
	return errBanDatabase
}
