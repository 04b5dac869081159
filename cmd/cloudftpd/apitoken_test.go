package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/api"
)

// TestAPITokenCommand: add prints a token the tokens file accepts with
// its scope, list shows names and never secrets, del removes; mistakes
// exit non-zero and change nothing.
func TestAPITokenCommand(t *testing.T) {
	dir, cfg := apiConfig(t)
	tokens := filepath.Join(dir, "state", "api-tokens.toml") // the default, under state_dir
	runCmd := func(args ...string) (int, string, string) {
		return runCLI("", append([]string{"api", "token"}, args...)...)
	}

	code, out, errOut := runCmd("add", "ops", "--scope", "admin", "--config", cfg)
	secret := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(secret, "cftpd_") {
		t.Fatalf("add: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCmd("add", "--config", cfg, "grafana", "--scope=read")
	readSecret := strings.TrimSpace(out)
	if code != 0 {
		t.Fatalf("add read: exit %d", code)
	}
	f, err := api.LoadTokens(tokens)
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := f.Lookup(secret); !ok || tok.Name != "ops" || tok.Scope != api.ScopeAdmin {
		t.Errorf("admin token: %+v %v", tok, ok)
	}
	if tok, ok := f.Lookup(readSecret); !ok || tok.Name != "grafana" || tok.Scope != api.ScopeRead {
		t.Errorf("read token: %+v %v", tok, ok)
	}

	for _, bad := range [][]string{
		{"add", "ops", "--scope", "admin", "--config", cfg},     // exists
		{"add", "other", "--config", cfg},                       // no scope
		{"add", "other", "--scope", "root", "--config", cfg},    // bad scope
		{"del", "nobody", "--config", cfg},                      // no such token
		{"add", "bad name", "--scope", "read", "--config", cfg}, // bad name
	} {
		if code, _, stderr := runCmd(bad...); code == 0 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", bad, code, stderr)
		}
	}

	code, out, _ = runCmd("list", "--tokens-file", tokens)
	if code != 0 || !strings.Contains(out, "ops") || !strings.Contains(out, "admin") || !strings.Contains(out, "grafana") ||
		strings.Contains(out, secret) || strings.Contains(out, "sha256") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	if code, _, _ := runCmd("del", "ops", "--config", cfg); code != 0 {
		t.Fatalf("del: exit %d", code)
	}
	f, _ = api.LoadTokens(tokens)
	if _, ok := f.Lookup(secret); ok || len(f.Tokens) != 1 {
		t.Errorf("after del: %+v", f.Tokens)
	}
	if code, _, _ := runCmd("frobnicate"); code != 2 {
		t.Errorf("unknown verb: exit %d", code)
	}
}
