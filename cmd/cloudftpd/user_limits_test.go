package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// limitsOf loads the users file as the server does and returns name's
// limits.
func limitsOf(t *testing.T, path, name string) auth.Limits {
	t.Helper()
	f, err := auth.LoadUsersFile(path)
	if err != nil {
		b, _ := os.ReadFile(path)
		t.Fatalf("%v\n%s", err, b)
	}
	a := auth.NewFileAuthenticator(f, auth.Options{})
	u, err := a.Authenticate(t.Context(), name, name+"-pw")
	if err != nil {
		t.Fatal(err)
	}
	return u.Limits
}

// usersFileCLI returns a runner of `cloudftpd user` against the users
// file users that fails t unless the command exits with wantCode, and
// returns what it printed.
func usersFileCLI(t *testing.T, users string) func(wantCode int, stdin string, args ...string) string {
	return func(wantCode int, stdin string, args ...string) string {
		t.Helper()
		code, stdout, stderr := userRun(t, stdin, append(args, "--users", users)...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout, stderr)
		}
		return stdout + stderr
	}
}

// TestUserSetLimits: `user set` and limit flags on `user add` write the
// keys the server reads, leave the keys not named alone, and `user list`
// shows whether each account can log in.
func TestUserSetLimits(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.toml")
	run := usersFileCLI(t, users)
	run(0, "alice-pw\n", "add", "alice", "--password-stdin")
	out := run(0, "bob-pw\n", "add", "bob", "--password-stdin", "--max-sessions", "3", "--denied-patterns", "*.exe, *.bat")
	if !strings.Contains(out, "user bob: active, max_sessions 3, denied_patterns *.exe,*.bat") {
		t.Errorf("add with limits printed %q", out)
	}
	out = run(0, "", "set", "alice", "--allowed-networks", "203.0.113.0/24,198.51.100.7", "--expires", "2099-06-30", "--max-sessions", "2")
	if !strings.Contains(out, "user alice: active until 2099-06-30, allowed_networks 203.0.113.0/24,198.51.100.7, max_sessions 2") {
		t.Errorf("set printed %q", out)
	}
	l := limitsOf(t, users, "alice")
	wantExp := time.Date(2099, 6, 30, 0, 0, 0, 0, time.Local)
	if !l.Expires.Equal(wantExp) || l.MaxSessions != 2 || l.Disabled ||
		len(l.AllowedNetworks) != 2 || l.AllowedNetworks[0] != netip.MustParsePrefix("203.0.113.0/24") || l.AllowedNetworks[1] != netip.MustParsePrefix("198.51.100.7/32") {
		t.Errorf("alice's limits after set: %+v", l)
	}

	// Only the flags given change.
	run(0, "", "set", "alice", "--disable")
	l = limitsOf(t, users, "alice")
	if !l.Disabled || l.MaxSessions != 2 || len(l.AllowedNetworks) != 2 {
		t.Errorf("after --disable: %+v", l)
	}
	run(0, "", "set", "bob", "--expires", "2001-01-01")
	if out := run(0, "", "list"); !strings.Contains(out, "alice  alice  all          disabled") || !strings.Contains(out, "bob    bob    all          expired 2001-01-01") {
		t.Errorf("list:\n%s", out)
	}

	// Clearing: "" empties a list, never removes the expiry, 0 the bound.
	run(0, "", "set", "alice", "--enable", "--allowed-networks", "", "--expires", "never", "--max-sessions", "0")
	run(0, "", "set", "bob", "--denied-patterns", "", "--expires", "2099-01-02T15:04:05Z")
	if l := limitsOf(t, users, "alice"); l.Disabled || !l.Expires.IsZero() || l.MaxSessions != 0 || l.AllowedNetworks != nil {
		t.Errorf("alice after clearing: %+v", l)
	}
	if l := limitsOf(t, users, "bob"); len(l.Dirs) != 0 || l.MaxSessions != 3 || !l.Expires.Equal(time.Date(2099, 1, 2, 15, 4, 5, 0, time.UTC)) {
		t.Errorf("bob after clearing patterns: %+v", l)
	}
	if out := run(0, "", "list"); !strings.Contains(out, "alice  alice  all          active\n") || !strings.Contains(out, "bob    bob    all          active until 2099-01-02T15:04:05Z\n") {
		t.Errorf("list after clearing:\n%s", out)
	}

	// Mistakes: exit 2 with the reason; the file is not touched.
	before, _ := os.ReadFile(users)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set", "alice"}, "nothing to set"},
		{[]string{"set", "alice", "--allowed-networks", "10.0.0.0/33"}, `allowed_networks: "10.0.0.0/33" is not a network`},
		{[]string{"set", "alice", "--expires", "30/06/2027"}, `--expires: "30/06/2027" is not a date`},
		{[]string{"set", "alice", "--max-sessions", "-1"}, "--max-sessions: must be 0"},
		{[]string{"set", "alice", "--disable", "--enable"}, "contradict"},
		{[]string{"set", "alice", "--denied-patterns", "[x"}, `denied_patterns: "[x" is not a file name pattern`},
		{[]string{"add", "carol", "--password-stdin", "--expires", "soon"}, `"soon" is not a date`},
	} {
		if out := run(2, "carol-pw\n", tc.args...); !strings.Contains(out, tc.want) {
			t.Errorf("%v: %q, want it to say %q", tc.args, out, tc.want)
		}
	}
	if out := run(1, "", "set", "zed", "--disable"); !strings.Contains(out, `no user "zed"`) {
		t.Errorf("set of an unknown user: %q", out)
	}
	if after, _ := os.ReadFile(users); string(after) != string(before) {
		t.Error("a refused command changed the users file")
	}
}

// TestUserSetDirsAndSizes: --dir edits [[user.dir]] rules (created,
// changed, removed, dropped when emptied) and the size, count and age
// flags write the keys the server reads; mistakes leave the file alone.
func TestUserSetDirsAndSizes(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.toml")
	run := usersFileCLI(t, users)
	dirs := func(l auth.Limits) map[string]auth.DirRule {
		m := map[string]auth.DirRule{}
		for _, d := range l.Dirs {
			m[d.Dir] = d
		}
		return m
	}
	run(0, "acme-pw\n", "add", "acme", "--password-stdin", "--denied-patterns", "*.exe")
	out := run(0, "", "set", "acme", "--dir", "/incoming/", "--allowed-patterns", "*.csv,*.txt", "--retention", "30d",
		"--quota-bytes", "10GiB", "--quota-files", "5000", "--max-file-size", "2GiB", "--upload-rate", "5MiB", "--download-rate", "1MiB")
	for _, want := range []string{"denied_patterns *.exe", "quota_bytes 10GiB", "quota_files 5000", "max_file_size 2GiB", "upload_rate 5MiB", "download_rate 1MiB", "dir /incoming (allowed_patterns *.csv,*.txt; retention 30d)"} {
		if !strings.Contains(out, want) {
			t.Errorf("set printed %q, want it to include %q", out, want)
		}
	}
	l := limitsOf(t, users, "acme")
	const gib, mib = 1 << 30, 1 << 20
	if l.QuotaBytes != 10*gib || l.QuotaFiles != 5000 || l.MaxFileSize != 2*gib || l.UploadRate != 5*mib || l.DownloadRate != mib {
		t.Errorf("sizes: %+v", l)
	}
	d := dirs(l)
	if r := d["/incoming"]; len(r.AllowedPatterns) != 2 || r.Retention != 30*24*time.Hour || len(r.DeniedPatterns) != 0 {
		t.Errorf("/incoming rule: %+v", r)
	}
	if r := d["/"]; len(r.DeniedPatterns) != 1 || r.Retention != 0 {
		t.Errorf("the user-wide rule changed: %+v", r)
	}

	// A second directory, then a change that keeps the first one's other keys.
	run(0, "", "set", "acme", "--dir", "/outgoing", "--retention", "7d")
	run(0, "", "set", "acme", "--dir", "/incoming", "--denied-patterns", "*.zip")
	d = dirs(limitsOf(t, users, "acme"))
	if r := d["/incoming"]; len(r.AllowedPatterns) != 2 || len(r.DeniedPatterns) != 1 || r.Retention != 30*24*time.Hour {
		t.Errorf("/incoming after a second edit: %+v", r)
	}
	if r := d["/outgoing"]; r.Retention != 7*24*time.Hour {
		t.Errorf("/outgoing: %+v", r)
	}
	// --dir / is the user-wide rule.
	run(0, "", "set", "acme", "--dir", "/", "--retention", "90d")
	if r := dirs(limitsOf(t, users, "acme"))["/"]; r.Retention != 90*24*time.Hour || len(r.DeniedPatterns) != 1 {
		t.Errorf("user-wide rule via --dir /: %+v", r)
	}

	// Removing: explicitly, or by emptying every key; sizes back to no bound.
	run(0, "", "set", "acme", "--dir", "/outgoing", "--remove-dir")
	run(0, "", "set", "acme", "--dir", "/incoming", "--allowed-patterns", "", "--denied-patterns", "", "--retention", "0",
		"--quota-bytes", "0", "--max-file-size", "", "--upload-rate", "0")
	l = limitsOf(t, users, "acme")
	if d := dirs(l); len(d) != 1 || d["/"].Retention == 0 {
		t.Errorf("rules after removal: %+v", l.Dirs)
	}
	if l.QuotaBytes != 0 || l.MaxFileSize != 0 || l.UploadRate != 0 || l.DownloadRate != mib || l.QuotaFiles != 5000 {
		t.Errorf("sizes after clearing: %+v", l)
	}
	if b, _ := os.ReadFile(users); strings.Contains(string(b), "\n[[user.dir]]") {
		t.Errorf("an emptied rule stayed in the file:\n%s", b)
	}

	before, _ := os.ReadFile(users)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"set", "acme", "--dir", "incoming", "--retention", "1d"}, `--dir: "incoming" must be absolute`},
		{[]string{"set", "acme", "--dir", "/x"}, "--dir /x: give --allowed-patterns"},
		{[]string{"set", "acme", "--remove-dir"}, "--remove-dir needs --dir"},
		{[]string{"set", "acme", "--dir", "/x", "--remove-dir", "--retention", "1d"}, "contradict"},
		{[]string{"set", "acme", "--quota-bytes", "lots"}, "--quota-bytes:"},
		{[]string{"set", "acme", "--quota-files", "-3"}, "--quota-files:"},
		{[]string{"set", "acme", "--retention", "a week"}, "--retention:"},
		{[]string{"set", "acme", "--dir", "/x", "--allowed-patterns", "a/b"}, `is not a file name pattern`},
	} {
		if out := run(2, "", tc.args...); !strings.Contains(out, tc.want) {
			t.Errorf("%v: %q, want it to say %q", tc.args, out, tc.want)
		}
	}
	if after, _ := os.ReadFile(users); string(after) != string(before) {
		t.Error("a refused command changed the users file")
	}
}
