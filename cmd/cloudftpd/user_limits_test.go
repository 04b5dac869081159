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

// TestUserSetLimits: `user set` and limit flags on `user add` write the
// keys the server reads, leave the keys not named alone, and `user list`
// shows whether each account can log in.
func TestUserSetLimits(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.toml")
	run := func(wantCode int, stdin string, args ...string) string {
		t.Helper()
		code, stdout, stderr := userRun(t, stdin, append(args, "--users", users)...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout, stderr)
		}
		return stdout + stderr
	}
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
