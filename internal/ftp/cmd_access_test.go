package ftp

import (
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// TestLogin covers USER, PASS and ACCT: the login sequence and each of its
// refusals, with the codes RFC 959 gives them.
func TestLogin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  harnessOpts
		setup func(h *harness)
		steps []step
	}{
		{name: "good password", steps: []step{
			{"USER alice", 331, "Password required for alice."},
			{"PASS alice-pw", 230, "Login successful."},
			{"PWD", 257, `"/"`},
		}},
		{name: "wrong password", steps: []step{
			{"USER alice", 331, ""},
			{"PASS wrong", 530, "Login incorrect."},
			{"PWD", 530, "log in"},
			// A failed PASS uses up the USER.
			{"PASS alice-pw", 503, "USER first"},
		}},
		{name: "unknown user answers like a known one", steps: []step{
			{"USER nobody", 331, "Password required for nobody."},
			{"PASS x", 530, "Login incorrect."},
		}},
		{name: "empty password", steps: []step{
			{"USER alice", 331, ""},
			{"PASS", 530, ""},
		}},
		{name: "PASS without USER", steps: []step{
			{"PASS alice-pw", 503, "Send USER first."},
		}},
		{name: "PASS after login", steps: []step{
			{"USER alice", 331, ""},
			{"PASS alice-pw", 230, ""},
			{"PASS alice-pw", 503, "Already logged in."},
		}},
		{name: "USER after login", steps: []step{
			{"USER alice", 331, ""},
			{"PASS alice-pw", 230, ""},
			{"USER bob", 530, "REIN"},
		}},
		{name: "USER without a name", steps: []step{
			{"USER", 501, "needs an argument"},
		}},
		{name: "anonymous disabled", steps: []step{
			{"USER anonymous", 331, "Anonymous login"},
			{"PASS me@example.com", 530, ""},
		}},
		{name: "anonymous is read-only", opts: harnessOpts{anonymous: true}, steps: []step{
			{"USER ftp", 331, "Anonymous login"},
			{"PASS me@example.com", 230, ""},
			{"MKD d", 550, "Permission denied"},
			{"DELE f", 550, "Permission denied"},
		}},
		{name: "ACCT is not needed", steps: []step{
			{"ACCT x", 202, "not needed"},
			{"USER alice", 331, ""},
			{"PASS alice-pw", 230, ""},
			{"ACCT x", 202, ""},
		}},
		{name: "listener requires TLS", opts: harnessOpts{tls: func(p *TLSPolicy) { p.RequireControl = true }}, steps: []step{
			{"USER alice", 530, "TLS required"},
		}},
		{name: "user requires TLS", opts: harnessOpts{tls: func(*TLSPolicy) {}}, steps: []step{
			{"USER secure", 530, "TLS required"},
			{"USER alice", 331, ""},
		}},
		{name: "home unavailable", setup: func(h *harness) {
			h.fs.FailNext(memstore.OpHome, "alice", storage.ErrPermission)
		}, steps: []step{
			{"USER alice", 331, ""},
			{"PASS alice-pw", 421, "Home directory unavailable"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.opts)
			if tc.setup != nil {
				tc.setup(h)
			}
			h.script(tc.steps...)
		})
	}
}

// TestLoginFailureLimit: the last allowed failure closes the session with
// 421 instead of 530.
func TestLoginFailureLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	for range h.cfg.MaxLoginFailures - 1 {
		h.expect(331, "USER alice")
		h.expect(530, "PASS wrong")
	}
	h.expect(331, "USER alice")
	h.expect(421, "PASS wrong")
	h.closed()
}

// TestHomeUnavailableCloses: a user whose home cannot be opened is not
// left in a half-logged-in session.
func TestHomeUnavailableCloses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.fs.FailNext(memstore.OpHome, "alice", storage.ErrNoSpace)
	h.expect(331, "USER alice")
	h.expect(421, "PASS alice-pw")
	h.closed()
}

// TestREIN: REIN logs the user out and resets the transfer parameters but
// keeps the connection; a new login starts afresh.
func TestREIN(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.expect(220, "REIN") // before login: nothing to reset
	h.login()
	h.put("alice/d/f", "x")
	h.script(
		step{"CWD d", 250, ""},
		step{"TYPE I", 200, ""},
		step{"REST 1", 350, ""},
		step{"RNFR f", 350, ""},
		step{"REIN x", 501, "takes no argument"},
		step{"REIN", 220, "Ready for a new user."},
		step{"PWD", 530, ""},
		step{"RNTO g", 530, ""},
	)
	if u := h.fs.InUse(); u.Homes != 0 {
		t.Errorf("after REIN %d homes are open, want 0", u.Homes)
	}
	h.login()
	h.expect(257, "PWD")
	if msg := h.expect(211, "STAT"); !strings.Contains(msg, "TYPE: ASCII") {
		t.Errorf("after REIN STAT says %q, want TYPE back to ASCII", msg)
	}
	// REST was reset: the download starts at 0.
	if got := h.retr("d/f"); got != "x" {
		t.Errorf("RETR after REIN: %q", got)
	}
	h.expect(503, "RNTO g")
}

// TestQUIT: 221, then the server closes the connection, logged in or not.
func TestQUIT(t *testing.T) {
	t.Parallel()
	for _, login := range []bool{false, true} {
		h := newHarness(t, harnessOpts{})
		if login {
			h.login()
		}
		h.expect(221, "QUIT")
		h.closed()
	}
}
