package server

import (
	"context"
	"fmt"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

// openEvents opens the outbox and builds the dispatcher when the config
// has sinks (New: files are opened, nothing runs yet). Without sinks
// sessions record nothing: there is nobody to tell.
func (s *Server) openEvents(ctx context.Context, cfg *config.Config) error {
	if len(cfg.Events.Sinks) == 0 {
		return nil
	}
	st, err := state.Open(ctx, cfg.Events.StateDir)
	if err != nil {
		return fmt.Errorf("server: events.state_dir: %w", err)
	}
	d, err := delivery.New(ctx, st, cfg.Events, delivery.Options{Logger: s.logger})
	if err != nil {
		st.Close()
		return fmt.Errorf("server: %w", err)
	}
	s.store, s.events = st, d
	return nil
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
