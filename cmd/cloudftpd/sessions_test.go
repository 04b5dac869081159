package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// TestRunningServerCommands: "sessions", "sessions --kill", "reload" and
// "ban list|add|remove" against a real running server through its
// control socket (found from --config), with a real FTP client logged
// in; failures exit 1 with the server's reason.
func TestRunningServerCommands(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "files")
	os.MkdirAll(filepath.Join(root, "alice"), 0o755)
	uf := &auth.UsersFile{}
	hash, _ := auth.HashPassword("alice-secret")
	perms, _ := auth.ParsePermissions([]string{"all"})
	if err := uf.Add("alice", hash, "alice", perms); err != nil {
		t.Fatal(err)
	}
	if err := uf.Save(filepath.Join(dir, "users.toml")); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cloudftpd.toml")
	cfgText := fmt.Sprintf(`
[server]
state_dir = "state"
login_failure_delay = "10ms"

[[listener]]
address = "127.0.0.1:0"

[storage]
root = %q

[auth]
users_file = "users.toml"
`, root)
	os.WriteFile(cfgPath, []byte(cfgText), 0o600)
	n := startNode(t, cfgPath)
	addr, logs := n.addr, n.logs
	runCmd := func(args ...string) (int, string, string) {
		return runCLI("", append(args, "--config", cfgPath)...)
	}

	if code, out, errOut := runCmd("sessions"); code != 0 || strings.TrimSpace(out) != "no sessions" {
		t.Fatalf("sessions with none: %d %q %q", code, out, errOut)
	}
	fc, err := ftp.Dial(addr, ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Quit()
	if err := fc.Login("alice", "alice-secret"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd("sessions")
	m := regexp.MustCompile(`(?m)^(\S+)\s+alice\s+127\.0\.0\.1\s+127\.0\.0\.1:0\s+no\s+[A-Z]+\s`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("sessions with alice: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := runCmd("sessions", "--kill", "nonesuch"); code != 1 || !strings.Contains(errOut, "no session with id nonesuch") {
		t.Errorf("kill of an unknown session: %d %q", code, errOut)
	}
	if code, out, errOut := runCmd("sessions", "--kill", m[1]); code != 0 || !strings.Contains(out, "session "+m[1]+" of alice from 127.0.0.1 ended") {
		t.Errorf("kill: %d %q %q", code, out, errOut)
	}
	if err := fc.NoOp(); err == nil {
		t.Error("the killed session still answers")
	}

	// Bans on the real defender.
	if code, out, errOut := runCmd("ban", "add", "203.0.113.5", "--for", "1h", "--reason", "cli test"); code != 0 || !strings.Contains(out, "203.0.113.5/32") {
		t.Errorf("ban add: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd("ban", "list"); code != 0 || !strings.Contains(out, "203.0.113.5/32") || !strings.Contains(out, "cli test") {
		t.Errorf("ban list: %d %q", code, out)
	}
	if code, _, errOut := runCmd("ban", "remove", "203.0.113.5"); code != 0 {
		t.Errorf("ban remove: %d %q", code, errOut)
	}
	if code, _, errOut := runCmd("ban", "remove", "203.0.113.5"); code != 1 || errOut == "" {
		t.Errorf("ban remove of a lifted ban: %d %q", code, errOut)
	}

	// Reload: the new banner greets the next client; a broken file is
	// refused with the reason and the server carries on.
	os.WriteFile(cfgPath, []byte(strings.Replace(cfgText, "[server]\n", "[server]\nbanner = \"reloaded by the CLI\"\n", 1)), 0o600)
	if code, out, errOut := runCmd("reload"); code != 0 || !strings.Contains(out, "reloaded "+cfgPath) {
		t.Fatalf("reload: %d %q %q", code, out, errOut)
	}
	if g := greet(t, addr); !strings.Contains(g, "reloaded by the CLI") {
		t.Errorf("greeting after reload: %q", g)
	}
	os.WriteFile(cfgPath, []byte(cfgText+"\n[server]\n"), 0o600)
	// (--config would not load: name the socket.)
	var errb bytes.Buffer
	code = run([]string{"reload", "--socket", filepath.Join(dir, "state", "control.sock")}, nil, io.Discard, &errb)
	if errOut := errb.String(); code != 1 || !strings.Contains(errOut, "config not reloaded") || !strings.Contains(errOut, "already been defined") {
		t.Errorf("reload of a broken config: %d %q", code, errOut)
	}
	if g := greet(t, addr); !strings.Contains(g, "reloaded by the CLI") {
		t.Errorf("greeting after a failed reload: %q", g)
	}
	// The socket's changes are audit-logged like the API's.
	if !strings.Contains(logs.String(), `msg="api: admin action" socket=control-socket`) {
		t.Errorf("no audit line for the socket's changes:\n%s", logs)
	}
}

// greet reads a server's greeting.
func greet(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := textproto.NewReader(bufio.NewReader(c)).ReadResponse(220)
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return msg
}
