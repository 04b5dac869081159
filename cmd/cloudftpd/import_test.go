package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportVsftpdCheckConfig imports a virtual-users vsftpd config with
// the command, then runs check-config on what it wrote.
func TestImportVsftpdCheckConfig(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "vsftpd_users")
	if err := os.MkdirAll(users, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "vsftpd.conf")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(conf, strings.ReplaceAll(`listen=YES
listen_port=2121
local_enable=YES
guest_enable=YES
write_enable=YES
virtual_use_local_privs=YES
user_sub_token=$USER
local_root=DIR/srv/$USER
user_config_dir=DIR/vsftpd_users
pasv_min_port=50000
pasv_max_port=50009
pasv_address=198.51.100.10
`, "DIR", dir))
	write(filepath.Join(users, "alice"), "local_max_rate=65536\n")
	write(filepath.Join(users, "bob"), "write_enable=NO\n")
	out := filepath.Join(dir, "out")

	var stdout, stderr bytes.Buffer
	if code := run([]string{"import", "vsftpd", "--out", out, conf}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, s := range []string{"mapped      " + conf + ":12  pasv_address=198.51.100.10", "wrote " + filepath.Join(out, "cloudftpd.toml")} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, stdout.String())
		}
	}
	cfg := filepath.Join(out, "cloudftpd.toml")
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check-config", "--config", cfg}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("check-config: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "OK (1 listener(s), 2 user(s)") {
		t.Errorf("check-config: %s", stdout.String())
	}
	// The homes are below the storage root the import chose.
	if b, _ := os.ReadFile(cfg); !strings.Contains(string(b), `root = "`+filepath.Join(dir, "srv")+`"`) {
		t.Errorf("storage root:\n%s", b)
	}

	// A second import does not overwrite without --force.
	if code := run([]string{"import", "vsftpd", "--out", out, conf}, nil, &stdout, &stderr); code != 1 {
		t.Errorf("import over existing files: exit %d", code)
	}
	// A config vsftpd would refuse writes nothing and names the line.
	write(conf, "listen=YES\nlisten_prot=21\n")
	bad := filepath.Join(dir, "bad")
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"import", "vsftpd", "--out", bad, conf}, nil, &stdout, &stderr); code != 1 {
		t.Errorf("import of a bad config: exit %d", code)
	}
	if !strings.Contains(stdout.String(), conf+":2") || !strings.Contains(stdout.String(), `unknown option "listen_prot"`) {
		t.Errorf("error not named:\n%s", stdout.String())
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("output directory created for a bad config: %v", err)
	}
	if code := run([]string{"import", "proftpd"}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("import proftpd: exit %d", code)
	}
}

func TestFirewallCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cloudftpd.toml")
	if err := os.WriteFile(cfg, []byte("[[listener]]\naddress = \"0.0.0.0:21\"\n[storage]\nroot = \"data\"\n[auth]\nanonymous = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"firewall", "--config", cfg, "--format", "nftables"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "tcp dport 21 accept") || !strings.Contains(stdout.String(), "tcp dport 32768-60999 accept") {
		t.Errorf("rules:\n%s", stdout.String())
	}
	// Warnings go to stderr, so the rules can be piped.
	if !strings.Contains(stderr.String(), "warning: listener[0] has no passive_ports") {
		t.Errorf("stderr: %s", stderr.String())
	}
	if code := run([]string{"firewall", "--config", cfg, "--format", "pf"}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("unknown format: exit %d", code)
	}
	if code := run([]string{"firewall", "--config", cfg}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("no format: exit %d", code)
	}
}
