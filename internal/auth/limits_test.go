package auth

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLimitsFromUsersFile(t *testing.T) {
	hash, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	doc := `[[user]]
name = "acme"
password_hash = "` + hash + `"
permissions = ["all"]
expires = 2027-06-30T18:00:00Z
allowed_networks = ["203.0.113.0/24", "2001:db8::/48", "198.51.100.7"]
denied_networks = ["203.0.113.128/25"]
max_sessions = 2
quota_bytes = "10GiB"
quota_files = 1000
max_file_size = 1048576
upload_rate = "1MiB"
download_rate = "2MiB"
denied_patterns = ["*.exe"]
retention = "30d"

[[user.dir]]
path = "/incoming/"
allowed_patterns = ["*.csv", "*.CSV"]
retention = "12h"
`
	f, err := parseUsersFile([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	a := NewFileAuthenticator(f, Options{})
	u, err := a.Authenticate(t.Context(), "acme", "pw")
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{
		Expires:         time.Date(2027, 6, 30, 18, 0, 0, 0, time.UTC),
		AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/48"), netip.MustParsePrefix("198.51.100.7/32")},
		DeniedNetworks:  []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25")},
		MaxSessions:     2,
		QuotaBytes:      10 << 30,
		QuotaFiles:      1000,
		MaxFileSize:     1 << 20,
		UploadRate:      1 << 20,
		DownloadRate:    2 << 20,
		Dirs: []DirRule{
			{Dir: "/", DeniedPatterns: []string{"*.exe"}, Retention: 30 * 24 * time.Hour},
			{Dir: "/incoming", AllowedPatterns: []string{"*.csv", "*.CSV"}, Retention: 12 * time.Hour},
		},
	}
	if !u.Limits.Expires.Equal(want.Expires) {
		t.Errorf("Expires = %v, want %v", u.Limits.Expires, want.Expires)
	}
	u.Limits.Expires = want.Expires
	if !reflect.DeepEqual(u.Limits, want) {
		t.Errorf("Limits =\n%+v\nwant\n%+v", u.Limits, want)
	}

	// What Save writes, LoadUsersFile reads back the same.
	path := filepath.Join(t.TempDir(), "users.toml")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	g, err := LoadUsersFile(path)
	if err != nil {
		b, _ := os.ReadFile(path)
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(f.Users(), g.Users()) {
		t.Errorf("after Save and Load:\n%+v\nwant\n%+v", g.Users(), f.Users())
	}
}

func TestLimitsErrors(t *testing.T) {
	hash, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	head := "[[user]]\nname = \"acme\"\npassword_hash = \"" + hash + "\"\npermissions = [\"all\"]\n"
	for _, tc := range []struct{ body, want string }{
		{`allowed_networks = ["10.0.0.0/33"]`, `allowed_networks: "10.0.0.0/33" is not a network`},
		{`denied_networks = ["nowhere"]`, `denied_networks: "nowhere" is not a network`},
		{`max_sessions = -1`, `max_sessions: -1 must not be negative`},
		{`quota_bytes = "ten"`, `"ten" is not a size`},
		{`quota_bytes = -5`, `must not be negative`},
		{`denied_patterns = ["[*.exe"]`, `denied_patterns: "[*.exe" is not a file name pattern`},
		{`allowed_patterns = ["in/*.csv"]`, `allowed_patterns: "in/*.csv" is not a file name pattern`},
		{`retention = "a month"`, `"a month" is not an age`},
		{"[[user.dir]]\npath = \"incoming\"", `dir[0] "incoming": path: must be absolute`},
		{"[[user.dir]]\npath = \"/a\"\n[[user.dir]]\npath = \"/a/\"", `dir[1] "/a/": path: a rule for this directory is already given`},
		{"[[user.dir]]\npath = \"/a\"\ncolour = \"red\"", `unknown key "dir.colour"`},
	} {
		_, err := parseUsersFile([]byte(head + tc.body + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v, want it to contain %q", tc.body, err, tc.want)
		}
	}
}

// TestListUsers: the file's users, sorted, with their limits (not the
// anonymous login), as of the last Reload.
func TestListUsers(t *testing.T) {
	hash, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseUsersFile(fmt.Appendf(nil, `
[[user]]
name = "zed"
password_hash = %[1]q
permissions = ["read"]

[[user]]
name = "amy"
password_hash = %[1]q
permissions = ["all"]
retention = "30d"
  [[user.dir]]
  path = "/tmp/"
  retention = "1h"
`, hash))
	if err != nil {
		t.Fatal(err)
	}
	a := NewFileAuthenticator(f, Options{Anonymous: true})
	users, err := a.ListUsers(t.Context())
	if err != nil || len(users) != 2 || users[0].Name != "amy" || users[1].Name != "zed" {
		t.Fatalf("ListUsers: %+v, %v; want amy and zed", users, err)
	}
	want := []DirRule{{Dir: "/", Retention: 30 * 24 * time.Hour}, {Dir: "/tmp", Retention: time.Hour}}
	if got := users[0].Limits.Dirs; !reflect.DeepEqual(got, want) || users[0].Home != "amy" {
		t.Errorf("amy: home %q, dirs %+v; want %+v", users[0].Home, got, want)
	}
	if err := f.Delete("zed"); err != nil {
		t.Fatal(err)
	}
	a.Reload(f)
	if users, _ := a.ListUsers(t.Context()); len(users) != 1 {
		t.Errorf("after Reload: %+v, want amy alone", users)
	}
}
