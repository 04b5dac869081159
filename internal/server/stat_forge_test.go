package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSTATCannotForgeReplies lists, over the control connection, a
// directory holding files whose names carry CR and LF and look like
// replies. The listing must be one 213 reply, and the next command must
// get its own reply, not a forged one (issue 11: before, "STAT dir"
// wrote names unescaped and a file named "evil\r\n213 injected" ended the
// reply early).
func TestSTATCannotForgeReplies(t *testing.T) {
	ts := startServer(t, nil)
	dir := filepath.Join(ts.Root, "alice", "in")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"evil\r\n213 injected", "lf\n200 forged", "cr\r530 forged", "226 plain"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	code, msg := rc.cmd("STAT /in")
	if code != 213 {
		t.Fatalf("STAT: %d %q", code, msg)
	}
	for _, want := range []string{"evil  213 injected", "lf 200 forged", "cr 530 forged", "226 plain"} {
		if !strings.Contains(msg, want) {
			t.Errorf("STAT listing lacks %q (names escaped, each on its own line):\n%s", want, msg)
		}
	}
	if !strings.HasSuffix(msg, "End of status.") {
		t.Errorf("STAT reply ended early: %q", msg)
	}
	// The next reply belongs to the next command.
	if code, msg := rc.cmd("NOOP"); code != 200 {
		t.Errorf("NOOP after STAT got %d %q: the listing forged a reply", code, msg)
	}
}
