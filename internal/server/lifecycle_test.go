package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
)

// TestGracefulShutdown checks that Shutdown closes idle sessions with 421
// at once, lets a running download finish, and refuses new connections.
func TestGracefulShutdown(t *testing.T) {
	ts := startServer(t, nil)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	ts.write("alice/big", payload)

	idle := dialRaw(t, ts.Addr)
	idle.login("bob", "bob-secret")

	busy := dialRaw(t, ts.Addr)
	busy.login("alice", "alice-secret")
	busy.must(200, "TYPE I")
	dc := busy.pasv()
	busy.must(150, "RETR big")
	// Read slowly at first so the transfer is surely running at shutdown.
	first := make([]byte, 4096)
	if _, err := io.ReadFull(dc, first); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ts.srv.Shutdown(ctx)
	}()
	idle.expect(421)
	rest, err := io.ReadAll(dc)
	if err != nil {
		t.Fatal(err)
	}
	dc.Close()
	if sha256.Sum256(append(first, rest...)) != sha256.Sum256(payload) {
		t.Fatal("download cut short by graceful shutdown")
	}
	busy.expect(226)
	busy.expect(421)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if c, err := net.DialTimeout("tcp", ts.Addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepting after Shutdown")
	}
}

// TestShutdownGraceExpires checks that a transfer that outlives the grace
// period is cut and its upload discarded.
func TestShutdownGraceExpires(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("alice/f", []byte("old"))
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	dc := rc.pasv()
	rc.must(150, "STOR f")
	dc.Write([]byte("partial new content"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err == nil {
		t.Error("Shutdown reported success although it cut a transfer")
	}
	dc.Close()
	if got := string(ts.read("alice/f")); got != "old" {
		t.Errorf("cut upload replaced the file: %q", got)
	}
}

// TestQuitDuringTransfer checks that QUIT waits for the running transfer.
func TestQuitDuringTransfer(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	dc := rc.pasv()
	rc.must(150, "STOR up")
	dc.Write([]byte("part one "))
	rc.tp.PrintfLine("QUIT")
	time.Sleep(100 * time.Millisecond)
	dc.Write([]byte("part two"))
	dc.Close()
	rc.expect(226)
	rc.expect(221)
	if got := string(ts.read("alice/up")); got != "part one part two" {
		t.Errorf("upload finished during QUIT stored %q", got)
	}
}

// TestStallTimeout checks that a transfer whose client stops reading is
// aborted after the stall timeout and the session goes on.
func TestStallTimeout(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Server.StallTimeout = config.Duration(300 * time.Millisecond)
	})
	ts.write("alice/big", bytes.Repeat([]byte("x"), 32<<20))
	ts.write("alice/keep", []byte("keep"))
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	dc := rc.pasv()
	rc.must(150, "RETR big")
	// Never read: the socket buffers fill and the server stalls.
	start := time.Now()
	msg := rc.expect(426)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stall detected after %v", d)
	}
	dc.Close()
	t.Logf("stalled download: %s", msg)

	// A silent uploader is cut too, and its upload is discarded.
	dc = rc.pasv()
	rc.must(150, "STOR keep")
	dc.Write([]byte("new"))
	rc.expect(426)
	dc.Close()
	if got := string(ts.read("alice/keep")); got != "keep" {
		t.Errorf("stalled upload replaced the file: %q", got)
	}
	rc.must(200, "NOOP")
	if !strings.Contains(ts.logs.String(), "result=failed") {
		t.Error("stalled transfers not logged as failed")
	}
}
