package auth

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestFoldersFromUsersFile(t *testing.T) {
	hash, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	doc := `[[user]]
name = "acme"
password_hash = "` + hash + `"
permissions = ["all"]

[[user.folder]]
path = "/inbox/"
target = "exchange/acme/in"
permissions = ["upload"]

[[user.folder]]
path = "/outbox"
target = "exchange/acme/out"
permissions = ["read"]

[[user.folder]]
path = "/partner/files"
volume = "partner-bucket"
permissions = ["list", "download", "upload"]
`
	f, err := parseUsersFile([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewFileAuthenticator(f, Options{}).Authenticate(t.Context(), "acme", "pw")
	if err != nil {
		t.Fatal(err)
	}
	want := []Folder{
		{Path: "/inbox", Target: "exchange/acme/in", Perms: PermUpload},
		{Path: "/outbox", Target: "exchange/acme/out", Perms: PermList | PermDownload},
		{Path: "/partner/files", Volume: "partner-bucket", Target: ".", Perms: PermList | PermDownload | PermUpload},
	}
	if !reflect.DeepEqual(u.Limits.Folders, want) {
		t.Fatalf("Folders =\n%+v\nwant\n%+v", u.Limits.Folders, want)
	}
	for _, c := range []struct {
		path string
		want Permissions
	}{
		{"/", permAll},
		{"/inboxes", permAll}, // a sibling with the mount point as prefix is not inside
		{"/inbox", PermUpload},
		{"/inbox/a/b.txt", PermUpload},
		{"/outbox/x", permRead},
		{"/partner", permAll},
		{"/partner/files/x", PermList | PermDownload | PermUpload},
	} {
		if got := u.PermsAt(c.path); got != c.want {
			t.Errorf("PermsAt(%q) = %v, want %v", c.path, got, c.want)
		}
	}

	// Save and load keep the folders.
	p := filepath.Join(t.TempDir(), "users.toml")
	if err := f.Save(p); err != nil {
		t.Fatal(err)
	}
	g, err := LoadUsersFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Users(), f.Users()) {
		t.Errorf("round trip changed the entries:\n%+v\n%+v", g.Users(), f.Users())
	}
}

func TestFoldersRejected(t *testing.T) {
	hash, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ folder, want string }{
		{`path = "inbox"` + "\ntarget = \"x\"\npermissions = [\"read\"]", `folder[0] "inbox": path: must be absolute`},
		{`path = "/"` + "\ntarget = \"x\"\npermissions = [\"read\"]", `path: "/" is the user's home`},
		{`path = "/in"` + "\npermissions = [\"read\"]", `target: required`},
		{`path = "/in"` + "\ntarget = \"../other\"\npermissions = [\"read\"]", `target: "../other" must not contain ".."`},
		{`path = "/in"` + "\ntarget = \"/etc\"\npermissions = [\"read\"]", `target: "/etc" must be relative`},
		{`path = "/in"` + "\ntarget = \"x\"", `permissions: required`},
		{`path = "/in"` + "\ntarget = \"x\"\npermissions = [\"fly\"]", `permissions: "fly" is not a permission`},
		{`path = "/in"` + "\ntarget = \"x\"\npermissions = [\"read\"]\n[[user.folder]]\npath = \"/in/\"\ntarget = \"y\"\npermissions = [\"read\"]", `folder[1] "/in/": path: a folder is already mounted there`},
		{`path = "/in"` + "\ntarget = \"x\"\nperms = [\"read\"]", `unknown key "folder.perms"`},
	} {
		doc := "[[user]]\nname = \"acme\"\npassword_hash = \"" + hash + "\"\npermissions = [\"all\"]\n[[user.folder]]\n" + c.folder + "\n"
		_, err := parseUsersFile([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("folder %q: err = %v, want it to contain %q", c.folder, err, c.want)
		}
	}
}
