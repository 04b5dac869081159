package server_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// TestNewStartsNothing and Serve's net/http shape: New opens no socket
// (its wiring is built, nothing listens), Serve listens until Close and
// then returns ErrServerClosed, and a closed server does not start again.
func TestNewStartsNothing(t *testing.T) {
	cfg := anonymousConfig(t, "info")
	cfg.Listeners[0].Address = clienttest.FreeAddr(t)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(t.Context(), cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", cfg.Listeners[0].Address, time.Second); err == nil {
		c.Close()
		t.Fatal("New opened the listener")
	}
	if got := len(srv.Addrs()); got != 0 {
		t.Errorf("%d addresses before Start", got)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(t.Context()) }()
	waitFor(t, func() bool { return len(srv.Addrs()) == 1 })
	if code, _ := greeting(t, cfg.Listeners[0].Address); code != 220 {
		t.Errorf("greeting %d", code)
	}
	srv.Close()
	select {
	case err := <-served:
		if !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve after Close: %v, want ErrServerClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if err := srv.Start(t.Context()); !errors.Is(err, server.ErrServerClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}
