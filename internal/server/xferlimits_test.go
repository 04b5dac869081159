package server_test

// Transfer limits end to end, with real clients on loopback: a user's
// max_file_size, bandwidth limits of users and listeners, command pacing,
// the login timeout and the session limits, and how the last ones meet
// the defender.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// limitedUser is a users-file entry with limits: password name+"-secret",
// home name, every permission, and keys (TOML lines such as
// `max_file_size = "1MiB"`).
type limitedUser struct{ name, keys string }

// withUsers makes the server load a users file of its own holding alice
// (as every test server has her) and users.
func withUsers(t *testing.T, users ...limitedUser) func(*config.Config) {
	t.Helper()
	var b strings.Builder
	for _, u := range append([]limitedUser{{"alice", ""}, {"bob", ""}}, users...) {
		fmt.Fprintf(&b, "[[user]]\nname = %q\npassword_hash = %q\nhome = %q\npermissions = [\"all\"]\n%s\n\n",
			u.name, hashFor(t, u.name+"-secret"), u.name, u.keys)
	}
	path := filepath.Join(t.TempDir(), "limited-users.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) { c.Auth.UsersFile = path }
}

// both applies every mutation in order.
func both(fs ...func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		for _, f := range fs {
			f(c)
		}
	}
}

// TestMaxFileSize: uploads by curl and jlaffaye/ftp past a user's
// max_file_size fail with 552 and its message, leave nothing, and leave a
// file they would have replaced exactly as it was; on S3 as on disk.
func TestMaxFileSize(t *testing.T) {
	curl := clienttest.Need(t, "curl")
	forBackends(t, allBackends, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, withUsers(t, limitedUser{"capped", `max_file_size = "1MiB"`}))
		old := randomBytes(1000)
		ts.write("capped/keep.bin", old)
		local := t.TempDir()
		big := filepath.Join(local, "big")
		if err := os.WriteFile(big, randomBytes(3<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		url := "ftp://capped:capped-secret@127.0.0.1:" + ts.Port() + "/"
		// curl fails: with the 552 when it reads the reply before its
		// write meets the reset data connection, with a send failure
		// otherwise (it then reads no reply).
		for _, name := range []string{"new.bin", "keep.bin"} {
			r := runTool(t, local, "", curl, "-q", "-s", "-S", "-v", "--max-time", "20", "-T", big, url+name)
			if r.OK() {
				t.Errorf("curl uploaded 3 MiB as %s over a 1 MiB limit:\n%s", name, r)
			}
		}
		// lftp reads the reply and shows it.
		r := runTool(t, local, "", clienttest.Need(t, "lftp"), "--norc", "-c",
			"set net:max-retries 1; set net:timeout 10; set ftp:ssl-allow no; set cmd:fail-exit yes; "+
				"open -u capped,capped-secret -p "+ts.Port()+" 127.0.0.1; put "+big+" -o lftp.bin")
		if r.OK() || !strings.Contains(r.Stderr+r.Stdout, "552 File exceeds the maximum size of 1MiB for this account; upload discarded.") {
			t.Errorf("lftp put of 3 MiB over a 1 MiB limit:\n%s", r)
		}
		ts.notExist("capped/lftp.bin")
		ts.notExist("capped/new.bin")
		if got := ts.read("capped/keep.bin"); !bytes.Equal(got, old) {
			t.Errorf("the file a refused upload would have replaced changed: %d bytes", len(got))
		}

		c, _ := dialJlaffaye(t, ts, "capped", "capped-secret")
		exact := randomBytes(1 << 20)
		check(t, "STOR of exactly 1 MiB", c.Stor("exact.bin", bytes.NewReader(exact)))
		if !bytes.Equal(ts.read("capped/exact.bin"), exact) {
			t.Error("the 1 MiB upload was not stored whole")
		}
		err := c.Stor("over.bin", bytes.NewReader(randomBytes(1<<20+1)))
		if err == nil || !strings.Contains(err.Error(), "552") {
			t.Errorf("STOR of 1 MiB + 1 byte: %v, want 552", err)
		}
		ts.notExist("capped/over.bin")
		check(t, "NOOP after the refusal", c.NoOp())
	})
}

// TestMaxFileSizeInPlace: an APPE or REST+STOR refused for size leaves
// the file exactly as it was: on local disk it is cut back (they write in
// place), on S3 the new object is never published.
func TestMaxFileSizeInPlace(t *testing.T) {
	forBackends(t, allBackends, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, withUsers(t, limitedUser{"capped", `max_file_size = "64KiB"`}))
		old := randomBytes(40 << 10)
		ts.write("capped/f", old)
		c, _ := dialJlaffaye(t, ts, "capped", "capped-secret")
		if err := c.Append("f", bytes.NewReader(randomBytes(30<<10))); err == nil || !strings.Contains(err.Error(), "552") {
			t.Errorf("APPE across the limit: %v, want 552", err)
		}
		if got := ts.read("capped/f"); !bytes.Equal(got, old) {
			t.Errorf("after the refused APPE the file has %d bytes, want the original %d unchanged", len(got), len(old))
		}
		if err := c.StorFrom("f", bytes.NewReader(randomBytes(30<<10)), uint64(len(old))); err == nil || !strings.Contains(err.Error(), "552") {
			t.Errorf("REST+STOR across the limit: %v, want 552", err)
		}
		if got := ts.read("capped/f"); !bytes.Equal(got, old) {
			t.Errorf("after the refused resume the file has %d bytes, want the original %d unchanged", len(got), len(old))
		}
		tail := randomBytes(24 << 10)
		check(t, "APPE up to the limit", c.Append("f", bytes.NewReader(tail)))
		if got := ts.read("capped/f"); !bytes.Equal(got, append(old, tail...)) {
			t.Errorf("APPE up to the limit stored %d bytes", len(got))
		}
	})
}

// within fails the test unless d is within frac of want.
func within(t *testing.T, what string, d, want time.Duration, frac float64) {
	t.Helper()
	lo, hi := time.Duration(float64(want)*(1-frac)), time.Duration(float64(want)*(1+frac))
	if d < lo || d > hi {
		t.Errorf("%s took %v, want %v ± %.0f%% (%v to %v)", what, d.Round(time.Millisecond), want, frac*100, lo, hi)
	} else {
		t.Logf("%s took %v (%.1f%% off %v)", what, d.Round(time.Millisecond), 100*(float64(d)/float64(want)-1), want)
	}
}

// TestBandwidthLimit: a user's upload_rate and download_rate hold within
// 5% over 10 s transfers: curl uploads 10 MiB at 1 MiB/s while
// jlaffaye/ftp downloads 10 MiB at 1 MiB/s, both at once.
func TestBandwidthLimit(t *testing.T) {
	curl := clienttest.Need(t, "curl")
	t.Parallel()
	const rate, size = 1 << 20, 10 << 20
	ts := startServer(t, withUsers(t, limitedUser{"slow", `upload_rate = "1MiB"` + "\n" + `download_rate = "1MiB"`}))
	payload := randomBytes(size)
	ts.write("slow/down.bin", payload)
	local := t.TempDir()
	up := filepath.Join(local, "up.bin")
	if err := os.WriteFile(up, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	want := time.Duration(size / rate * int64(time.Second))
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		r := clienttest.Run(t.Context(), clienttest.Cmd{Prog: curl, Dir: local, Timeout: time.Minute,
			Args: []string{"-q", "-s", "-S", "-T", up, "ftp://slow:slow-secret@127.0.0.1:" + ts.Port() + "/up.bin"}})
		if !r.OK() {
			t.Errorf("curl upload:\n%s", r)
			return
		}
		within(t, "curl upload of 10 MiB at 1 MiB/s", time.Since(start), want, 0.05)
	})
	c := loginJlaffaye(t, ts, "slow")
	wg.Go(func() {
		within(t, "jlaffaye download of 10 MiB at 1 MiB/s", retrAll(t, c, "down.bin", size), want, 0.05)
	})
	wg.Wait()
	if got := ts.read("slow/up.bin"); !bytes.Equal(got, payload) {
		t.Errorf("the limited upload stored %d bytes, not the file", len(got))
	}
}

// loginJlaffaye logs user in with jlaffaye/ftp (password user+"-secret").
func loginJlaffaye(t *testing.T, ts *testServer, user string) *ftp.ServerConn {
	t.Helper()
	c, err := ftp.Dial(ts.Addr, ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Quit() })
	if err := c.Login(user, user+"-secret"); err != nil {
		t.Fatal(err)
	}
	return c
}

// retrAll downloads name over c and returns how long it took; size is
// what it must get.
func retrAll(t *testing.T, c *ftp.ServerConn, name string, size int64) time.Duration {
	start := time.Now()
	r, err := c.Retr(name)
	if err != nil {
		t.Error(err)
		return 0
	}
	n, err := io.Copy(io.Discard, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != size {
		t.Errorf("download %s: %d bytes, %v", name, n, err)
	}
	return time.Since(start)
}

// TestBandwidthShared: one bucket serves all of a user's sessions, and
// one all of a listener's: two downloads at once share the rate.
func TestBandwidthShared(t *testing.T) {
	t.Parallel()
	const size = 3 << 19 // 1.5 MiB each, 3 MiB in all at 1 MiB/s
	want := 3 * time.Second
	for _, tc := range []struct {
		name   string
		mutate func(*testing.T) func(*config.Config)
		users  [2]string
	}{
		{"one user, two sessions", func(t *testing.T) func(*config.Config) {
			return withUsers(t, limitedUser{"slow", `download_rate = "1MiB"`})
		}, [2]string{"slow", "slow"}},
		{"one listener, two users", func(t *testing.T) func(*config.Config) {
			return both(withUsers(t), func(c *config.Config) { c.Listeners[0].DownloadRate = 1 << 20 })
		}, [2]string{"alice", "bob"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, tc.mutate(t))
			for _, u := range tc.users {
				ts.write(u+"/f.bin", randomBytes(size))
			}
			var conns []*ftp.ServerConn
			for _, u := range tc.users {
				conns = append(conns, loginJlaffaye(t, ts, u))
			}
			var wg sync.WaitGroup
			start := time.Now()
			for _, c := range conns {
				wg.Go(func() { retrAll(t, c, "f.bin", size) })
			}
			wg.Wait()
			within(t, "two 1.5 MiB downloads sharing 1 MiB/s", time.Since(start), want, 0.10)
		})
	}
}

// TestListenerRateReload: a reload changes a listener's rate at once, for
// a transfer already running too, and lifting it (0) builds no gate for
// new sessions.
func TestListenerRateReload(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	ts := startServer(t, func(c *config.Config) { c.Listeners[0].DownloadRate = 256 << 10 }) // 16 s for 4 MiB
	ts.write("alice/f.bin", randomBytes(size))
	c := loginJlaffaye(t, ts, "alice")
	done := make(chan time.Duration, 1)
	go func() { done <- retrAll(t, c, "f.bin", size) }()
	time.Sleep(time.Second)
	ts.reload(func(c *config.Config) { c.Listeners[0].DownloadRate = 0 })
	select {
	case d := <-done:
		if d > 4*time.Second {
			t.Errorf("download took %v after the limit was lifted at 1s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the running download is still limited 10s after a reload lifted the limit")
	}
	if d := retrAll(t, loginJlaffaye(t, ts, "alice"), "f.bin", size); d > 2*time.Second {
		t.Errorf("a new session after the reload took %v for 4 MiB: still limited", d)
	}
}

// TestListenerRateFailedReload: a reload that fails changes no rate.
func TestListenerRateFailedReload(t *testing.T) {
	t.Parallel()
	const size = 1 << 20
	ts := startServer(t, func(c *config.Config) { c.Listeners[0].DownloadRate = 512 << 10 }) // 2 s for 1 MiB
	ts.write("alice/f.bin", randomBytes(size))
	next := cloneConfig(ts.cfg)
	next.Listeners[0].DownloadRate = 0
	next.Auth.UsersFile = filepath.Join(t.TempDir(), "missing.toml")
	if err := ts.srv.Reload(t.Context(), next); err == nil {
		t.Fatal("a reload with a missing users file succeeded")
	}
	within(t, "1 MiB at 512 KiB/s after a failed reload", retrAll(t, loginJlaffaye(t, ts, "alice"), "f.bin", size), 2*time.Second, 0.10)
}

// defenceOn makes every offence count against 127.0.0.1 (not allowed, as
// it is by default) with a low threshold.
func defenceOn(threshold int) func(*config.Config) {
	return func(c *config.Config) {
		c.Defender.Allow = []string{}
		c.Defender.Threshold = threshold
	}
}

// TestCommandPacing: a client pipelining NOOPs on a real socket gets its
// replies at server.max_commands_per_second after the burst, keeps its
// session, and is not scored.
func TestCommandPacing(t *testing.T) {
	t.Parallel()
	ts := startServer(t, both(defenceOn(1), func(c *config.Config) {
		rate := 50
		c.Server.MaxCommandsPerSecond, c.Server.CommandBurst = &rate, 10
	}))
	rc := dialRaw(t, ts.Addr)
	const n = 60
	start := time.Now()
	if _, err := io.WriteString(rc.conn, strings.Repeat("NOOP\r\n", n)); err != nil {
		t.Fatal(err)
	}
	var at [n]time.Duration
	for i := range n {
		rc.expect(200)
		at[i] = time.Since(start)
	}
	// The burst of 10 comes at once; the other 50 at 50/s: 1 s.
	if at[9] > 500*time.Millisecond {
		t.Errorf("the burst of 10 took %v", at[9])
	}
	if d := at[n-1] - at[9]; d < 950*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("50 paced NOOPs took %v, want ~1s at 50/s", d)
	}
	rc.login("alice", "alice-secret")
	// Threshold 1: any offence would have banned 127.0.0.1 by now.
	dialRaw(t, ts.Addr).login("alice", "alice-secret")
}

// TestLoginTimeout: a connection that does not log in within
// server.login_timeout is closed with 421, whether it is silent or busy
// with other commands; a logged-in session is not.
func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *config.Config) { c.Server.LoginTimeout = config.Duration(500 * time.Millisecond) })
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		rc := dialRaw(t, ts.Addr)
		if msg := rc.expect(421); !strings.Contains(msg, "Login timeout") {
			t.Errorf("421 %q", msg)
		}
		if d := time.Since(start); d < 450*time.Millisecond || d > 3*time.Second {
			t.Errorf("closed after %v, want ~500ms", d)
		}
	})
	t.Run("busy", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		rc := dialRaw(t, ts.Addr)
		for {
			code, msg := rc.cmd("NOOP")
			if code == 421 {
				if !strings.Contains(msg, "Login timeout") {
					t.Errorf("421 %q", msg)
				}
				break
			}
			if time.Since(start) > 3*time.Second {
				t.Fatal("NOOPs kept a session that never logged in open past the login timeout")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if d := time.Since(start); d < 450*time.Millisecond {
			t.Errorf("closed after %v, before the login timeout", d)
		}
	})
	t.Run("logged in", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, ts.Addr)
		rc.login("alice", "alice-secret")
		time.Sleep(800 * time.Millisecond)
		rc.must(200, "NOOP")
	})
}

// greetFrom connects to addr from the local address from (any 127/8
// address on Linux) and returns the first reply.
func greetFrom(t *testing.T, addr, from string) (net.Conn, int, string) {
	t.Helper()
	c := dialFrom(t, from, addr)
	rc := &rawClient{t: t, conn: c, tp: textproto.NewConn(c)}
	code, msg := rc.read()
	return c, code, msg
}

// TestSessionLimitsDoNotScore: connections refused for max_sessions_per_ip
// or max_sessions get 421 and are not scored by the defender, so an
// office behind one NAT address that opens too many is refused, never
// banned.
func TestSessionLimitsDoNotScore(t *testing.T) {
	t.Parallel()
	t.Run("per address", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, both(defenceOn(3), func(c *config.Config) { c.Server.MaxSessionsPerIP = 1 }))
		first := dialRaw(t, ts.Addr)
		first.login("alice", "alice-secret")
		for range 6 { // 6 no_command points would ban at threshold 3
			c, code, msg := greetFrom(t, ts.Addr, "127.0.0.1")
			if code != 421 || !strings.Contains(msg, "Too many connections from your address") {
				t.Fatalf("second connection: %d %q, want 421", code, msg)
			}
			c.Close()
		}
		first.must(221, "QUIT")
		waitFor(t, func() bool { return ts.srv.SessionCount() == 0 })
		dialRaw(t, ts.Addr).login("alice", "alice-secret")
	})
	t.Run("in total", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, both(defenceOn(3), func(c *config.Config) { c.Server.MaxSessions = 2 }))
		held, _, _ := greetFrom(t, ts.Addr, "127.0.0.2")
		greetFrom(t, ts.Addr, "127.0.0.3")
		for range 6 {
			c, code, msg := greetFrom(t, ts.Addr, "127.0.0.4")
			if code != 421 || !strings.Contains(msg, "Too many users connected") {
				t.Fatalf("third session: %d %q, want 421", code, msg)
			}
			c.Close()
		}
		if n := ts.srv.SessionCount(); n != 2 {
			t.Errorf("%d sessions, want 2", n)
		}
		// 127.0.0.4 was refused 6 times, and not banned: once there is
		// room it gets in.
		held.Close()
		waitFor(t, func() bool { return ts.srv.SessionCount() == 1 })
		if _, code, msg := greetFrom(t, ts.Addr, "127.0.0.4"); code != 220 {
			t.Errorf("127.0.0.4 once there is room: %d %q, want 220", code, msg)
		}
	})
}
