package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// TestVerdictsAgree runs check-config, doctor and serve's build step on
// the same configs: each must accept what the others accept and refuse
// what they refuse, since all three build the same wiring.
func TestVerdictsAgree(t *testing.T) {
	// One hash for every case: argon2id is slow on purpose.
	hash, err := auth.HashPassword("alice-secret")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := auth.ParsePermissions([]string{"all"})
	writeUsers := func(t *testing.T, path string, n int) {
		uf := &auth.UsersFile{}
		for i := range n {
			if err := uf.Add(fmt.Sprintf("user%d", i), hash, "home", all); err != nil {
				t.Fatal(err)
			}
		}
		if err := uf.Save(path); err != nil {
			t.Fatal(err)
		}
	}
	cert := func(t *testing.T, dir string) {
		if err := certs.SelfSigned([]string{"ftp.example.test"}, 30*24*time.Hour, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// listener is added inside [[listener]], auth is the [auth] table's body.
		listener, auth string
		setup          func(t *testing.T, dir string)
		ok             bool
	}{
		{name: "users file", auth: `users_file = "users.toml"`,
			setup: func(t *testing.T, dir string) { writeUsers(t, filepath.Join(dir, "users.toml"), 1) }, ok: true},
		{name: "anonymous only", auth: `anonymous = true`, ok: true},
		{name: "empty users file", auth: `users_file = "users.toml"`,
			setup: func(t *testing.T, dir string) { writeUsers(t, filepath.Join(dir, "users.toml"), 0) }, ok: true},
		{name: "users file that does not exist", auth: `users_file = "missing.toml"`},
		{name: "no users file and no anonymous logins", auth: `anonymous = false`},
		{name: "tls required without a certificate", listener: `tls = "required"`, auth: `anonymous = true`},
		{name: "tls required, certificate file missing", auth: `anonymous = true`,
			listener: "tls = \"required\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\""},
		{name: "tls required with a certificate", auth: `anonymous = true`, setup: cert, ok: true,
			listener: "tls = \"required\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\""},
		{name: "tls_data required without tls", listener: `tls_data = "required"`, auth: `anonymous = true`},
		{name: "bad tls_session_reuse", listener: `tls_session_reuse = "sometimes"`, auth: `anonymous = true`},
		{name: "bad passive range", listener: `passive_ports = "900-800"`, auth: `anonymous = true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			path := filepath.Join(dir, "cloudftpd.toml")
			text := fmt.Sprintf("[[listener]]\naddress = %q\n%s\n\n[storage]\nroot = \"data\"\n\n[auth]\n%s\n", clienttest.FreeAddr(t), tt.listener, tt.auth)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}

			var out, errb strings.Builder
			checkConfig := runCheckConfig(t.Context(), []string{"--config", path}, &out, &errb) == 0
			t.Logf("check-config: %s%s", out.String(), errb.String())
			out.Reset()
			errb.Reset()
			doctorOK := runDoctor(t.Context(), []string{"--config", path}, &out, &errb) == 0
			t.Logf("doctor:\n%s%s", out.String(), errb.String())
			cfg, err := config.Load(path)
			if err == nil {
				var sv *serving
				if sv, err = newServing(t.Context(), cfg, io.Discard); err == nil {
					sv.srv.Close()
				}
			}
			t.Logf("serve's build step: %v", err)
			serveOK := err == nil

			if checkConfig != tt.ok || doctorOK != tt.ok || serveOK != tt.ok {
				t.Errorf("verdicts: check-config %v, doctor %v, serve %v; want all %v", checkConfig, doctorOK, serveOK, tt.ok)
			}
		})
	}
}

// TestSIGHUPBadFile: a config file that no longer loads leaves the server
// as it was, with one error line naming the file.
func TestSIGHUPBadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cloudftpd.toml")
	good := fmt.Sprintf("[[listener]]\naddress = %q\n[storage]\nroot = \"data\"\n[auth]\nanonymous = true\n[server]\nbanner = \"first\"\n", clienttest.FreeAddr(t))
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	sv, err := newServing(t.Context(), cfg, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer sv.srv.Close()
	if err := os.WriteFile(path, []byte(good+"banner = \"twice\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sv.reload(t.Context(), path)
	var errorLines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errorLines = append(errorLines, l)
		}
	}
	if len(errorLines) != 1 || !strings.Contains(errorLines[0], "config not reloaded") || !strings.Contains(errorLines[0], "file="+path) {
		t.Errorf("error lines: %q", errorLines)
	}
	if sv.cfg.Load() != cfg {
		t.Error("the served config was replaced by one that did not load")
	}

	// Fixed, it applies: the log level too.
	if err := os.WriteFile(path, []byte(strings.Replace(good, "first", "second", 1)+"[log]\nlevel = \"error\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sv.reload(t.Context(), path)
	if got := sv.cfg.Load().Server.Banner; got != "second" {
		t.Errorf("banner after a good reload: %q", got)
	}
	if sv.logger.Enabled(t.Context(), slog.LevelWarn) {
		t.Error("log.level = error after the reload, but warnings are still logged")
	}
}
