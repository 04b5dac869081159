package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/control"
)

// dialSrc connects to addr from the loopback address from, without a
// test to fail (for goroutines); see dialFrom.
func dialSrc(from, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	return d.Dial("tcp", addr)
}

// greeted reports whether a connection from from gets the 220 greeting
// (true) or is closed at once without a byte (false).
func greeted(t *testing.T, from, addr string) bool {
	t.Helper()
	c := dialFrom(t, from, addr)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return false
	}
	if !strings.HasPrefix(line, "220") {
		t.Fatalf("connection from %s: %q", from, line)
	}
	return true
}

// defended starts a server whose defender scores loopback clients too
// (the default allow list spares the machine itself) and keeps its state
// in stateDir.
func defended(t *testing.T, stateDir string, mutate func(*config.Config)) *testServer {
	return startServer(t, func(c *config.Config) {
		c.Server.StateDir = stateDir
		c.Server.LoginFailureDelay = config.Duration(50 * time.Millisecond)
		c.Defender.Allow = []string{}
		if mutate != nil {
			mutate(c)
		}
	})
}

// TestDefenderStopsParallelGuessing: 100 connections from one address
// guess alice's password in parallel, each as fast as the server answers.
// The address is banned within the threshold (10 points, 2 per failed
// login: 5 failures, plus the guesses already being checked when the ban
// lands), its open sessions are closed, every further connection from it
// is closed at accept without a greeting, and meanwhile a client from
// another address logs in.
func TestDefenderStopsParallelGuessing(t *testing.T) {
	ts := defended(t, t.TempDir(), nil)
	const attacker, partner = "127.0.0.3", "127.0.0.4"
	var replies530 atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialSrc(attacker, ts.Addr)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			tp := textproto.NewConn(c)
			if _, _, err := tp.ReadResponse(220); err != nil {
				return // refused at accept: banned already
			}
			for j := 0; ; j++ {
				tp.PrintfLine("USER alice")
				if _, _, err := tp.ReadResponse(331); err != nil {
					return
				}
				tp.PrintfLine("PASS guess-%d-%d", i, j)
				code, _, err := tp.ReadResponse(530)
				if err != nil {
					return // closed by the ban
				}
				if code == 530 {
					replies530.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	took := time.Since(start)
	failures := strings.Count(ts.logs.String(), `msg="login failed"`)
	t.Logf("100 parallel guessers: %d passwords checked, %d answered 530, all connections ended after %v", failures, replies530.Load(), took.Round(time.Millisecond))
	if failures > 10 {
		t.Errorf("%d failed logins were checked before the ban; the threshold allows 5 and the parallel ones in flight", failures)
	}
	if greeted(t, attacker, ts.Addr) {
		t.Error("a new connection from the banned address was greeted")
	}
	rc := dialRawFrom(t, partner, ts.Addr)
	rc.login("alice", "alice-secret")
	if n := strings.Count(ts.logs.String(), `msg="defender: banned"`); n != 1 {
		t.Errorf("%d ban log lines, want one for the one ban", n)
	}
	// Sessions the ban closed in the middle of a password check are not
	// internal errors: a ban is one line, not one per guesser.
	if n := strings.Count(ts.logs.String(), `level=ERROR`); n != 0 {
		t.Errorf("%d ERROR lines for one ban:\n%s", n, ts.logs)
	}
}

// dialRaw from a given loopback address.
func dialRawFrom(t *testing.T, from, addr string) *rawClient {
	t.Helper()
	c := dialFrom(t, from, addr)
	rc := &rawClient{t: t, conn: c, tp: textproto.NewConn(c)}
	rc.expect(220)
	return rc
}

// guessUntilClosed fails logins from one address until the server closes
// the connection or n attempts were made.
func guessUntilClosed(t *testing.T, from, addr string, n int) {
	t.Helper()
	rc := dialRawFrom(t, from, addr)
	for range n {
		if err := rc.tp.PrintfLine("USER alice"); err != nil {
			return
		}
		if code, _, err := rc.tp.ReadResponse(331); err != nil || code != 331 {
			return
		}
		rc.tp.PrintfLine("PASS wrong")
		if _, _, err := rc.tp.ReadResponse(530); err != nil {
			return
		}
	}
}

// TestDefenderBansSurviveRestart: a ban made by the defender, and one
// made by hand through the control socket, hold after the server is
// restarted on the same state directory; removing one through the socket
// lets the address in again.
func TestDefenderBansSurviveRestart(t *testing.T) {
	state := t.TempDir()
	ts := defended(t, state, nil)
	for i := 0; i < 10 && greeted(t, "127.0.0.6", ts.Addr); i++ {
		guessUntilClosed(t, "127.0.0.6", ts.Addr, 3) // max_login_failures closes after 3
	}
	cl := control.Client{SocketPath: ts.cfg.ControlSocket()}
	ctx := context.Background()
	if _, err := cl.Ban(ctx, netip.MustParsePrefix("127.0.0.7/32"), time.Hour, "by hand"); err != nil {
		t.Fatal(err)
	}
	stopServer(t, ts)

	ts2 := defended(t, state, nil)
	for _, a := range []string{"127.0.0.6", "127.0.0.7"} {
		if greeted(t, a, ts2.Addr) {
			t.Errorf("%s was let in after the restart", a)
		}
	}
	cl = control.Client{SocketPath: ts2.cfg.ControlSocket()}
	bans, err := cl.ListBans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != 2 {
		t.Errorf("bans after restart: %v, want 127.0.0.6 and 127.0.0.7", bans)
	}
	if err := cl.Unban(ctx, netip.MustParsePrefix("127.0.0.7/32")); err != nil {
		t.Fatal(err)
	}
	if !greeted(t, "127.0.0.7", ts2.Addr) {
		t.Error("127.0.0.7 is still refused after its ban was removed")
	}
}

// TestDefenderAllowAndDeny: an allowed address is never banned however
// often it fails; a denied one is never greeted.
func TestDefenderAllowAndDeny(t *testing.T) {
	ts := defended(t, "", func(c *config.Config) {
		c.Defender.Allow = []string{"127.0.0.8"}
		c.Defender.Deny = []string{"127.0.0.9/32"}
	})
	for range 3 {
		guessUntilClosed(t, "127.0.0.8", ts.Addr, 5) // 15 failures: 30 points
	}
	if !greeted(t, "127.0.0.8", ts.Addr) {
		t.Error("the allowed address was banned")
	}
	if greeted(t, "127.0.0.9", ts.Addr) {
		t.Error("the denied address was greeted")
	}
	if n := strings.Count(ts.logs.String(), "defender: banned"); n != 0 {
		t.Errorf("%d bans logged, want none", n)
	}
}

// TestDefenderScansBeforeLogin: connections that send junk before login
// (an HTTP scanner on the FTP port) or nothing at all are scored too.
func TestDefenderScansBeforeLogin(t *testing.T) {
	ts := defended(t, "", nil)
	for i := 0; i < 20 && greeted(t, "127.0.0.10", ts.Addr); i++ {
		c := dialFrom(t, "127.0.0.10", ts.Addr)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(20 * time.Millisecond)
		c.Close()
	}
	if greeted(t, "127.0.0.10", ts.Addr) {
		t.Error("an address sending HTTP requests to the FTP port was not banned")
	}
}

// stopServer shuts ts down now rather than at the end of the test.
func stopServer(t *testing.T, ts *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDefenderReload: SIGHUP's reload changes the lists and the scoring
// of the running defender, keeping its bans: an address put on the deny
// list is refused at once, one put on the allow list is admitted though
// it was banned, and a lower threshold bans sooner.
func TestDefenderReload(t *testing.T) {
	ts := defended(t, "", nil)
	guessUntilClosed(t, "127.0.0.11", ts.Addr, 3)
	guessUntilClosed(t, "127.0.0.11", ts.Addr, 3) // 6 failures: 12 points, banned
	if greeted(t, "127.0.0.11", ts.Addr) {
		t.Fatal("127.0.0.11 not banned before the reload")
	}
	ts.reload(func(c *config.Config) {
		c.Defender.Allow = []string{"127.0.0.11"}
		c.Defender.Deny = []string{"127.0.0.12"}
		c.Defender.Threshold = 4
	})
	if !greeted(t, "127.0.0.11", ts.Addr) {
		t.Error("127.0.0.11 is on the reloaded allow list but still refused")
	}
	if greeted(t, "127.0.0.12", ts.Addr) {
		t.Error("127.0.0.12 is on the reloaded deny list but was greeted")
	}
	guessUntilClosed(t, "127.0.0.13", ts.Addr, 2) // 4 points: the new threshold
	if greeted(t, "127.0.0.13", ts.Addr) {
		t.Error("two failures did not ban with threshold 4")
	}
	if n := strings.Count(ts.logs.String(), "defender: banned"); n != 2 {
		t.Errorf("%d bans logged, want 2 (one before the reload, one after)", n)
	}
}
