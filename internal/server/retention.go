package server

import (
	"context"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/retention"
)

// newRetention builds the retention sweep (New: nothing runs yet), after
// the events, which it records deletions to.
func (s *Server) newRetention() {
	sw := retention.New(retention.Options{
		Env:    s.retentionEnv,
		Events: s.hooks().events,
		Deleted: func(user string, size int64) {
			// The quota's usage follows, as for a DELE.
			if s.quotas != nil {
				if t := s.quotas.Lookup(user); t != nil {
					t.Removed(size)
				}
			}
		},
		Logger: s.logger,
		Now:    s.opts.Now,
	})
	s.sweeper = sw
	if s.metrics != nil {
		stat := func(f func(retention.Stats) uint64) func() float64 {
			return func() float64 { return float64(f(sw.Stats())) }
		}
		s.metrics.Counter("cloudftpd_retention_deleted_total", "Files deleted by the retention sweep.", stat(func(st retention.Stats) uint64 { return st.Deleted }))
		s.metrics.Counter("cloudftpd_retention_failed_total", "Files, directories or homes the retention sweep could not handle (logged).", stat(func(st retention.Stats) uint64 { return st.Failed }))
	}
}

// startRetention runs the retention sweep until ctx ends. It always runs:
// without retention rules in the users file a pass only lists the users.
// Each pass asks for the committed wiring, so a reload's users, storage
// and [retention] settings apply from the next pass on.
func (s *Server) startRetention(ctx context.Context) {
	done := make(chan struct{})
	s.mu.Lock()
	s.sweepDone = done
	s.mu.Unlock()
	go func() {
		defer close(done)
		s.sweeper.Run(ctx)
	}()
}

// retentionEnv is what the next retention pass works on.
func (s *Server) retentionEnv() retention.Env {
	s.mu.Lock()
	w := s.wiring
	s.mu.Unlock()
	env := retention.Env{
		Storage:     w.Storage,
		StorageName: w.Config.Storage.Backend,
		Interval:    w.Config.Retention.Interval.D(),
		MaxFiles:    w.Config.Retention.MaxFiles,
	}
	// A user store that cannot list its users (Options.Auth may be
	// anything) leaves the sweep with nobody to sweep for.
	if l, ok := w.Auth.(auth.Lister); ok {
		env.Users = l
	}
	return env
}

// waitRetention waits for the sweep to end after the background context
// was cancelled: a pass stops at the next file.
func (s *Server) waitRetention() {
	s.mu.Lock()
	done := s.sweepDone
	s.sweepDone = nil
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}
