package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// TestAdminCommand: add reads the password from stdin and writes an
// argon2id hash to api.admins_file next to the config (mode 0600);
// passwd replaces it; list shows names, never hashes; del removes;
// mistakes exit non-zero and change nothing.
func TestAdminCommand(t *testing.T) {
	dir, cfg := apiConfig(t)
	file := filepath.Join(dir, "api-admins.toml") // the default, next to the config
	runCmd := func(stdin string, args ...string) (int, string, string) {
		return runCLI(stdin, append([]string{"admin"}, args...)...)
	}
	verify := func(name, pw string) bool {
		t.Helper()
		f, err := api.LoadAdmins(file)
		if err != nil {
			t.Fatal(err)
		}
		a := f.Find(name)
		if a == nil {
			return false
		}
		if !strings.HasPrefix(a.PasswordHash, "$argon2id$v=19$m=") {
			t.Errorf("hash %q is not an argon2id PHC string", a.PasswordHash)
		}
		ok, err := auth.VerifyPassword(a.PasswordHash, pw)
		return err == nil && ok
	}

	if code, out, errOut := runCmd("first-pw\n", "add", "ops", "--config", cfg, "--password-stdin"); code != 0 {
		t.Fatalf("add: %d %q %q", code, out, errOut)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admins file: %v %v", fi, err)
	}
	if !verify("ops", "first-pw") {
		t.Error("the added password does not verify")
	}
	for _, bad := range []struct {
		stdin string
		args  []string
	}{
		{"x\n", []string{"add", "ops", "--config", cfg, "--password-stdin"}},       // exists
		{"\n", []string{"add", "other", "--config", cfg, "--password-stdin"}},      // empty password
		{"x\n", []string{"add", "bad name", "--config", cfg, "--password-stdin"}},  // bad name
		{"x\n", []string{"passwd", "nobody", "--config", cfg, "--password-stdin"}}, // unknown
		{"", []string{"add", "other", "--config", cfg}},                            // not a terminal
		{"", []string{"del", "nobody", "--config", cfg}},
		{"", []string{"list", "extra", "--config", cfg}},
		{"", []string{"fly", "--config", cfg}},
	} {
		if code, _, _ := runCmd(bad.stdin, bad.args...); code == 0 {
			t.Errorf("%v: exit 0", bad.args)
		}
	}
	if code, _, errOut := runCmd("second-pw\n", "passwd", "ops", "--admins-file", file, "--password-stdin"); code != 0 {
		t.Fatalf("passwd: %d %q", code, errOut)
	}
	if verify("ops", "first-pw") || !verify("ops", "second-pw") {
		t.Error("passwd did not replace the password")
	}
	code, out, _ := runCmd("", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "ops") || strings.Contains(out, "argon2id") {
		t.Errorf("list: %d %q", code, out)
	}
	if code, _, _ := runCmd("", "del", "ops", "--config", cfg); code != 0 {
		t.Fatal("del failed")
	}
	if verify("ops", "second-pw") {
		t.Error("deleted admin still there")
	}
}
