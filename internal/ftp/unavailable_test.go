package ftp

import (
	"context"
	"fmt"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

// downAuth is a user store that cannot be reached.
type downAuth struct{}

func (downAuth) Authenticate(context.Context, string, string) (*auth.User, error) {
	return nil, fmt.Errorf("%w: connection refused", auth.ErrUnavailable)
}

// TestLoginStoreUnavailable: a user store that is down gives 421 and
// closes the session, no 530 (the password was never checked) and no
// offence against the client.
func TestLoginStoreUnavailable(t *testing.T) {
	guard := &offences{}
	evs := &eventLog{}
	h := newHarness(t, harnessOpts{config: func(c *Config) {
		c.Auth = downAuth{}
		c.Guard, c.Events = guard, evs
	}})
	h.expect(331, "USER alice")
	if msg := h.expect(421, "PASS alice-pw"); msg != "Login service unavailable, try again later." {
		t.Errorf("reply %q", msg)
	}
	h.closed()
	if g := guard.String(); g != "" {
		t.Errorf("offences: %s", g)
	}
	evs.mu.Lock()
	defer evs.mu.Unlock()
	for _, e := range evs.evs {
		if e.Type == events.LoginFailed && (e.Code != 421 || e.Reason != "login service unavailable") {
			t.Errorf("login event: %+v", e)
		}
	}
}
