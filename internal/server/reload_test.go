package server_test

// Reload (SIGHUP): a new config applies to new sessions at once, running
// sessions keep theirs, listeners come and go, and a config that cannot
// be built changes nothing.

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// greeting connects to addr and returns the first reply.
func greeting(t *testing.T, addr string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	code, msg, err := textproto.NewReader(bufio.NewReader(c)).ReadResponse(0)
	if err != nil && code == 0 {
		t.Fatalf("greeting from %s: %v", addr, err)
	}
	return code, msg
}

func passiveRule(address string) []config.PassiveRule {
	return []config.PassiveRule{{Clients: []string{"0.0.0.0/0"}, Address: address}}
}

// TestReloadPassiveRule: a changed passive rule is in the PASV replies of
// sessions that start after the reload; a session from before keeps its
// rule, and the passive port it reserved before the reload still takes
// its data connection (same listener, same port pool).
func TestReloadPassiveRule(t *testing.T) {
	ports := clienttest.FreeRange(t, 4)
	ts := startServer(t, func(c *config.Config) {
		c.Listeners[0].PassivePorts = ports
		c.Listeners[0].Passive = passiveRule("127.0.0.1")
	})
	ts.write("alice/f.txt", []byte("x"))
	before := ts.srv.Addrs()[0].String()
	old := dialRaw(t, ts.Addr)
	old.login("alice", "alice-secret")
	pending := old.pasv() // reserved and dialled before the reload

	ts.reload(func(c *config.Config) { c.Listeners[0].Passive = passiveRule("198.51.100.7") })

	if after := ts.srv.Addrs()[0].String(); after != before {
		t.Fatalf("listener moved from %s to %s on a reload that kept its address", before, after)
	}
	old.must(150, "NLST")
	if got := strings.TrimSpace(string(readAll(t, pending))); got != "f.txt" {
		t.Errorf("NLST over the data connection reserved before the reload: %q", got)
	}
	old.expect(226)
	if got := parse227(t, old.must(227, "PASV")).Addr(); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("old session's PASV after the reload names %v, want its own rule's 127.0.0.1", got)
	}
	fresh := dialRaw(t, ts.Addr)
	fresh.login("alice", "alice-secret")
	if got := parse227(t, fresh.must(227, "PASV")).Addr(); got != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("new session's PASV names %v, want the reloaded rule's 198.51.100.7", got)
	}
}

// TestReloadLimitsAndTimeouts: a changed banner, idle timeout and
// max_sessions hold for sessions started after the reload; a session from
// before keeps its timeout.
func TestReloadLimitsAndTimeouts(t *testing.T) {
	ts := startServer(t, nil)
	old := dialRaw(t, ts.Addr)
	old.login("alice", "alice-secret")

	ts.reload(func(c *config.Config) {
		c.Server.Banner = "reloaded banner"
		c.Server.IdleTimeout = config.Duration(300 * time.Millisecond)
		c.Server.MaxSessions = 2
	})

	if code, msg := greeting(t, ts.Addr); code != 220 || !strings.Contains(msg, "reloaded banner") {
		t.Errorf("greeting after the reload: %d %q", code, msg)
	}
	waitFor(t, func() bool { return ts.srv.SessionCount() == 1 }) // the greeted one has gone
	fresh := dialRaw(t, ts.Addr)
	fresh.login("bob", "bob-secret")
	// Two sessions now: the new limit turns a third away.
	waitFor(t, func() bool { return ts.srv.SessionCount() == 2 })
	if code, msg := greeting(t, ts.Addr); code != 421 || !strings.Contains(msg, "Too many users") {
		t.Errorf("third connection with max_sessions = 2: %d %q", code, msg)
	}
	// The new session is cut after the new idle timeout, the old one is
	// not (its idle timeout is still 30s).
	start := time.Now()
	fresh.expect(421)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("new session idled out after %v, want about 300ms", d)
	}
	time.Sleep(300 * time.Millisecond)
	old.must(200, "NOOP")
}

// TestReloadListeners: a listener added by a reload is opened, one
// removed is closed while its sessions carry on, and one that stays keeps
// its socket.
func TestReloadListeners(t *testing.T) {
	a, b := clienttest.FreeAddr(t), clienttest.FreeAddr(t)
	ts := startServer(t, func(c *config.Config) { c.Listeners[0].Address = a })
	onA := dialRaw(t, a)
	onA.login("alice", "alice-secret")

	ts.reload(func(c *config.Config) {
		c.Listeners = append(c.Listeners, config.Listener{Address: b})
	})
	if got := addrStrings(ts.srv.Addrs()); got != a+" "+b {
		t.Fatalf("after adding %s: listening on %s", b, got)
	}
	onB := dialRaw(t, b)
	onB.login("bob", "bob-secret")

	ts.reload(func(c *config.Config) { c.Listeners = c.Listeners[1:] })
	if got := addrStrings(ts.srv.Addrs()); got != b {
		t.Fatalf("after removing %s: listening on %s", a, got)
	}
	if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts after its listener was removed", a)
	}
	onA.must(257, "PWD") // its listener is gone, the session is not
	onB.must(200, "NOOP")
	if code, _ := greeting(t, b); code != 220 {
		t.Errorf("the listener that stayed greets with %d", code)
	}
}

func addrStrings(addrs []net.Addr) string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, " ")
}

// TestReloadBrokenConfig: a config that cannot be built (a users file
// that does not exist, a listener on a port in use) leaves the server
// exactly as it was, with one error line naming the file.
func TestReloadBrokenConfig(t *testing.T) {
	ts := startServer(t, nil)
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	before := addrStrings(ts.srv.Addrs())
	for _, tc := range []struct {
		name   string
		mutate func(*config.Config)
		want   string
	}{
		{"users file missing", func(c *config.Config) { c.Auth.UsersFile = filepath.Join(t.TempDir(), "missing.toml") }, "auth.users_file"},
		{"listener on a port in use", func(c *config.Config) {
			c.Listeners = append(c.Listeners, config.Listener{Address: busy.Addr().String()})
		}, "listener[1].address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := cloneConfig(ts.cfg)
			next.File = "/etc/cloudftpd/broken.toml"
			next.Server.Banner = "must not be seen"
			tc.mutate(next)
			logsBefore := ts.logs.String()
			err := ts.srv.Reload(t.Context(), next)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload: %v, want an error naming %s", err, tc.want)
			}
			newLogs := strings.TrimPrefix(ts.logs.String(), logsBefore)
			var lines []string
			for _, l := range strings.Split(newLogs, "\n") {
				if strings.Contains(l, "level=ERROR") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "config not reloaded") ||
				!strings.Contains(lines[0], "file=/etc/cloudftpd/broken.toml") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("error lines logged by the failed reload: %q", lines)
			}
			if strings.Contains(newLogs, "config reloaded") {
				t.Errorf("a failed reload logged success:\n%s", newLogs)
			}
			if got := addrStrings(ts.srv.Addrs()); got != before {
				t.Errorf("listeners changed from %s to %s", before, got)
			}
			if code, msg := greeting(t, ts.Addr); code != 220 || strings.Contains(msg, "must not be seen") {
				t.Errorf("greeting after the failed reload: %d %q", code, msg)
			}
			rc := dialRaw(t, ts.Addr)
			rc.login("alice", "alice-secret")
		})
	}
}

// TestReloadUsers: the users file is re-read; new logins see the change at
// once, a session logged in before keeps its user.
func TestReloadUsers(t *testing.T) {
	ts := startServer(t, nil)
	bob := dialRaw(t, ts.Addr)
	bob.login("bob", "bob-secret")

	path := ts.cfg.Path(ts.cfg.Auth.UsersFile)
	uf, err := auth.LoadUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := uf.Delete("bob"); err != nil {
		t.Fatal(err)
	}
	if err := uf.Add("carol", hashFor(t, "carol-secret"), "carol", mustPerms(t, "all")); err != nil {
		t.Fatal(err)
	}
	if err := uf.Save(path); err != nil {
		t.Fatal(err)
	}
	ts.reload(nil)

	carol := dialRaw(t, ts.Addr)
	carol.login("carol", "carol-secret")
	again := dialRaw(t, ts.Addr)
	again.must(331, "USER bob")
	again.must(530, "PASS bob-secret")
	bob.must(257, "PWD")
	if !strings.Contains(ts.logs.String(), "users reloaded") {
		t.Error(`no "users reloaded" line`)
	}
}

// TestReloadLogLevel: Options.Level follows log.level through New and
// Reload, before the server even starts.
func TestReloadLogLevel(t *testing.T) {
	cfg := anonymousConfig(t, "warn")
	level := new(slog.LevelVar)
	srv, err := server.New(t.Context(), cfg, server.Options{Level: level})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if level.Level() != slog.LevelWarn {
		t.Errorf("level after New: %v, want WARN", level.Level())
	}
	if err := srv.Reload(t.Context(), anonymousConfig(t, "debug")); err != nil {
		t.Fatal(err)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("level after Reload: %v, want DEBUG", level.Level())
	}
}

// anonymousConfig is an anonymous-only config: no users file at all.
func anonymousConfig(t *testing.T, level string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[[listener]]
address = "127.0.0.1:0"
[storage]
root = %q
[auth]
anonymous = true
[log]
level = %q
`, t.TempDir(), level)))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAnonymousOnly serves a config with anonymous logins and no users
// file: check-config and doctor accept it, so serve must too.
func TestAnonymousOnly(t *testing.T) {
	cfg := anonymousConfig(t, "info")
	if err := os.MkdirAll(filepath.Join(cfg.Path(cfg.Storage.Root), "pub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Path(cfg.Storage.Root), "pub", "readme.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(t.Context(), cfg, server.Options{})
	if err != nil {
		t.Fatalf("server.New, anonymous only: %v", err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rc := dialRaw(t, srv.Addrs()[0].String())
	rc.login("anonymous", "guest@example.com")
	dc := rc.pasv()
	rc.must(150, "RETR readme.txt")
	if got := string(readAll(t, dc)); got != "hello" {
		t.Errorf("anonymous RETR: %q", got)
	}
	rc.expect(226)
	other := dialRaw(t, srv.Addrs()[0].String())
	other.must(331, "USER alice")
	other.must(530, "PASS alice-secret")
}

func mustPerms(t *testing.T, perms ...string) auth.Permissions {
	t.Helper()
	p, err := auth.ParsePermissions(perms)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReloadProxyProtocol: turning PROXY protocol on for a listener that
// keeps its socket applies to the next connection: one from a trusted
// source now needs a header, while a session from before carries on.
func TestReloadProxyProtocol(t *testing.T) {
	ts := startServer(t, nil)
	old := dialRaw(t, ts.Addr)
	old.login("alice", "alice-secret")

	ts.reload(func(c *config.Config) {
		c.Listeners[0].ProxyProtocol = true
		c.Listeners[0].ProxyTrusted = []string{"127.0.0.0/8"}
	})

	withHeader, err := net.DialTimeout("tcp", ts.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer withHeader.Close()
	withHeader.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(withHeader, "PROXY TCP4 198.51.100.9 127.0.0.1 40000 21\r\n")
	if code, msg, err := textproto.NewReader(bufio.NewReader(withHeader)).ReadResponse(220); err != nil {
		t.Errorf("with a PROXY header after the reload: %d %q %v", code, msg, err)
	}

	without, err := net.DialTimeout("tcp", ts.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer without.Close()
	without.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(without, "USER alice\r\n")
	if b, _ := io.ReadAll(without); len(b) != 0 {
		t.Errorf("a trusted source without a PROXY header was served: %q", b)
	}
	waitFor(t, func() bool {
		return strings.Contains(ts.logs.String(), "trusted balancer sent no valid PROXY protocol header")
	})
	old.must(257, "PWD")
}
