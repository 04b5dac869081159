package auth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadUsersFile(t *testing.T) {
	h := cheapHash(t, "pw")
	user := func(name, extra string) string {
		return "[[user]]\nname = " + name + "\npassword_hash = \"" + h + "\"\n" + extra + "\n"
	}
	all := `permissions = ["all"]`
	tests := []struct {
		name    string
		content string
		wantErr string // "" means success
	}{
		{"empty file", "", ""},
		{"one user", user(`"alice"`, all), ""},
		{"explicit home and perms", user(`"alice"`, `home = "shared/alice"`+"\n"+`permissions = ["list", "upload"]`), ""},
		{"home dot", user(`"root"`, `home = "."`+"\n"+all), ""},
		{"bcrypt hash", "[[user]]\nname = \"old\"\npassword_hash = \"" + bcryptHash(t, "x", "$2y$") + "\"\n" + all, ""},
		{
			"bad permission names index and user",
			user(`"alice"`, all) + user(`"carol"`, all) + user(`"bob"`, `permissions = ["read", "fly"]`),
			`users.toml: user[2] "bob": permissions: "fly" is not a permission`,
		},
		{"duplicate", user(`"alice"`, all) + user(`"alice"`, all), `users.toml: user[1] "alice": name: duplicate of user[0]`},
		{"empty name", user(`""`, all), `user[0] "": name: must not be empty`},
		{"name with space", user(`"al ice"`, all), `name: "al ice" contains whitespace`},
		{"name with tab", user(`"al\tice"`, all), `contains whitespace`},
		{"name with control", user(`"al\u0001ice"`, all), `control character`},
		{"name dotdot", user(`".."`, all), `name: ".."`},
		{"name slash", user(`"a/b"`, all), `slash`},
		{"absolute home", user(`"alice"`, `home = "/srv/alice"`+"\n"+all), `user[0] "alice": home: "/srv/alice" must be relative`},
		{"dotdot home", user(`"alice"`, `home = "a/../../etc"`+"\n"+all), `home: "a/../../etc" must not contain ".."`},
		{"dotdot home alone", user(`"alice"`, `home = ".."`+"\n"+all), `must not contain ".."`},
		{"backslash home", user(`"alice"`, `home = "a\\..\\b"`+"\n"+all), `home:`},
		{"missing permissions", user(`"alice"`, ""), `permissions: required`},
		{"empty permissions", user(`"alice"`, `permissions = []`), `permissions: at least one`},
		{"missing hash", "[[user]]\nname = \"alice\"\n" + all, `password_hash: required`},
		{"bad hash", "[[user]]\nname = \"alice\"\npassword_hash = \"hunter2\"\n" + all, `user[0] "alice": password_hash: unsupported`},
		{"unknown key", user(`"alice"`, all) + user(`"bob"`, all+"\npasswd = \"x\""), `users.toml: user[1] "bob": unknown key "passwd"`},
		{"unknown subtable", user(`"alice"`, all+"\n[user.extra]\nx = 1"), `user[0] "alice": unknown key "extra"`},
		{"unknown top-level key", "users = 1\n" + user(`"alice"`, all), `unknown key "users"`},
		{"toml syntax", "[[user]\n", `users.toml:`},
		{"wrong type", "[[user]]\nname = 5\n", `users.toml:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "users.toml", tt.content)
			f, err := LoadUsersFile(p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadUsersFile: %v", err)
				}
				if f == nil {
					t.Fatal("nil file")
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadUsersFile succeeded, want error %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "none.toml")
	if _, err := LoadUsersFile(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadUsersFile(missing) = %v, want ErrNotExist", err)
	}
	f, err := LoadOrEmpty(p)
	if err != nil || len(f.Users()) != 0 {
		t.Errorf("LoadOrEmpty(missing) = %v, %v; want empty file", f, err)
	}
	bad := writeFile(t, "bad.toml", "nonsense = [")
	if _, err := LoadOrEmpty(bad); err == nil {
		t.Error("LoadOrEmpty hid a parse error")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	h1, h2, h3 := cheapHash(t, "a"), bcryptHash(t, "b", "$2b$"), cheapHash(t, "c")
	f := &UsersFile{}
	steps := []struct {
		name string
		err  error
	}{
		{"add zed", f.Add("zed", h1, "", permAll)},
		{"add amy", f.Add("amy", h2, "homes/amy", PermUpload)},
		{"add bob", f.Add("bob", h1, "", PermList|PermMkdir)},
		{"passwd bob", f.SetPassword("bob", h3)},
	}
	for _, s := range steps {
		if s.err != nil {
			t.Fatalf("%s: %v", s.name, s.err)
		}
	}
	p := filepath.Join(t.TempDir(), "users.toml")
	if err := f.Save(p); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(p)
	if !strings.HasPrefix(string(data), "# cloudftpd users") {
		t.Errorf("missing header comment:\n%s", data)
	}
	g, err := LoadUsersFile(p)
	if err != nil {
		t.Fatalf("reloading saved file: %v\n%s", err, data)
	}
	want := []UserEntry{
		{Name: "amy", PasswordHash: h2, Home: "homes/amy", Permissions: []string{"dropbox"}},
		{Name: "bob", PasswordHash: h3, Permissions: []string{"list", "mkdir"}},
		{Name: "zed", PasswordHash: h1, Permissions: []string{"all"}},
	}
	if got := g.Users(); !slices.EqualFunc(got, want, entryEqual) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	if err := g.Delete("bob"); err != nil {
		t.Fatal(err)
	}
	if err := g.Save(p); err != nil {
		t.Fatal(err)
	}
	g, err = LoadUsersFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Users(); len(got) != 2 || got[0].Name != "amy" || got[1].Name != "zed" {
		t.Errorf("after delete: %+v", got)
	}
}

func entryEqual(a, b UserEntry) bool {
	return a.Name == b.Name && a.PasswordHash == b.PasswordHash && a.Home == b.Home && slices.Equal(a.Permissions, b.Permissions)
}

func TestUsersFileEditErrors(t *testing.T) {
	h := cheapHash(t, "pw")
	f := &UsersFile{}
	if err := f.Add("alice", h, "", permRead); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		err     error
		wantErr string
	}{
		{"duplicate add", f.Add("alice", h, "", permAll), `"alice" already exists`},
		{"bad name", f.Add("a b", h, "", permAll), "whitespace"},
		{"bad home", f.Add("bob", h, "../x", permAll), `".."`},
		{"no perms", f.Add("bob", h, "", 0), "permissions"},
		{"bad hash", f.Add("bob", "plain", "", permAll), "password_hash"},
		{"passwd unknown", f.SetPassword("nobody", h), `no user "nobody"`},
		{"passwd bad hash", f.SetPassword("alice", "plain"), "password_hash"},
		{"delete unknown", f.Delete("nobody"), `no user "nobody"`},
	}
	for _, tt := range tests {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want %q", tt.name, tt.err, tt.wantErr)
		}
	}
	if got := f.Users(); len(got) != 1 || got[0].PasswordHash != h {
		t.Errorf("failed edits changed the file: %+v", got)
	}
	// Users returns copies.
	f.Users()[0].Permissions[0] = "all"
	if f.Users()[0].Permissions[0] != "read" {
		t.Error("Users() exposes internal slices")
	}
}

// TestSaveKeepsOwnerAndMode saves over a users file that belongs to
// another account with mode 0640, as root does for a server running as
// its own user: the owner, group and mode stay (issue 11: they became
// root:root 0600 and the server could no longer read the file).
func TestSaveKeepsOwnerAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.toml")
	uf := &UsersFile{}
	if err := uf.Save(path); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("new users file has mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if os.Getuid() == 0 {
		uid, gid = 65534, 65534 // nobody: only root can give a file away
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("CI runs as root; this test needs root to check the owner")
	}
	if err := uf.Add("carol", cheapHash(t, "c"), "carol", permAll); err != nil {
		t.Fatal(err)
	}
	if err := uf.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after save: %v, want 0640", fi.Mode().Perm())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("owner after save: %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
}
