package server

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
	"github.com/cloudftpd/cloudftpd/internal/metrics"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgoutbox"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

// lockState takes the state directories for this process (New, before
// anything in them is read): the server's, and the outbox's when the
// config puts it elsewhere. Two servers on one directory would deliver
// every event twice and overwrite each other's bans; the second is
// refused with the directory and the first one's pid.
func (s *Server) lockState(cfg *config.Config) error {
	dirs := []struct{ key, dir string }{{"server.state_dir", cfg.StatePath(".")}}
	if len(cfg.Events.Sinks) > 0 && !cfg.SharedOutbox() {
		dirs = append(dirs, struct{ key, dir string }{"events.state_dir", cfg.Events.StateDir})
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		if d.dir == "" {
			continue
		}
		abs, err := filepath.Abs(d.dir)
		if err != nil {
			s.unlockState()
			return fmt.Errorf("server: %s: %w", d.key, err)
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		l, err := state.LockDir(abs)
		if err != nil {
			s.unlockState()
			return fmt.Errorf("server: %s: %w", d.key, err)
		}
		s.locks = append(s.locks, l)
	}
	return nil
}

// unlockState releases the state directories, last thing at the end.
func (s *Server) unlockState() {
	for _, l := range s.locks {
		l.Close()
	}
	s.locks = nil
}

// openEvents opens the outbox and builds the dispatcher when the config
// has sinks (New: files are opened, nothing runs yet). Without sinks
// sessions record nothing: there is nobody to tell. The outbox is the
// state directory's SQLite database, or with auth.store = "postgres" (and
// events.outbox "auto" or "postgres") the tables every node shares.
func (s *Server) openEvents(ctx context.Context, cfg *config.Config) error {
	if len(cfg.Events.Sinks) == 0 {
		return nil
	}
	var outbox delivery.Outbox
	if cfg.SharedOutbox() {
		ob, err := s.openSharedOutbox(ctx, cfg)
		if err != nil {
			return fmt.Errorf("server: events.outbox: %w", err)
		}
		outbox = ob
	} else {
		st, err := state.Open(ctx, cfg.Events.StateDir)
		if err != nil {
			return fmt.Errorf("server: events.state_dir: %w", err)
		}
		s.store, outbox = st, st
	}
	d, err := delivery.New(ctx, outbox, cfg.Events, delivery.Options{Logger: s.logger})
	if err != nil {
		s.closeOutbox()
		return fmt.Errorf("server: %w", err)
	}
	s.events = d
	if s.metrics != nil {
		registerEventMetrics(s.metrics, d)
	}
	return nil
}

// registerEventMetrics puts the dispatcher's per-sink counters on
// /metrics, labelled by sink name and kind, read at scrape time.
func registerEventMetrics(m *metrics.Metrics, d *delivery.Dispatcher) {
	labels := []string{"sink", "kind"}
	family := func(f func(delivery.SinkStats) float64) func() []metrics.Sample {
		return func() []metrics.Sample {
			stats := d.Stats()
			out := make([]metrics.Sample, len(stats))
			for i, st := range stats {
				out[i] = metrics.Sample{Labels: []string{st.Name, string(st.Kind)}, Value: f(st)}
			}
			return out
		}
	}
	for _, c := range []struct {
		name, help string
		read       func(delivery.SinkStats) float64
	}{
		{"cloudftpd_events_queued_total", "Recorded events that pass the sink's filter.", func(st delivery.SinkStats) float64 { return float64(st.Queued) }},
		{"cloudftpd_events_delivered_total", "Events the sink delivered (a command hook: ran, whatever its exit status).", func(st delivery.SinkStats) float64 { return float64(st.Delivered) }},
		{"cloudftpd_events_retried_total", "Failed delivery attempts that will be tried again.", func(st delivery.SinkStats) float64 { return float64(st.Retried) }},
		{"cloudftpd_events_failed_total", "Command hooks that ran and failed (non-zero exit, killed at the timeout); not retried.", func(st delivery.SinkStats) float64 { return float64(st.Failed) }},
		{"cloudftpd_events_dropped_total", "Outbox events skipped because the sink's backlog passed max_backlog.", func(st delivery.SinkStats) float64 { return float64(st.Dropped) }},
	} {
		m.CounterFamily(c.name, c.help, labels, family(c.read))
	}
	m.GaugeFamily("cloudftpd_events_backlog", "Events after the sink's position in the outbox, when it last looked.", labels,
		family(func(st delivery.SinkStats) float64 { return float64(st.Backlog) }))
}

// runEvents starts the delivery loops; they end with ctx.
func (s *Server) runEvents(ctx context.Context) {
	if s.events == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.mu.Lock()
	s.eventsStop, s.eventsDone = cancel, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		if err := s.events.Run(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("events: delivery stopped", "err", err)
		}
	}()
}

// closeEvents stops delivery once no session can record any more, and
// closes the outbox. What was recorded and not delivered waits there for
// the next start.
func (s *Server) closeEvents() {
	s.mu.Lock()
	stop, done := s.eventsStop, s.eventsDone
	s.eventsStop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	if s.events != nil {
		s.events.Close()
		s.events = nil
	}
	s.closeOutbox()
}

// openSharedOutbox opens the PostgreSQL outbox on a pool of its own: the
// wiring's pool (the user store's) is replaced by a reload that changes
// [auth.postgres] and released before the dispatcher's last writes at
// shutdown, while the outbox lives as long as the server.
func (s *Server) openSharedOutbox(ctx context.Context, cfg *config.Config) (*pgoutbox.Store, error) {
	pool, err := pgdb.Open(pgdb.OptionsFrom(cfg))
	if err != nil {
		return nil, err
	}
	ob, err := pgoutbox.Open(ctx, pool, pgoutbox.Options{Lease: cfg.Events.Lease, Logger: s.logger})
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.logger.Info("events: the outbox is in PostgreSQL, shared with the other nodes", "node", ob.Node(), "lease", cfg.Events.Lease)
	s.sharedOutbox, s.outboxPool = ob, pool
	return ob, nil
}

// closeOutbox closes whichever outbox is open: the shared one hands its
// sinks to the other nodes. The SQLite store may also be the quotas'
// (quotaStore), which are closed by then.
func (s *Server) closeOutbox() {
	if s.sharedOutbox != nil {
		if err := s.sharedOutbox.Close(); err != nil {
			s.logger.Warn("events", "err", err)
		}
		s.outboxPool.Close()
		s.sharedOutbox, s.outboxPool = nil, nil
	}
	if s.store != nil {
		s.store.Close()
		s.store = nil
	}
}

// ReopenLogs reopens the event sinks' files (SIGUSR1, SIGHUP), for
// logrotate.
func (s *Server) ReopenLogs() error {
	if s.events == nil {
		return nil
	}
	return s.events.Reopen()
}
