package main

import (
	"context"
	"log/slog"
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
	n := &testNode{addr: srv.Addrs()[0].String(), logs: logs, srv: srv}
	t.Cleanup(func() { n.stop() })
	return n
}

// stop shuts the node down, giving its sessions up to 10s to end.
func (n *testNode) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.srv.Shutdown(ctx)
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
