package ftp

import (
	"crypto/tls"
	"io"
	"net/textproto"
	"testing"
	"time"
)

var tlsOn = func(*TLSPolicy) {}

// TestTLSRefusals covers AUTH, PBSZ, PROT and CCC out of order or on a
// listener without TLS, with the RFC 2228 / RFC 4217 codes.
func TestTLSRefusals(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "no TLS configured", user: "-", steps: []step{
			{"AUTH TLS", 534, "TLS is not configured on this listener."},
			{"AUTH KERBEROS", 504, "AUTH supports TLS"},
			{"PBSZ 0", 503, "AUTH TLS first"},
			{"PROT P", 503, "PBSZ first"},
			{"USER alice", 331, ""},
			{"PASS alice-pw", 230, ""},
			{"CCC", 534, "CCC is not allowed"},
		}},
		{name: "before AUTH", user: "-", opts: harnessOpts{tls: tlsOn}, steps: []step{
			{"AUTH GSSAPI", 504, ""},
			{"PBSZ 0", 503, "AUTH TLS first"},
			{"PROT P", 503, "PBSZ first"},
			{"PROT C", 503, "PBSZ first"},
		}},
		{name: "AUTH after login", opts: harnessOpts{tls: tlsOn}, steps: []step{
			{"AUTH TLS", 503, "AUTH must come before login."},
		}},
		{name: "CCC on a clear connection", opts: harnessOpts{tls: func(p *TLSPolicy) { p.AllowCCC = true }}, steps: []step{
			{"CCC", 533, "not protected"},
		}},
	})
}

// TestAUTHTLS: AUTH TLS, the handshake, then PBSZ and PROT in order, and
// protected transfers.
func TestAUTHTLS(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"TLS", "tls", "TLS-C"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{tls: tlsOn})
			h.expect(234, "AUTH "+mech)
			tc := tls.Client(h.raw, h.clientTLS)
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			h.conn, h.tp = tc, textproto.NewConn(tc)
			h.script(
				step{"AUTH TLS", 503, "Already using TLS."},
				step{"PROT P", 503, "PBSZ first"},
				step{"PBSZ x", 501, "PBSZ needs a number"},
				step{"PBSZ 0", 200, "PBSZ=0"},
				step{"PROT S", 536, "Only PROT P and PROT C"},
				step{"PROT E", 536, ""},
				step{"PROT X", 504, "Unknown protection level."},
				step{"PROT C", 200, "PROT now Clear."},
				step{"PROT P", 200, "PROT now Private"},
			)
			h.protP = true
			h.login()
			h.stor("f", "secret data")
			if got := h.retr("f"); got != "secret data" {
				t.Errorf("RETR over TLS: %q", got)
			}
			if got := h.list("NLST"); len(got) != 1 || got[0] != "f" {
				t.Errorf("NLST over TLS: %q", got)
			}
			// PROT C: clear data connections again.
			h.expect(200, "PROT C")
			h.protP = false
			if got := h.retr("f"); got != "secret data" {
				t.Errorf("RETR in clear after PROT C: %q", got)
			}
		})
	}
}

// TestAUTHSSL: the legacy AUTH SSL (and TLS-P) imply protected data
// connections without PBSZ and PROT.
func TestAUTHSSL(t *testing.T) {
	t.Parallel()
	for _, mech := range []string{"SSL", "TLS-P"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{tls: func(p *TLSPolicy) { p.RequireData = true }})
			h.expect(234, "AUTH "+mech)
			tc := tls.Client(h.raw, h.clientTLS)
			if err := tc.Handshake(); err != nil {
				t.Fatal(err)
			}
			h.conn, h.tp, h.protP = tc, textproto.NewConn(tc), true
			h.login()
			h.stor("f", "x")
		})
	}
}

// TestAUTHWithPipelinedData: bytes after "AUTH TLS" that arrive before
// the 234 cannot be a TLS handshake; the server refuses (503) and stays
// in clear.
func TestAUTHWithPipelinedData(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tls: tlsOn})
	if _, err := h.raw.Write([]byte("AUTH TLS\r\nNOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	if msg := h.expectReply(503); msg != "Unexpected data after AUTH." {
		t.Errorf("AUTH with data behind it: %q", msg)
	}
	record("AUTH", 503)
	h.expectReply(200)
}

// TestAUTHBadHandshake: a client that answers 234 with something other
// than a TLS handshake loses the session.
func TestAUTHBadHandshake(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tls: tlsOn})
	h.expect(234, "AUTH TLS")
	h.raw.Write([]byte("USER alice\r\n"))
	select {
	case <-h.done:
	case <-time.After(replyTimeout):
		t.Fatal("the session survived a failed TLS handshake")
	}
}

// TestTLSRequired: with RequireControl, USER needs AUTH TLS first; with
// RequireData, transfers need PROT P (522, RFC 4217 section 9) and PROT C
// is refused (534).
func TestTLSRequired(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tls: func(p *TLSPolicy) { p.RequireControl, p.RequireData = true, true }})
	h.expect(530, "USER alice")
	h.startTLS()
	h.login()
	h.put("alice/f", "x")
	h.expect(522, "RETR f")
	if r := h.xfer("RETR f", nil); r.code != 522 {
		t.Errorf("RETR without PROT P after EPSV: %d %q, want 522", r.code, r.msg)
	}
	h.expect(200, "PBSZ 0")
	h.expect(534, "PROT C")
	h.expect(200, "PROT P")
	h.protP = true
	if got := h.retr("f"); got != "x" {
		t.Errorf("protected RETR: %q", got)
	}
}

// TestTLSPerUser: a user whose entry requires TLS can log in once the
// control connection is protected.
func TestTLSPerUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tls: tlsOn})
	h.expect(530, "USER secure")
	h.startTLS()
	h.loginAs("secure")
}

// TestImplicitTLS: an implicit FTPS session is protected from the first
// byte, data connections included.
func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tls: func(p *TLSPolicy) { p.Implicit = true }})
	h.expect(503, "AUTH TLS")
	h.login()
	h.stor("f", "implicit")
	if got := h.retr("f"); got != "implicit" {
		t.Errorf("RETR over implicit TLS: %q", got)
	}
}

// TestTLSSessionReuse: with RequireReuse, a protected data connection
// must resume the control connection's TLS session; one that does not is
// refused with 522.
func TestTLSSessionReuse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tls: func(p *TLSPolicy) { p.RequireReuse = true }})
	h.startTLS()
	h.protect()
	h.login()
	h.stor("f", "resumed")
	// A client without a session cache makes full handshakes.
	withCache := h.clientTLS
	h.clientTLS = &tls.Config{RootCAs: withCache.RootCAs, ServerName: withCache.ServerName}
	if r := h.xfer("RETR f", nil); r.code != 522 || r.data != "" {
		t.Errorf("RETR without resumption: %d %q, %d bytes; want 522 and nothing", r.code, r.msg, len(r.data))
	}
	h.clientTLS = withCache
	if got := h.retr("f"); got != "resumed" {
		t.Errorf("RETR with resumption: %q", got)
	}
}

// TestCCC: CCC (RFC 4217 section 6) returns the control connection to
// clear text after both sides sent close_notify; the session goes on.
func TestCCC(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{tls: func(p *TLSPolicy) { p.AllowCCC = true }})
	h.startTLS()
	h.login()
	h.expect(200, "CCC")
	tc := h.conn.(*tls.Conn)
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	h.raw.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := io.Copy(io.Discard, tc); err != nil {
		t.Fatalf("waiting for the server's close_notify: %v", err)
	}
	// close_notify leaves a write deadline in the past on the socket, so
	// that the TLS connection cannot write after it; the socket goes on.
	h.raw.SetWriteDeadline(time.Time{})
	h.conn, h.tp = h.raw, textproto.NewConn(h.raw)
	h.expect(257, "PWD")
	h.expect(533, "CCC")
}
