package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// pgNodeConfigs writes dir/cloudftpd1.toml ... cloudftpdN.toml, the
// configs of nodes sharing the database dsn and the storage dir/files
// (created): they differ only in their state directory and passive ports
// (one free range split between them: two ranges picked apart could
// overlap). timeout is auth.postgres.timeout; extra is appended (TOML
// sections after [auth.postgres]).
func pgNodeConfigs(t *testing.T, dir, dsn string, nodes int, timeout, extra string) []string {
	t.Helper()
	root := filepath.Join(dir, "files")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	const portsEach = 30
	var lo, hi int
	if _, err := fmt.Sscanf(clienttest.FreeRange(t, portsEach*nodes), "%d-%d", &lo, &hi); err != nil {
		t.Fatal(err)
	}
	var cfgs []string
	for i := range nodes {
		text := fmt.Sprintf(`
[[listener]]
address = "127.0.0.1:0"
passive_ports = "%d-%d"
[server]
state_dir = "state-%d"
login_failure_delay = "10ms"
[storage]
backend = "local"
root = %q
[auth]
store = "postgres"
[auth.postgres]
dsn = %q
poll_interval = "1s"
timeout = %q
`, lo+portsEach*i, lo+portsEach*i+portsEach-1, i+1, root, dsn, timeout) + extra
		path := filepath.Join(dir, fmt.Sprintf("cloudftpd%d.toml", i+1))
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, path)
	}
	return cfgs
}
