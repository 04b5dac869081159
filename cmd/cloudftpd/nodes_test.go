package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// testNode is one running server ("node"), possibly of a cluster sharing
// a database.
type testNode struct {
	addr string
	logs *clienttest.LogBuffer
	srv  *server.Server
}

// startNode runs the server of the config at cfgPath in-process until the
// test ends, logging to its logs.
func startNode(t *testing.T, cfgPath string) *testNode {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := &clienttest.LogBuffer{}
	srv, err := server.New(t.Context(), cfg, server.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &testNode{addr: srv.Addrs()[0].String(), logs: logs, srv: srv}
}

// dial logs in with jlaffaye/ftp, trying again for a few seconds while
// the node is still loading its users; the connection ends with the test.
func (n *testNode) dial(t *testing.T, user, pass string) *ftp.ServerConn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := ftp.Dial(n.addr, ftp.DialWithTimeout(10*time.Second))
		if err == nil {
			if err = c.Login(user, pass); err == nil {
				t.Cleanup(func() { c.Quit() })
				return c
			}
			c.Quit()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s cannot log in on %s: %v\n%s", user, n.addr, err, n.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// login logs in with jlaffaye/ftp and returns the error, or uploads and
// lists a file to show the session works.
func (n *testNode) login(t *testing.T, user, pass string) error {
	t.Helper()
	c, err := ftp.Dial(n.addr, ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer c.Quit()
	if err := c.Login(user, pass); err != nil {
		return err
	}
	if err := c.Stor("hello.txt", strings.NewReader("hi")); err != nil {
		t.Fatalf("stor after login: %v", err)
	}
	names, err := c.NameList("")
	if err != nil || len(names) != 1 {
		t.Fatalf("nlst: %v %v", names, err)
	}
	return nil
}

// pgNodeConfigs writes dir/cloudftpd1.toml ... cloudftpdN.toml, the
// configs of nodes sharing the database dsn and the storage dir/files
// (created): they differ only in their state directory and passive ports
// (one free range split between them: two ranges picked apart could
// overlap). timeout is auth.postgres.timeout; extra is appended (TOML
// sections after [auth.postgres]).
func pgNodeConfigs(t *testing.T, dir, dsn string, nodes int, timeout, extra string) []string {
	t.Helper()
	root := filepath.Join(dir, "files")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	const portsEach = 30
	var lo, hi int
	if _, err := fmt.Sscanf(clienttest.FreeRange(t, portsEach*nodes), "%d-%d", &lo, &hi); err != nil {
		t.Fatal(err)
	}
	var cfgs []string
	for i := range nodes {
		text := fmt.Sprintf(`
[server]
login_failure_delay = "10ms"
state_dir = "state-%d"

[[listener]]
address = "127.0.0.1:0"
passive_ports = "%d-%d"

[storage]
backend = "local"
root = %q

[auth]
store = "postgres"

[auth.postgres]
dsn = %q
poll_interval = "1s"
timeout = %q
`, i+1, lo+portsEach*i, lo+portsEach*i+portsEach-1, root, dsn, timeout) + extra
		path := filepath.Join(dir, fmt.Sprintf("cloudftpd%d.toml", i+1))
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, path)
	}
	return cfgs
}
