package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFirewallCheck runs "firewall --check" against a stand-in of the EC2
// API that holds one security group opening only the control port: the
// passive range is reported missing and the exit status is 1.
func TestFirewallCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.Form.Get("Action") != "DescribeSecurityGroups" || r.Form.Get("GroupId.1") != "sg-0abc" {
			http.Error(w, "<Response><Errors><Error><Code>InvalidRequest</Code><Message>stand-in</Message></Error></Errors></Response>", 400)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><securityGroupInfo><item><groupId>sg-0abc</groupId><ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>21</fromPort><toPort>21</toPort><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item></ipPermissions></item></securityGroupInfo></DescribeSecurityGroupsResponse>`)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")

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
