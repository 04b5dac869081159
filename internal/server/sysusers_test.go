package server_test

// System accounts end to end: passwd and shadow files with hashes made by
// openssl passwd and mkpasswd, a running cloudftpd with auth.store =
// "system", and real FTP clients (jlaffaye/ftp, curl, raw sockets).

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/sysusers/sysuserstest"
)

// systemServer serves the accounts of a passwd/shadow pair whose homes
// are under storage.root, as /home is with storage.root = "/home".
func systemServer(t *testing.T) (*testServer, sysuserstest.Files) {
	t.Helper()
	y := sysuserstest.Hash(t, "y", "alice pw")
	six := sysuserstest.Hash(t, "6", "bob pw")
	five := sysuserstest.Hash(t, "5", "carol pw")
	today := int(time.Now().Unix() / 86400)
	var files sysuserstest.Files
	ts := startServer(t, func(c *config.Config) {
		root := c.Storage.Root
		home := func(n string) string {
			if err := os.MkdirAll(filepath.Join(root, n), 0o755); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, n)
		}
		files = sysuserstest.Write(t, t.TempDir(), []sysuserstest.Account{
			{Name: "alice", UID: 1000, GID: 1000, Hash: y, Home: home("alice")},
			{Name: "bob", UID: 1001, GID: 1001, Hash: six, Home: home("partners/bob")},
			{Name: "carol", UID: 1002, GID: 1002, Hash: five, Home: home("carol")},
			{Name: "root", UID: 0, GID: 0, Hash: y, Home: "/root"},
			{Name: "svc", UID: 998, GID: 998, Hash: y, Home: home("svc")},
			{Name: "locked", UID: 1003, GID: 1003, Hash: "!" + y, Home: home("locked")},
			{Name: "expired", UID: 1004, GID: 1004, Hash: y, Home: home("expired"), Shadow: ":19000:0:99999:7::" + strconv.Itoa(today-1) + ":"},
			{Name: "banned", UID: 1005, GID: 1005, Hash: y, Home: home("banned")},
		}, nil, []string{"root", "banned"})
		c.Auth.UsersFile = ""
		c.Auth.Store = config.StoreSystem
		c.Auth.System = config.SystemUsers{PasswdFile: files.Passwd, ShadowFile: files.Shadow, FTPUsersFile: &files.FTPUsers}
	})
	return ts, files
}

// TestSystemAccountsLogin: migrated partners log in with the passwords
// they had (yescrypt, SHA-512-crypt, SHA-256-crypt), jailed in their
// passwd homes below storage.root; their uploads land there.
func TestSystemAccountsLogin(t *testing.T) {
	ts, _ := systemServer(t)

	c, _ := dialJlaffaye(t, ts, "alice", "alice pw")
	check(t, "STOR", c.Stor("report.csv", strings.NewReader("a,b\n")))
	if b, err := os.ReadFile(filepath.Join(ts.Root, "alice/report.csv")); err != nil || string(b) != "a,b\n" {
		t.Errorf("alice's upload: %q %v", b, err)
	}
	dir, err := c.CurrentDir()
	check(t, "PWD", err)
	if dir != "/" {
		t.Errorf("alice starts in %q, want / (her home is the jail)", dir)
	}

	b, _ := dialJlaffaye(t, ts, "bob", "bob pw")
	check(t, "STOR", b.Stor("in.txt", strings.NewReader("bob")))
	if got, err := os.ReadFile(filepath.Join(ts.Root, "partners/bob/in.txt")); err != nil || string(got) != "bob" {
		t.Errorf("bob's upload is not in partners/bob: %q %v", got, err)
	}

	curl := clienttest.Need(t, "curl")
	out, err := exec.Command(curl, "-sS", "--max-time", "20", "--list-only", "ftp://carol:carol%20pw@"+ts.Addr+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("curl as carol: %v\n%s", err, out)
	}
}

// TestSystemAccountsRefused: wrong passwords, locked and expired
// accounts, uids below min_uid and names in ftpusers all get 530, the
// same answer an unknown name gets.
func TestSystemAccountsRefused(t *testing.T) {
	ts, _ := systemServer(t)
	for _, tc := range []struct{ user, pass string }{
		{"alice", "bob pw"},
		{"locked", "alice pw"},
		{"expired", "alice pw"},
		{"svc", "alice pw"},
		{"root", "alice pw"},
		{"banned", "alice pw"},
		{"nobody", "alice pw"},
	} {
		rc := dialRaw(t, ts.Addr)
		rc.must(331, "USER %s", tc.user)
		if msg := rc.must(530, "PASS %s", tc.pass); msg != "Login incorrect." {
			t.Errorf("%s: %q", tc.user, msg)
		}
		rc.conn.Close()
	}
	for _, want := range [][]string{
		{"user=locked", "account locked"},
		{"user=expired", "account expired"},
		{"user=svc", "below min_uid"},
		{"user=banned", "listed in"},
	} {
		if !logLineWith(ts.logs.String(), want...) {
			t.Errorf("no log line with %q:\n%s", want, ts.logs)
		}
	}
}

// TestSystemAccountsReload: a password changed with passwd(1) takes
// effect at the reload (SIGHUP), which re-reads the shadow file.
func TestSystemAccountsReload(t *testing.T) {
	ts, files := systemServer(t)
	data, err := os.ReadFile(files.Shadow)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "alice:") {
			lines[i] = "alice:" + sysuserstest.Hash(t, "6", "new pw") + ":19000:0:99999:7:::"
		}
	}
	if err := os.WriteFile(files.Shadow, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.reload(nil)
	rc := dialRaw(t, ts.Addr)
	rc.must(331, "USER alice")
	rc.must(530, "PASS alice pw")
	rc.login("alice", "new pw")
}
