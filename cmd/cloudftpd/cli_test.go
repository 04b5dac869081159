package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs `cloudftpd ARGS` in-process with stdin and returns the exit
// code and output.
func runCLI(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// cli runs `cloudftpd ARGS` and returns its standard output, failing the
// test unless it exits 0.
func cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := runCLI(stdin, args...)
	if code != 0 {
		t.Fatalf("cloudftpd %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// apiConfig writes dir/cloudftpd.toml with the API enabled and its files
// at their defaults, for the commands that edit them (admin, api token).
func apiConfig(t *testing.T) (dir, cfg string) {
	t.Helper()
	dir = t.TempDir()
	cfg = filepath.Join(dir, "cloudftpd.toml")
	if err := os.WriteFile(cfg, []byte(`
[server]
state_dir = "state"
[[listener]]
address = "127.0.0.1:2121"
[storage]
root = "files"
[auth]
users_file = "users.toml"
[api]
enabled = true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}
