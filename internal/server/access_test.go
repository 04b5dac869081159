package server_test

// Per-user access limits end to end: the users file's disabled, expires,
// allowed_networks/denied_networks, max_sessions and file name patterns,
// applied by a running server (after a reload, as SIGHUP does) to real
// clients: raw sockets with PROXY headers, Python's ftplib, curl and
// jlaffaye/ftp.

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// setLimits edits a user's limits in the served users file, the way
// "cloudftpd user set" does, and reloads the server.
func (ts *testServer) setLimits(name string, edit func(*auth.LimitsEntry)) {
	ts.t.Helper()
	path := ts.cfg.Path(ts.cfg.Auth.UsersFile)
	uf, err := auth.LoadUsersFile(path)
	if err != nil {
		ts.t.Fatal(err)
	}
	if err := uf.SetLimits(name, edit); err != nil {
		ts.t.Fatal(err)
	}
	if err := uf.Save(path); err != nil {
		ts.t.Fatal(err)
	}
	ts.reload(nil)
}

// TestUserNetworksBehindProxy: allowed_networks is checked against the
// client address a trusted balancer's PROXY header names, not the
// balancer's: a client inside logs in, one outside gets the 530 of a wrong
// password, the log says why, and the defender scores each refusal as a
// failed login until it bans the address.
func TestUserNetworksBehindProxy(t *testing.T) {
	ts := defended(t, t.TempDir(), proxyConfig(false, nil))
	// 127.0.0.1, the balancer, is outside too: if the server looked at
	// the socket's address, no one could log in.
	ts.setLimits("alice", func(e *auth.LimitsEntry) { e.AllowedNetworks = []string{"203.0.113.0/24"} })
	const inside, outside = "203.0.113.7", "198.51.100.9"

	in := dialProxied(t, ts.Addr, proxyV2(t, inside, 40000, ts.Addr))
	in.login("alice", "alice-secret")
	in.must(257, "PWD")

	// The threshold is 10 points at 2 a failed login: the fifth refusal
	// bans. max_login_failures (3) ends the first session.
	// The fifth refused PASS may see its session closed by the ban
	// instead of a reply.
	attempts := 0
	for conn := 0; attempts < 5; conn++ {
		rc := dialProxied(t, ts.Addr, proxyV1(t, outside, 41000+conn, ts.Addr))
		for attempts < 5 {
			rc.must(331, "USER alice")
			rc.tp.PrintfLine("PASS alice-secret")
			attempts++
			code, msg, err := rc.tp.ReadResponse(0)
			switch {
			case err != nil && attempts == 5:
				// closed by the ban
			case code == 530 && msg == "Login incorrect.":
				continue
			case code == 421 && attempts == 3:
				// max_login_failures ends the session, as for wrong
				// passwords.
			default:
				t.Fatalf("refusal %d from %s: %d %q %v, want 530 \"Login incorrect.\"", attempts, outside, code, msg, err)
			}
			break
		}
	}
	waitFor(t, func() bool { return strings.Contains(ts.logs.String(), `msg="defender: banned"`) })
	logs := ts.logs.String()
	if !strings.Contains(logs, `reason="client 198.51.100.9 is not in alice's allowed_networks"`) {
		t.Error("the refusal is not logged with its reason")
	}
	if !logLineWith(logs, `msg="defender: banned"`, "prefix=198.51.100.9/32", "login_failed x5") {
		t.Errorf("the ban does not name the header's address and 5 failed logins:\n%s", logs)
	}
	// Banned: the next connection claiming that client is closed at once.
	c := dialFrom(t, balancerAddr, ts.Addr)
	c.Write(proxyV2(t, outside, 42000, ts.Addr))
	refusedQuietly(t, "connection from the banned client", c, 5*time.Second)
	// The client inside was not touched.
	in.must(257, "PWD")
	again := dialProxied(t, ts.Addr, proxyV2(t, inside, 40001, ts.Addr))
	again.login("alice", "alice-secret")
}

// logLineWith reports whether one line of logs holds all of parts.
func logLineWith(logs string, parts ...string) bool {
	for _, l := range strings.Split(logs, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// ftplibLogins tries each "user:password" of argv[3:] with Python's
// ftplib and prints what the server answered to each, as JSON.
const ftplibLogins = `
import ftplib, json, sys
host, port = sys.argv[1], int(sys.argv[2])
res = {}
for pair in sys.argv[3:]:
    user, pw = pair.split(":", 1)
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=20)
    try:
        res[pair] = ftp.login(user, pw)
        ftp.quit()
    except ftplib.all_errors as e:
        res[pair] = type(e).__name__ + ": " + str(e)
        ftp.close()
print(json.dumps(res))
`

// ftplibTry runs ftplibLogins for pairs.
func ftplibTry(t *testing.T, ts *testServer, pairs ...string) map[string]string {
	t.Helper()
	python := clienttest.Need(t, "python3")
	work := t.TempDir()
	script := filepath.Join(work, "logins.py")
	if err := os.WriteFile(script, []byte(ftplibLogins), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, work, "", python, append([]string{script, "127.0.0.1", ts.Port()}, pairs...)...)
	var res map[string]string
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("script output: %v\n%s", err, r)
	}
	return res
}

// TestUserDisabledAndExpired: a disabled or expired account is refused
// with the 530 of a wrong password (Python's ftplib sees the same
// error_perm for both), the log says why, sessions open before the reload
// carry on, and enabling the account again lets it in.
func TestUserDisabledAndExpired(t *testing.T) {
	ts := startServer(t, nil)
	open, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
	check(t, "STOR before", open.Stor("before.txt", strings.NewReader("one")))

	ts.setLimits("alice", func(e *auth.LimitsEntry) { e.Disabled = true })
	ts.setLimits("bob", func(e *auth.LimitsEntry) { e.Expires = time.Now().Add(-time.Hour).Truncate(time.Second) })
	ts.setLimits("reader", func(e *auth.LimitsEntry) { e.Expires = time.Now().Add(24 * time.Hour).Truncate(time.Second) })

	res := ftplibTry(t, ts, "alice:alice-secret", "alice:wrong", "bob:bob-secret", "bob:wrong", "reader:reader-secret")
	const refused = "error_perm: 530 Login incorrect."
	for pair, want := range map[string]string{
		"alice:alice-secret":   refused,
		"alice:wrong":          refused,
		"bob:bob-secret":       refused,
		"bob:wrong":            refused,
		"reader:reader-secret": "230 Login successful.",
	} {
		if res[pair] != want {
			t.Errorf("%s: %q, want %q", pair, res[pair], want)
		}
	}
	logs := ts.logs.String()
	for _, want := range []string{`reason="alice is disabled"`, `reason="bob expired at `} {
		if !logLineWith(logs, `msg="login refused"`, want, "password=right") {
			t.Errorf("no log line with %s", want)
		}
	}
	if !logLineWith(logs, `msg="login failed"`, "user=alice", `reason="bad password"`) {
		t.Error("a wrong password of a disabled account is not logged as a wrong password")
	}

	// The session alice opened before is left alone by the reload.
	check(t, "STOR after the reload", open.Stor("after.txt", strings.NewReader("two")))
	if got := string(ts.read("alice/after.txt")); got != "two" {
		t.Errorf("after.txt = %q", got)
	}

	ts.setLimits("alice", func(e *auth.LimitsEntry) { e.Disabled = false })
	if got := ftplibTry(t, ts, "alice:alice-secret")["alice:alice-secret"]; got != "230 Login successful." {
		t.Errorf("after enabling alice: %q", got)
	}
}

// ftplibHold logs in with Python's ftplib, says "in" and waits to be
// killed.
const ftplibHold = `
import ftplib, sys
ftp = ftplib.FTP()
ftp.connect(sys.argv[1], int(sys.argv[2]), timeout=60)
ftp.login(sys.argv[3], sys.argv[4])
print("in", flush=True)
sys.stdin.read()
`

// holdSession starts a Python client process logged in as user on addr;
// kill it with kill9.
func holdSession(t *testing.T, addr, user, pass string) *exec.Cmd {
	t.Helper()
	python := clienttest.Need(t, "python3")
	script := filepath.Join(t.TempDir(), "hold.py")
	if err := os.WriteFile(script, []byte(ftplibHold), 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(python, script, host, port, user, pass)
	stdin, err := cmd.StdinPipe() // open until the process dies: it blocks reading
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testLogWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "in\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("python client did not log in as %s: %q", user, line)
	}
	return cmd
}

// kill9 kills a client process as kill -9 does; the kernel then closes
// its socket, without a QUIT.
func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// TestMaxSessionsServerWide: max_sessions counts a user's sessions on
// every listener together; the one over the limit gets 421 (jlaffaye's
// Login fails with it) and is closed; slots come back when clients are
// killed with SIGKILL, and a reload keeps the count.
func TestMaxSessionsServerWide(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Listeners = append(c.Listeners, config.Listener{Address: "127.0.0.1:0"})
	})
	addrs := ts.srv.Addrs()
	a, b := addrs[0].String(), addrs[1].String()
	ts.setLimits("alice", func(e *auth.LimitsEntry) { e.MaxSessions = 2 })

	p1 := holdSession(t, a, "alice", "alice-secret")
	p2 := holdSession(t, b, "alice", "alice-secret")
	tryLogin := func(addr string) error {
		c, err := ftp.Dial(addr, ftp.DialWithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Quit()
		return c.Login("alice", "alice-secret")
	}
	for _, addr := range []string{a, b} {
		err := tryLogin(addr)
		var pe *textproto.Error
		if err == nil || !errors.As(err, &pe) || pe.Code != 421 || pe.Msg != "Too many sessions for alice (at most 2 at a time); try again later." {
			t.Errorf("third session on %s: %v, want 421 Too many sessions", addr, err)
		}
	}
	// Python's ftplib takes it for a transient error, not a wrong password.
	if got := ftplibTry(t, ts, "alice:alice-secret")["alice:alice-secret"]; got != "error_temp: 421 Too many sessions for alice (at most 2 at a time); try again later." {
		t.Errorf("ftplib over the limit: %q", got)
	}
	// Other users are not counted as alice.
	bob, _ := dialJlaffaye(t, ts, "bob", "bob-secret")
	// A reload keeps the count (and the limit).
	ts.reload(nil)
	if err := tryLogin(a); err == nil {
		t.Error("after a reload, a third session of alice was let in")
	}
	if !strings.Contains(ts.logs.String(), "alice already has max_sessions = 2 sessions open") {
		t.Error("the refusal is not logged with its reason")
	}

	kill9(t, p1)
	waitFor(t, func() bool { return tryLogin(b) == nil })
	kill9(t, p2)
	p3 := holdSession(t, a, "alice", "alice-secret")
	p4 := holdSession(t, b, "alice", "alice-secret")
	if err := tryLogin(a); err == nil {
		t.Error("a third session after the kills was let in")
	}
	kill9(t, p3)
	kill9(t, p4)
	waitFor(t, func() bool { return ts.srv.SessionCount() == 1 }) // bob's
	check(t, "bob still there", bob.NoOp())
	for range 2 {
		holdSession(t, a, "alice", "alice-secret")
	}
}

// TestNameRulesRealClients: uploads (curl), renames and new directories
// (jlaffaye/ftp) whose names the patterns refuse get 553 with the
// reason, and leave nothing behind: no file, no temporary file, no S3
// multipart upload, and the old file untouched.
func TestNameRulesRealClients(t *testing.T) {
	curl := clienttest.Need(t, "curl")
	forBackends(t, []backend{localDisk, s3Versitygw}, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, nil)
		ts.write("alice/keep.exe", []byte("from before the rule"))
		ts.write("alice/incoming/data.csv", []byte("a,b\n"))
		ts.setLimits("alice", func(e *auth.LimitsEntry) {
			e.DeniedPatterns = []string{"*.exe"}
			e.Dirs = []auth.DirEntry{{Path: "/incoming", AllowedPatterns: []string{"*.csv"}}}
		})
		local := t.TempDir()
		up := filepath.Join(local, "up")
		if err := os.WriteFile(up, []byte("new content"), 0o644); err != nil {
			t.Fatal(err)
		}
		url := "ftp://alice:alice-secret@127.0.0.1:" + ts.Port() + "/"
		for _, tc := range []struct{ target, reply string }{
			{"tool.exe", "553 File name not allowed here: *.exe files are refused."},
			{"TOOL.EXE", "553 File name not allowed here: *.exe files are refused."},
			{"keep.exe", "553 File name not allowed here: *.exe files are refused."},
			{"incoming/report.xls", "553 File name not allowed here: only *.csv files are accepted in /incoming."},
		} {
			r := runTool(t, local, "", curl, "-q", "-s", "-S", "-v", "--max-time", "20", "-T", up, url+tc.target)
			if r.OK() || !strings.Contains(r.Stderr, "< "+tc.reply) {
				t.Errorf("curl -T %s: want a failure with %q:\n%s", tc.target, tc.reply, r)
			}
		}
		mustRun(t, local, "", curl, "-q", "-s", "-S", "--max-time", "20", "-T", up, url+"incoming/new.csv")

		c, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
		for what, err := range map[string]error{
			"RNTO data.exe":     c.Rename("incoming/data.csv", "incoming/data.exe"),
			"RNTO keep.txt":     c.Rename("keep.exe", "incoming/keep.txt"),
			"MKD incoming/sub":  c.MakeDir("incoming/sub"),
			"MKD programs.exe":  c.MakeDir("programs.exe"),
			"STOR via jlaffaye": c.Stor("incoming/x.EXE", strings.NewReader("x")),
			"APPE keep.exe":     c.Append("keep.exe", strings.NewReader("more")),
		} {
			var pe *textproto.Error
			if !errors.As(err, &pe) || pe.Code != 553 || !strings.HasPrefix(pe.Msg, "File name not allowed here: ") {
				t.Errorf("%s: %v, want 553 File name not allowed here", what, err)
			}
		}
		check(t, "allowed STOR", c.Stor("notes.txt", strings.NewReader("n")))

		if got := string(ts.read("alice/keep.exe")); got != "from before the rule" {
			t.Errorf("keep.exe = %q", got)
		}
		if got := string(ts.read("alice/incoming/data.csv")); got != "a,b\n" {
			t.Errorf("data.csv = %q", got)
		}
		if got := string(ts.read("alice/incoming/new.csv")); got != "new content" {
			t.Errorf("new.csv = %q", got)
		}
		// Exactly these: nothing refused was created, not even a
		// temporary file.
		sameTree(t, "alice's home", ts.store.tree(t, "alice"), map[string]string{
			"keep.exe":          "from before the rule",
			"notes.txt":         "n",
			"incoming":          "<dir>",
			"incoming/data.csv": "a,b\n",
			"incoming/new.csv":  "new content",
		})
		if b.isS3() {
			if pending := ts.bucket().srv.PendingUploads(t); len(pending) > 0 {
				t.Errorf("multipart uploads left open: %v", pending)
			}
		}
	})
}
