package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/server"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

// TestStateDirLocked starts a second server on the state directory of a
// running one: it is refused with the directory and the first one's pid
// (flock belongs to the open file, so two servers in one process conflict
// as two processes do; internal/state tests the latter), the first keeps
// serving, and once it has shut down the directory is free again.
func TestStateDirLocked(t *testing.T) {
	dir := t.TempDir()
	audit := t.TempDir() + "/audit.jsonl"
	share := func(c *config.Config) {
		c.Server.StateDir = dir
		c.Events.StateDir = ""
		c.Events.Sinks = []events.SinkConfig{{Name: "audit", Kind: events.KindAudit, Path: audit}}
	}
	first := startServer(t, share)

	cfg := cloneConfig(first.cfg)
	_, err := server.New(t.Context(), cfg, server.Options{})
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), "server.state_dir") ||
		!strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second server on the same state_dir: %v; want it refused naming the key, %s and pid %d", err, dir, os.Getpid())
	}

	rc := dialRaw(t, first.Addr)
	rc.login("alice", "alice-secret")
	rc.must(221, "QUIT")

	if err := first.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	again, err := server.New(t.Context(), cloneConfig(first.cfg), server.Options{})
	if err != nil {
		t.Fatalf("server on the state_dir after the first shut down: %v", err)
	}
	again.Close()
}

// TestEventsStateDirLocked: an outbox in a directory of its own
// (events.state_dir) is locked too.
func TestEventsStateDirLocked(t *testing.T) {
	outbox := t.TempDir()
	first := startServer(t, func(c *config.Config) {
		c.Server.StateDir = t.TempDir()
		c.Events.StateDir = outbox
		c.Events.Sinks = []events.SinkConfig{{Name: "audit", Kind: events.KindAudit, Path: t.TempDir() + "/audit.jsonl"}}
	})
	cfg := cloneConfig(first.cfg)
	cfg.Server.StateDir = t.TempDir()
	_, err := server.New(t.Context(), cfg, server.Options{})
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), "events.state_dir") || !strings.Contains(err.Error(), outbox) {
		t.Fatalf("second server on the same events.state_dir: %v", err)
	}
}
