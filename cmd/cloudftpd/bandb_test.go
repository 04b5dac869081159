package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

// TestBanCommandDB: `cloudftpd ban --db` lists, adds and removes the bans
// in the config's database with no server running, refusing a ban inside
// the config's allow list; without a database in the config it says so.
func TestBanCommandDB(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	dir := t.TempDir()
	cfgPath := pgNodeConfigs(t, dir, dsn, 1, "2s", `
[defender]
allow = ["10.0.0.0/8"]
ban_time = "20m"
`)[0]
	cli(t, "", "db", "migrate", "--config", cfgPath)
	if out := cli(t, "", "ban", "list", "--db", "--config", cfgPath); !strings.Contains(out, "no bans") {
		t.Errorf("empty list: %q", out)
	}
	if out := cli(t, "", "ban", "add", "203.0.113.7", "--db", "--config", cfgPath, "--reason", "from the bastion"); !strings.Contains(out, "banned 203.0.113.7/32 for 20m0s") {
		t.Errorf("add: %q", out)
	}
	out := cli(t, "", "ban", "list", "--db", "--config", cfgPath)
	if host, _ := os.Hostname(); !strings.Contains(out, "NODE") || !strings.Contains(out, host) || !strings.Contains(out, "from the bastion") {
		t.Errorf("list:\n%s", out)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"add", "10.1.2.3"}, 1, "inside 10.0.0.0/8 of the allow list"},
		{[]string{"remove", "198.51.100.1"}, 1, "198.51.100.1/32: not banned"},
		{[]string{"list", "--socket", "x.sock"}, 2, "--db and --socket: choose one"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"ban"}, tc.args...)
		args = append(args, "--db", "--config", cfgPath)
		if code := run(args, nil, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
	if out := cli(t, "", "ban", "remove", "203.0.113.7", "--db", "--config", cfgPath); !strings.Contains(out, "unbanned 203.0.113.7/32") {
		t.Errorf("remove: %q", out)
	}

	plain := filepath.Join(dir, "plain.toml")
	os.WriteFile(plain, []byte("[[listener]]\naddress = \"127.0.0.1:2121\"\n[storage]\nroot = \"files\"\n[auth]\nanonymous = true\n"), 0o600)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"ban", "list", "--db", "--config", plain}, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "keeps no bans in a database") {
		t.Errorf("--db without a database: exit %d, %q", code, stderr.String())
	}
}
