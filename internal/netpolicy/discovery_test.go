package netpolicy

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// discLog captures a logger's text output for assertions; safe for the
// refresh goroutine and the test to use at once.
type discLog struct{ clienttest.LogBuffer }

// count reports how many log lines contain every one of parts.
func (l *discLog) count(parts ...string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

func newDiscLog() (*discLog, *slog.Logger) {
	l := &discLog{}
	return l, slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// discWait polls cond until it holds, failing the test after five seconds.
func discWait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// discRun starts run in a goroutine and stops it, waiting for it to
// return, when the test ends.
func discRun(t testing.TB, run func(context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func TestRefreshLoopLogsOncePerFailureStreak(t *testing.T) {
	logs, logger := newDiscLog()
	var calls atomic.Int32
	var failing atomic.Bool
	failing.Store(true)
	discRun(t, func(ctx context.Context) {
		refreshLoop(ctx, time.Millisecond, logger, "test-source", func(context.Context) error {
			calls.Add(1)
			if failing.Load() {
				return errors.New("boom")
			}
			return nil
		})
	})
	discWait(t, "several failed refreshes", func() bool { return calls.Load() >= 5 })
	if n := logs.count("level=WARN", "test-source", "boom"); n != 1 {
		t.Errorf("%d warnings for one failure streak, want 1:\n%s", n, logs)
	}
	failing.Store(false)
	discWait(t, "recovery logged", func() bool { return logs.count("level=INFO", "recovered", "test-source") == 1 })
	failing.Store(true)
	discWait(t, "second streak logged", func() bool { return logs.count("level=WARN", "boom") == 2 })
	before := calls.Load()
	discWait(t, "more refreshes", func() bool { return calls.Load() >= before+3 })
	if n := logs.count("level=WARN"); n != 2 {
		t.Errorf("%d warnings for two failure streaks, want 2:\n%s", n, logs)
	}
	if n := logs.count("level=INFO", "recovered"); n != 1 {
		t.Errorf("%d recoveries logged, want 1:\n%s", n, logs)
	}
}

func TestRefreshLoopStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		refreshLoop(ctx, time.Hour, slog.New(slog.DiscardHandler), "x", func(context.Context) error {
			t.Error("refresh ran before its period")
			return nil
		})
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("refreshLoop did not return after its context ended")
	}
}
