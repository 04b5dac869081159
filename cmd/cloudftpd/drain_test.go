package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// TestServeDrainThenGrace runs serve from a config file and stops it as
// SIGTERM does (its context ends): /healthz answers 503 while the
// listener still takes clients for drain_delay, and the grace for the
// running download counts from the end of the drain. The download needs
// about 3 s after the stop, more than shutdown_grace alone (2 s) but
// less than drain_delay + shutdown_grace: it completes only if the drain
// does not eat the grace.
func TestServeDrainThenGrace(t *testing.T) {
	dir := t.TempDir()
	addr, maddr := clienttest.FreeAddr(t), clienttest.FreeAddr(t)
	cfg := fmt.Sprintf(`
[server]
drain_delay = "2s"
shutdown_grace = "2s"

[[listener]]
address = %q
download_rate = "512KiB"

[storage]
root = "data"

[auth]
anonymous = true

[metrics]
address = %q
`, addr, maddr)
	path := filepath.Join(dir, "cloudftpd.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 3<<19) // 1.5 MiB: 3 s at 512 KiB/s
	rand.Read(payload)
	if err := os.MkdirAll(filepath.Join(dir, "data", "pub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "pub", "f.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	exit := make(chan int, 1)
	go func() { exit <- runServe(ctx, []string{"--config", path}, io.Discard, io.Discard) }()
	health := func() int {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + maddr + "/healthz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for deadline := time.Now().Add(10 * time.Second); health() != http.StatusOK; {
		if time.Now().After(deadline) {
			t.Fatal("/healthz never answered 200")
		}
		time.Sleep(20 * time.Millisecond)
	}

	c, err := ftp.Dial(addr, ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Login("anonymous", "test@example.com"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Retr("f.bin")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 4096)
	if _, err := io.ReadFull(r, first); err != nil {
		t.Fatal(err)
	}
	stop() // SIGTERM
	time.Sleep(300 * time.Millisecond)
	if got := health(); got != http.StatusServiceUnavailable {
		t.Errorf("/healthz during the drain: %d, want 503", got)
	}
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
		t.Errorf("the listener refused a client during the drain: %v", err)
	} else {
		nc.Close()
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("download cut: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("download not completed: %v", err)
	}
	if !bytes.Equal(append(first, rest...), payload) {
		t.Fatal("download corrupted")
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("serve exited %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
