package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// userRun runs `cloudftpd user ARGS` with stdin and returns the exit code
// and output.
func userRun(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runUser(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func hashOf(t *testing.T, path, name string) string {
	t.Helper()
	f, err := auth.LoadUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range f.Users() {
		if e.Name == name {
			return e.PasswordHash
		}
	}
	t.Fatalf("no user %q in %s", name, path)
	return ""
}

func verify(t *testing.T, hash, pw string) bool {
	t.Helper()
	ok, err := auth.VerifyPassword(hash, pw)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestUserRoundTrip(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.toml")
	steps := []struct {
		what       string
		stdin      string
		args       []string
		wantCode   int
		wantStdout string // substring
		wantStderr string // substring
	}{
		{
			what: "add, flags after the name", stdin: "s3cret\n",
			args:     []string{"add", "alice", "--users", users, "--home", "files/alice", "--perm", "read, upload", "--password-stdin"},
			wantCode: 0, wantStdout: "added user alice (home files/alice, permissions list,download,upload)\n",
		},
		{
			what: "add, flags first, no trailing newline", stdin: "pw with spaces ",
			args:     []string{"add", "--users", users, "--password-stdin", "bob"},
			wantCode: 0, wantStdout: "added user bob (home bob, permissions all)\n",
		},
		{
			what: "add dropbox", stdin: "drop\r\n",
			args:     []string{"add", "-users=" + users, "-perm=dropbox", "-password-stdin", "carol"},
			wantCode: 0, wantStdout: "permissions dropbox)",
		},
		{
			what: "duplicate add", stdin: "x\n",
			args:     []string{"add", "alice", "--users", users, "--password-stdin"},
			wantCode: 1, wantStderr: `user "alice" already exists`,
		},
		{
			what: "list", args: []string{"list", "--users", users},
			wantCode: 0, wantStdout: "alice  files/alice  list,download,upload  active\nbob    bob          all                   active\ncarol  carol        dropbox               active\n",
		},
		{
			what: "passwd", stdin: "n3w\n",
			args:     []string{"passwd", "alice", "--users", users, "--password-stdin"},
			wantCode: 0, wantStdout: "changed password of user alice",
		},
		{
			what: "passwd unknown user", stdin: "n3w\n",
			args:     []string{"passwd", "zed", "--users", users, "--password-stdin"},
			wantCode: 1, wantStderr: `no user "zed"`,
		},
		{
			what: "del", args: []string{"del", "bob", "--users", users},
			wantCode: 0, wantStdout: "deleted user bob",
		},
		{
			what: "del again", args: []string{"del", "bob", "--users", users},
			wantCode: 1, wantStderr: `no user "bob"`,
		},
	}
	for _, s := range steps {
		code, stdout, stderr := userRun(t, s.stdin, s.args...)
		if code != s.wantCode || !strings.Contains(stdout, s.wantStdout) || !strings.Contains(stderr, s.wantStderr) {
			t.Fatalf("%s: exit %d, want %d\nstdout: %q (want %q)\nstderr: %q (want %q)",
				s.what, code, s.wantCode, stdout, s.wantStdout, stderr, s.wantStderr)
		}
	}

	if h := hashOf(t, users, "alice"); !verify(t, h, "n3w") || verify(t, h, "s3cret") {
		t.Error("alice: new password does not verify, or old one still does")
	}
	if h := hashOf(t, users, "carol"); !verify(t, h, "drop") || !strings.HasPrefix(h, "$argon2id$") {
		t.Errorf("carol: hash %q does not verify \"drop\" (CRLF must be stripped)", h)
	}
	fi, err := os.Stat(users)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %v, want 0600", fi.Mode().Perm())
	}
	_, stdout, _ := userRun(t, "", "list", "--users", users)
	if strings.Contains(stdout, "bob") {
		t.Errorf("bob still listed after del:\n%s", stdout)
	}
}

func TestUserPasswordWithSpaces(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.toml")
	if code, _, stderr := userRun(t, " two words \n", "add", "bob", "--users", users, "--password-stdin"); code != 0 {
		t.Fatalf("add: exit %d: %s", code, stderr)
	}
	if !verify(t, hashOf(t, users, "bob"), " two words ") {
		t.Error("only the newline may be stripped from the password")
	}
}

func TestUserErrors(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users.toml")
	tests := []struct {
		what       string
		stdin      string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"no subcommand", "", nil, 2, "Usage:"},
		{"unknown subcommand", "", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"add without name", "pw\n", []string{"add", "--users", users, "--password-stdin"}, 2, "want NAME"},
		{"add two names", "pw\n", []string{"add", "a", "b", "--users", users, "--password-stdin"}, 2, "want NAME"},
		{"list with a name", "", []string{"list", "alice", "--users", users}, 2, "want no arguments"},
		{"unknown flag", "", []string{"add", "alice", "--colour", "red"}, 2, "-colour"},
		{"flag not valid for del", "", []string{"del", "alice", "--home", "x"}, 2, "-home"},
		{"unknown permission", "pw\n", []string{"add", "carol", "--users", users, "--perm", "read,fly", "--password-stdin"}, 2, `"fly" is not a permission`},
		{"empty password", "\n", []string{"add", "carol", "--users", users, "--password-stdin"}, 1, "empty password"},
		{"empty stdin", "", []string{"add", "carol", "--users", users, "--password-stdin"}, 1, "standard input is empty"},
		{"not a terminal", "pw\n", []string{"add", "carol", "--users", users}, 1, "--password-stdin"},
		{"bad name", "pw\n", []string{"add", "car ol", "--users", users, "--password-stdin"}, 1, "whitespace"},
		{"bad home", "pw\n", []string{"add", "carol", "--home", "../etc", "--users", users, "--password-stdin"}, 1, `".."`},
		{"list missing file", "", []string{"list", "--users", users}, 1, "no users file at " + users},
		{"del from missing file", "", []string{"del", "x", "--users", users}, 1, "no users file"},
		{"bad config", "", []string{"list", "--config", filepath.Join(dir, "nope.toml")}, 1, "nope.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.what, func(t *testing.T) {
			code, _, stderr := userRun(t, tt.stdin, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("exit %d, want %d; stderr %q, want it to contain %q", code, tt.wantCode, stderr, tt.wantStderr)
			}
		})
	}
	if _, err := os.Stat(users); err == nil {
		t.Error("failed commands created the users file")
	}
	if code, stdout, _ := userRun(t, "", "help"); code != 0 || !strings.Contains(stdout, "user add NAME") {
		t.Errorf("help: exit %d, %q", code, stdout)
	}
}

const userTestConfig = `
[[listener]]
address = "127.0.0.1:2121"

[storage]
root = "data"

[auth]
users_file = "conf-users.toml"
`

func TestUserFileFromConfig(t *testing.T) {
	confDir := t.TempDir()
	conf := filepath.Join(confDir, "server.toml")
	if err := os.WriteFile(conf, []byte(userTestConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	t.Chdir(work)

	// No --users, no config: users.toml in the working directory.
	if code, _, stderr := userRun(t, "pw\n", "add", "a", "--password-stdin"); code != 0 {
		t.Fatalf("add a: exit %d: %s", code, stderr)
	}
	hashOf(t, filepath.Join(work, "users.toml"), "a")

	// --config: the config's users_file, relative to the config's directory.
	if code, _, stderr := userRun(t, "pw\n", "add", "b", "--config", conf, "--password-stdin"); code != 0 {
		t.Fatalf("add b: exit %d: %s", code, stderr)
	}
	hashOf(t, filepath.Join(confDir, "conf-users.toml"), "b")

	// cloudftpd.toml in the working directory is used without --config.
	if err := os.WriteFile(filepath.Join(work, "cloudftpd.toml"), []byte(userTestConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := userRun(t, "pw\n", "add", "c", "--password-stdin"); code != 0 {
		t.Fatalf("add c: exit %d: %s", code, stderr)
	}
	hashOf(t, filepath.Join(work, "conf-users.toml"), "c")

	// --users wins over everything.
	explicit := filepath.Join(t.TempDir(), "explicit.toml")
	if code, _, stderr := userRun(t, "pw\n", "add", "d", "--config", conf, "--users", explicit, "--password-stdin"); code != 0 {
		t.Fatalf("add d: exit %d: %s", code, stderr)
	}
	hashOf(t, explicit, "d")
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantH   string
	}{
		{[]string{"alice", "--home", "x"}, []string{"alice"}, "x"},
		{[]string{"--home", "x", "alice"}, []string{"alice"}, "x"},
		{[]string{"a", "--home=x", "b"}, []string{"a", "b"}, "x"},
		{[]string{"--home", "x", "--", "--home"}, []string{"--home"}, "x"},
		{[]string{"a", "--", "-b", "c"}, []string{"a", "-b", "c"}, ""},
		{nil, nil, ""},
	}
	for _, tt := range tests {
		var f userFlags
		set := newTestFlagSet(&f)
		pos, err := parseInterspersed(set, tt.args)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if strings.Join(pos, "|") != strings.Join(tt.wantPos, "|") || f.home != tt.wantH {
			t.Errorf("%q: positional %q home %q, want %q and %q", tt.args, pos, f.home, tt.wantPos, tt.wantH)
		}
	}
}

func newTestFlagSet(f *userFlags) *flag.FlagSet {
	set := flag.NewFlagSet("test", flag.ContinueOnError)
	userCommands["add"].flags(set, f)
	return set
}
