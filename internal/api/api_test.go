package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/api/apitest"
)

// TestOpenAPIDocument: the embedded document is valid OpenAPI 3 and
// names every route the handler serves.
func TestOpenAPIDocument(t *testing.T) {
	doc, err := apitest.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/openapi.yaml", "/v1/status", "/v1/sessions", "/v1/sessions/{id}", "/v1/transfers",
		"/v1/bans", "/v1/bans/{address}", "/v1/bans/{address}/{bits}", "/v1/reload", "/v1/users", "/v1/users/{name}",
		"/v1/users/{name}/password", "/v1/login", "/v1/logout", "/v1/me", "/v1/passive", "/v1/doctor", "/v1/audit"} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("openapi.yaml has no path %s", p)
		}
	}
}

func TestTokensFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "tokens.toml")
	f, err := api.LoadTokensOrEmpty(path)
	if err != nil || len(f.Tokens) != 0 {
		t.Fatalf("missing file: %v, %v", f, err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	adminSecret, err := f.Add("ops", api.ScopeAdmin, now)
	if err != nil {
		t.Fatal(err)
	}
	readSecret, err := f.Add("grafana", api.ScopeRead, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(adminSecret, "cftpd_") || len(adminSecret) != len("cftpd_")+43 || adminSecret == readSecret {
		t.Errorf("secrets %q, %q: want cftpd_ and 43 base64url characters, distinct", adminSecret, readSecret)
	}
	for _, bad := range []struct {
		name  string
		scope api.Scope
	}{{"ops", api.ScopeRead}, {"", api.ScopeRead}, {"has space", api.ScopeRead}, {"x", "root"}} {
		if _, err := f.Add(bad.name, bad.scope, now); err == nil {
			t.Errorf("Add(%q, %q) succeeded", bad.name, bad.scope)
		}
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v, mode %v, want 0600", err, fi.Mode())
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), adminSecret) || strings.Contains(string(raw), readSecret[6:]) {
		t.Fatal("the tokens file holds a secret, not only its hash")
	}

	keys := api.NewKeyring(path)
	for _, tc := range []struct {
		secret string
		name   string
		scope  api.Scope
		ok     bool
	}{
		{adminSecret, "ops", api.ScopeAdmin, true},
		{readSecret, "grafana", api.ScopeRead, true},
		{adminSecret[:len(adminSecret)-1] + "A", "", "", false},
		{"cftpd_", "", "", false},
		{"", "", "", false},
		{strings.TrimPrefix(adminSecret, "cftpd_"), "", "", false},
	} {
		tok, ok, err := keys.Lookup(tc.secret)
		if err != nil || ok != tc.ok || tok.Name != tc.name || tok.Scope != tc.scope {
			t.Errorf("Lookup(%q) = %+v, %v, %v; want %s %s %v", tc.secret, tok, ok, err, tc.name, tc.scope, tc.ok)
		}
	}

	// Deleted in the file: the keyring sees it at the next lookup.
	f, err = api.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Delete("ops"); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete("ops"); err == nil {
		t.Error("deleting a deleted token succeeded")
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := keys.Lookup(adminSecret); ok {
		t.Error("a deleted token is still accepted")
	}
	if _, ok, _ := keys.Lookup(readSecret); !ok {
		t.Error("the remaining token is refused")
	}

	// A broken file accepts nothing and says so.
	if err := os.WriteFile(path, []byte("[[token]]\nname = \"x\"\nscope = \"god\"\nsha256 = \"00\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := keys.Lookup(readSecret); ok || err == nil {
		t.Errorf("broken file: ok %v, err %v; want a refusal with an error", ok, err)
	}
}

func TestLoadTokensRejects(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for name, text := range map[string]string{
		"unknown key": "[[token]]\nname = \"a\"\nscope = \"read\"\nsha256 = \"" + hash + "\"\nsecret = \"x\"\n",
		"bad scope":   "[[token]]\nname = \"a\"\nscope = \"write\"\nsha256 = \"" + hash + "\"\n",
		"short hash":  "[[token]]\nname = \"a\"\nscope = \"read\"\nsha256 = \"abcd\"\n",
		"duplicate":   "[[token]]\nname = \"a\"\nscope = \"read\"\nsha256 = \"" + hash + "\"\n[[token]]\nname = \"a\"\nscope = \"admin\"\nsha256 = \"" + hash + "\"\n",
		"bad name":    "[[token]]\nname = \"a b\"\nscope = \"read\"\nsha256 = \"" + hash + "\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.toml")
			os.WriteFile(path, []byte(text), 0o600)
			if _, err := api.LoadTokens(path); err == nil {
				t.Fatal("loaded")
			}
		})
	}
}
