package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, table string
		enabled     bool
		address     string
		tls         bool
		wantErr     string
	}{
		{name: "absent: off", table: ""},
		{name: "enabled: loopback default", table: "[api]\nenabled = true\n", enabled: true, address: DefaultAPIAddress},
		{name: "address", table: "[api]\nenabled = true\naddress = \"0.0.0.0:9443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n", enabled: true, address: "0.0.0.0:9443", tls: true},
		{name: "address without enabled stays off", table: "[api]\naddress = \"127.0.0.1:1\"\n", address: "127.0.0.1:1"},
		{name: "bad address", table: "[api]\nenabled = true\naddress = \"nowhere\"\n", wantErr: "api.address"},
		{name: "cert without key", table: "[api]\nenabled = true\ntls_cert = \"c.pem\"\n", wantErr: "api.tls_cert, tls_key"},
		{name: "unknown key", table: "[api]\nenabled = true\ntoken = \"x\"\n", wantErr: "api.token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(minimal + "\n" + tc.table))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse: err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.API.Enabled != tc.enabled || c.API.Address != tc.address || c.API.TLS() != tc.tls {
				t.Errorf("api = %+v (TLS %v), want enabled %v address %q TLS %v", c.API, c.API.TLS(), tc.enabled, tc.address, tc.tls)
			}
		})
	}
}

func TestAPITokensFilePath(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(minimal + "\n[api]\nenabled = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Dir = "/etc/cloudftpd"
	if got := c.APITokensFile(); got != "/etc/cloudftpd/api-tokens.toml" {
		t.Errorf("without a state dir: %q", got)
	}
	c.Server.StateDir = "/var/lib/cloudftpd"
	if got := c.APITokensFile(); got != filepath.Join("/var/lib/cloudftpd", "api-tokens.toml") {
		t.Errorf("with a state dir: %q", got)
	}
	c.API.TokensFile = "/srv/tokens.toml"
	if got := c.APITokensFile(); got != "/srv/tokens.toml" {
		t.Errorf("absolute: %q", got)
	}
}
