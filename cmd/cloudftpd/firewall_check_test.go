package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/firewall/ec2test"
)

// TestFirewallCheck runs "firewall --check" against a stand-in of the EC2
// API that holds one security group opening only the control port: the
// passive range is reported missing and the exit status is 1.
func TestFirewallCheck(t *testing.T) {
	srv := ec2test.NewServer(t, map[string]string{"sg-0abc": ec2test.TCP(21, 21, "0.0.0.0/0")})
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	dir := t.TempDir()
	cfg := filepath.Join(dir, "cloudftpd.toml")
	if err := os.WriteFile(cfg, []byte("[[listener]]\naddress = \"0.0.0.0:21\"\npassive_ports = \"50000-50099\"\n[storage]\nroot = \"data\"\n[auth]\nanonymous = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"firewall", "--check", "--security-group", "sg-0abc", "--region", "eu-west-1", "--endpoint", srv.URL, "--config", cfg}, nil, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "missing: tcp 50000-50099 from 0.0.0.0/0 (listener[0] passive ports)") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	if code := run([]string{"firewall", "--check", "--config", cfg}, nil, &stdout, &stderr); code != 2 {
		t.Errorf("--check without --security-group: exit %d, want 2", code)
	}
}
