package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

func quotaRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runQuota(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestQuotaCommand runs `cloudftpd quota scan` with the server stopped
// (it writes the state store) and running (the server scans, through its
// control socket), and `cloudftpd user list` showing the figures.
func TestQuotaCommand(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "files")
	write := func(rel string, n int) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("alice/a", 1000)
	write("alice/sub/b", 24)
	hash, err := auth.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	users := fmt.Sprintf(`[[user]]
name = "alice"
password_hash = %q
permissions = ["all"]
quota_bytes = "1MiB"
quota_files = 10

[[user]]
name = "bob"
password_hash = %q
permissions = ["all"]
`, hash, hash)
	if err := os.WriteFile(filepath.Join(dir, "users.toml"), []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "cloudftpd.toml")
	cfgText := fmt.Sprintf(`[[listener]]
address = "127.0.0.1:0"

[storage]
backend = "local"
root = %q

[auth]
users_file = "users.toml"
`, root)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}

	// Before any scan: quotas shown, usage unknown.
	code, out, errOut := userRun(t, "", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "- / 1 MiB") || !strings.Contains(out, "- / 10") || !strings.Contains(out, "- / none") {
		t.Fatalf("user list before a scan: %d\n%s%s", code, out, errOut)
	}

	// Server stopped.
	code, out, errOut = quotaRun(t, "scan", "alice", "--config", cfgPath)
	if code != 0 || !strings.HasPrefix(out, "alice: 1 KiB in 2 files (quota: 1 MiB, 10 files); written to ") {
		t.Fatalf("offline scan: %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = userRun(t, "", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "1 KiB / 1 MiB") || !strings.Contains(out, "2 / 10") {
		t.Fatalf("user list after the offline scan: %d\n%s%s", code, out, errOut)
	}

	// Server running.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(t.Context(), cfg, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
	defer stop()
	write("alice/c", 2048)
	code, out, errOut = quotaRun(t, "scan", "alice", "--config", cfgPath)
	if code != 0 || out != "alice: 3 KiB in 3 files (quota: 1 MiB, 10 files); the running server uses it now\n" {
		t.Fatalf("scan through the running server: %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = quotaRun(t, "scan", "nobody", "--config", cfgPath)
	if code != 1 || !strings.Contains(errOut, "no such user") {
		t.Fatalf("scan of an unknown user: %d %s", code, errOut)
	}
	stop()
	code, out, errOut = userRun(t, "", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "3 KiB / 1 MiB") || !strings.Contains(out, "3 / 10") {
		t.Fatalf("user list after the server's scan: %d\n%s%s", code, out, errOut)
	}
	t.Logf("user list:\n%s", out)

	for _, args := range [][]string{{"scan"}, {"scan", "a", "b"}, {"frobnicate"}} {
		if code, _, _ := quotaRun(t, args...); code != 2 {
			t.Errorf("quota %q: exit %d, want 2", args, code)
		}
	}
}
