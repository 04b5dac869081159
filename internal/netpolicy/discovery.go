package netpolicy

import (
	"context"
	"log/slog"
	"time"
)

// Address discovery shared by the sources that look their answer up
// somewhere (DNSAddress, AWSAddress): they look it up once at start-up,
// where a failure stops the server with a clear message, and then keep it
// fresh from a background loop. PassiveAddr never waits on a lookup: it
// answers from the last good result, so a slow resolver or metadata
// service cannot stall a PASV reply.

// DefaultRefresh is how often DNSAddress and AWSAddress look their answer
// up again when no period is configured.
const DefaultRefresh = 5 * time.Minute

// refreshLoop calls refresh every period until ctx ends. A failed refresh
// leaves the source's last good answer in place; the first failure of a
// streak is logged as a warning and the recovery as info, so an outage
// that lasts a day writes two lines, not one per period. refresh itself
// logs changes of the answer, which only it can describe.
func refreshLoop(ctx context.Context, period time.Duration, logger *slog.Logger, source string,
	refresh func(context.Context) error) {
	t := time.NewTicker(period)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := refresh(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return // shutting down; not worth a warning
		case err != nil && !failing:
			failing = true
			logger.Warn("passive address refresh failed; keeping the last good address",
				"source", source, "error", err)
		case err != nil:
			logger.Debug("passive address refresh still failing", "source", source, "error", err)
		case failing:
			failing = false
			logger.Info("passive address refresh recovered", "source", source)
		}
	}
}

// orDiscard returns l, or a logger that drops everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
