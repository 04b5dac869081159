package ftp

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

// failingAuth is a user store that is down, and remembers the LoginInfo
// each call carried.
type failingAuth struct {
	mu    sync.Mutex
	infos []auth.LoginInfo
}

func (a *failingAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	li, _ := auth.LoginInfoFrom(ctx)
	a.mu.Lock()
	a.infos = append(a.infos, li)
	a.mu.Unlock()
	return nil, errors.New("idhook: POST http://hook: connection refused")
}

// TestLoginStoreFailure: when the user store fails (not a wrong
// password), PASS answers 421 "Login service unavailable" and the session
// closes, with an ERROR log line, a login.failed event of code 421, and
// no offence for the defender: the server's trouble is not the client's.
// The store hears the client, the listener and whether TLS was on.
func TestLoginStoreFailure(t *testing.T) {
	t.Parallel()
	guard := &offences{}
	evs := &eventLog{}
	store := &failingAuth{}
	h := newHarness(t, harnessOpts{client: netip.MustParseAddr("198.51.100.9"), config: func(c *Config) {
		c.Auth, c.Guard, c.Events = store, guard, evs
		c.Listener = "0.0.0.0:21"
		c.MaxLoginFailures = 1 // a counted failure would say "Too many failed logins"
	}})
	h.expect(331, "USER alice")
	if msg := h.expect(421, "PASS alice-pw"); msg != "Login service unavailable, try again later." {
		t.Errorf("reply %q", msg)
	}
	h.closed()
	if g := guard.String(); g != "" {
		t.Errorf("offences %q, want none", g)
	}
	if !logLine(h.logs.String(), "level=ERROR", `msg="login error: the user store failed"`, "user=alice", "connection refused") {
		t.Errorf("no ERROR line for the store's failure:\n%s", h.logs.String())
	}
	if e, ok := evs.last(events.LoginFailed); !ok || e.Code != 421 || e.Reason != "login service unavailable" {
		t.Errorf("login.failed event %+v, want code 421", e)
	}
	want := auth.LoginInfo{TLS: false, Client: netip.MustParseAddr("198.51.100.9"), Listener: "0.0.0.0:21"}
	if len(store.infos) != 1 || store.infos[0] != want {
		t.Errorf("store saw %+v, want one login with %+v", store.infos, want)
	}
}

// TestLoginInfoTLS: a login after AUTH TLS tells the store so.
func TestLoginInfoTLS(t *testing.T) {
	t.Parallel()
	store := &failingAuth{}
	h := newHarness(t, harnessOpts{tls: func(*TLSPolicy) {}, config: func(c *Config) { c.Auth = store }})
	h.startTLS()
	h.expect(331, "USER alice")
	h.expect(421, "PASS alice-pw")
	if len(store.infos) != 1 || !store.infos[0].TLS {
		t.Errorf("store saw %+v, want one login with TLS", store.infos)
	}
}

// tlsUserAuth knows a user's TLS policy only with the password.
type tlsUserAuth struct{}

func (tlsUserAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	return &auth.User{Name: name, Home: name, Perms: allPerms, TLS: "required"}, nil
}

// TestLoginTLSRequiredAfterPassword: a user whose tls = "required" comes
// with the store's answer is refused on a clear control connection (530,
// not scored), and logs in after AUTH TLS.
func TestLoginTLSRequiredAfterPassword(t *testing.T) {
	t.Parallel()
	guard := &offences{}
	h := newHarness(t, harnessOpts{tls: func(*TLSPolicy) {}, config: func(c *Config) { c.Auth, c.Guard = tlsUserAuth{}, guard }})
	h.expect(331, "USER carol")
	if msg := h.expect(530, "PASS pw"); msg != "TLS required: send AUTH TLS before logging in." {
		t.Errorf("clear login: %q", msg)
	}
	if g := guard.String(); g != "" {
		t.Errorf("offences %q, want none", g)
	}
	h.startTLS()
	h.expect(331, "USER carol")
	h.expect(230, "PASS pw")
}
