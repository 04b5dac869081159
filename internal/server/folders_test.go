package server_test

// Virtual folders end to end: a users file with [[user.folder]] tables,
// a real server and the jlaffaye/ftp client; a shared folder on local disk
// and a folder on an S3 volume (versitygw).

import (
	"bytes"
	"errors"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/s3test"
)

// setFolders gives users folders in the served users file and reloads
// the server, as an operator's edit and SIGHUP would.
func (ts *testServer) setFolders(folders map[string][]auth.FolderEntry) {
	ts.t.Helper()
	path := ts.cfg.Path(ts.cfg.Auth.UsersFile)
	uf, err := auth.LoadUsersFile(path)
	if err != nil {
		ts.t.Fatal(err)
	}
	for name, fs := range folders {
		if err := uf.SetLimits(name, func(l *auth.LimitsEntry) { l.Folders = fs }); err != nil {
			ts.t.Fatal(err)
		}
	}
	if err := uf.Save(path); err != nil {
		ts.t.Fatal(err)
	}
	ts.reload(nil)
}

// wantCode checks that err is an FTP reply with code (and text, if
// given).
func wantCode(t *testing.T, what string, err error, code int, text string) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != code || !strings.Contains(te.Msg, text) {
		t.Errorf("%s: %v, want %d %q", what, err, code, text)
	}
}

func names(t *testing.T, c *ftp.ServerConn, dir string) []string {
	t.Helper()
	entries, err := c.List(dir)
	if err != nil {
		t.Fatalf("LIST %s: %v", dir, err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name
		if e.Type == ftp.EntryTypeFolder {
			n += "/"
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestFoldersSharedPublic(t *testing.T) {
	ts := startServer(t, nil)
	ts.setFolders(map[string][]auth.FolderEntry{
		"alice": {
			{Path: "/public", Target: "shared/public", Permissions: []string{"all"}},
			{Path: "/inbox", Target: "exchange/alice-in", Permissions: []string{"upload"}},
		},
		"bob": {{Path: "/public", Target: "shared/public", Permissions: []string{"read"}}},
	})
	alice, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
	bob, _ := dialJlaffaye(t, ts, "bob", "bob-secret")

	check(t, "alice STOR /public/notice.txt", alice.Stor("/public/notice.txt", strings.NewReader("hello bob")))
	if got := ts.read("shared/public/notice.txt"); string(got) != "hello bob" {
		t.Fatalf("the shared file on disk holds %q", got)
	}
	// Bob sees the folder in his home, and alice's file in it.
	if got, want := strings.Join(names(t, bob, "/"), " "), "public/"; got != want {
		t.Errorf("bob's / lists %q, want %q", got, want)
	}
	if got := retr(t, bob, "/public/notice.txt", 0); string(got) != "hello bob" {
		t.Errorf("bob reads %q", got)
	}
	// Read only for bob.
	wantCode(t, "bob STOR into /public", bob.Stor("/public/bob.txt", strings.NewReader("x")), 550, "in /public")
	wantCode(t, "bob DELE in /public", bob.Delete("/public/notice.txt"), 550, "")
	// A rename out of the folder is refused with the reason; inside it,
	// it works.
	wantCode(t, "alice RNTO across folders", alice.Rename("/public/notice.txt", "/notice.txt"), 553, "/public and / are separate storage")
	check(t, "alice rename in /public", alice.Rename("/public/notice.txt", "/public/notice-1.txt"))
	if !ts.store.exists(t, "shared/public/notice-1.txt") || ts.store.exists(t, "alice/notice.txt") {
		t.Error("the renames did not leave the file where expected")
	}
	// The upload-only inbox: STOR yes, listing and download no.
	check(t, "alice STOR /inbox/r.csv", alice.Stor("/inbox/r.csv", bytes.NewReader([]byte("1,2"))))
	if got := ts.read("exchange/alice-in/r.csv"); string(got) != "1,2" {
		t.Errorf("inbox file holds %q", got)
	}
	_, err := alice.List("/inbox")
	wantCode(t, "alice LIST /inbox", err, 550, "in /inbox")
	_, err = alice.Retr("/inbox/r.csv")
	wantCode(t, "alice RETR /inbox/r.csv", err, 550, "in /inbox")
	// The jail holds in the folder: ".." from it stops at the user's
	// root, never in the directory above the folder's target.
	ts.write("shared/secret.txt", []byte("not for users"))
	_, err = bob.Retr("/public/../secret.txt")
	wantCode(t, "bob RETR /public/../secret.txt", err, 550, "")
	_, err = bob.Retr("/public/../../shared/secret.txt")
	wantCode(t, "bob RETR /public/../../shared/secret.txt", err, 550, "")
	// The mount point cannot be removed.
	wantCode(t, "alice RMD /public", alice.RemoveDir("/public"), 550, "virtual folder")
	if _, err := os.Stat(filepath.Join(ts.Root, "shared", "public")); err != nil {
		t.Errorf("the shared folder is gone: %v", err)
	}
}

func TestFoldersS3Volume(t *testing.T) {
	s3 := s3test.Versitygw(t, "partner-bucket")
	s3.Env(t)
	ts := startServer(t, func(c *config.Config) {
		c.Volumes = []config.Volume{{Name: "partner", Storage: config.Storage{
			Backend: "s3", Bucket: s3.Bucket, Prefix: "exchange/", Region: s3test.Region,
			Endpoint: s3.URL, PathStyle: true, PartSize: 5 << 20, Concurrency: 2,
		}}}
	})
	ts.setFolders(map[string][]auth.FolderEntry{
		"alice": {{Path: "/partner/acme", Volume: "partner", Target: "acme", Permissions: []string{"list", "download", "upload", "delete"}}},
	})
	alice, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
	check(t, "STOR /partner/acme/order.xml", alice.Stor("/partner/acme/order.xml", strings.NewReader("<order/>")))
	got, err := s3.Get(t.Context(), "exchange/acme/order.xml")
	if err != nil || string(got) != "<order/>" {
		t.Fatalf("the object in the partner bucket: %q, %v", got, err)
	}
	// /partner exists only as the way to the folder.
	if got, want := strings.Join(names(t, alice, "/"), " "), "partner/"; got != want {
		t.Errorf("/ lists %q, want %q", got, want)
	}
	if got, want := strings.Join(names(t, alice, "/partner/acme"), " "), "order.xml"; got != want {
		t.Errorf("/partner/acme lists %q, want %q", got, want)
	}
	if got := retr(t, alice, "/partner/acme/order.xml", 0); string(got) != "<order/>" {
		t.Errorf("RETR reads %q", got)
	}
	check(t, "STOR in the home", alice.Stor("/local.txt", strings.NewReader("home")))
	wantCode(t, "rename from the home to the bucket", alice.Rename("/local.txt", "/partner/acme/local.txt"), 553, "/ and /partner/acme are separate storage")
	check(t, "DELE on the volume", alice.Delete("/partner/acme/order.xml"))
	if _, err := s3.Get(t.Context(), "exchange/acme/order.xml"); !s3test.NotFound(err) {
		t.Errorf("the deleted object: %v", err)
	}
}
