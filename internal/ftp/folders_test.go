package ftp

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// folderAuth gives the harness's users virtual folders.
type folderAuth struct {
	Authenticator auth.Authenticator
	folders       []auth.Folder
}

func (a folderAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	u, err := a.Authenticator.Authenticate(ctx, name, password)
	if u != nil {
		u.Limits.Folders = a.folders
	}
	return u, err
}

// folderHarness is alice (who may do everything in her home) with an
// upload-only /inbox, a read-only /outbox, and /partner on a volume of
// its own whose storage cannot append.
func folderHarness(t *testing.T) (*harness, *memstore.Backend) {
	t.Helper()
	partner := memstore.New()
	partner.SetCapabilities(storage.Capabilities{RenameDir: true})
	// Registered before the harness's cleanup, so it runs after the
	// session has ended.
	t.Cleanup(func() {
		if u := partner.InUse(); u != (memstore.Usage{}) {
			t.Errorf("volume still in use after the session ended: %+v", u)
		}
	})
	h := newHarness(t, harnessOpts{config: func(c *Config) {
		c.Auth = folderAuth{Authenticator: c.Auth, folders: []auth.Folder{
			{Path: "/inbox", Target: "exchange/in", Perms: auth.PermUpload},
			{Path: "/outbox", Target: "exchange/out", Perms: auth.PermList | auth.PermDownload},
			{Path: "/partner", Volume: "partner", Target: "acme", Perms: auth.PermList | auth.PermDownload | auth.PermUpload | auth.PermRename | auth.PermDelete},
		}}
		c.Volumes = map[string]storage.Backend{"partner": partner}
	}})
	return h, partner
}

func TestFolderUploadOnlyInbox(t *testing.T) {
	h, _ := folderHarness(t)
	h.login()
	h.stor("/inbox/report.csv", "a,b\n")
	if got := h.file("exchange/in/report.csv"); got != "a,b\n" {
		t.Fatalf("the upload landed as %q", got)
	}
	if h.exists("alice/inbox/report.csv") {
		t.Fatal("the upload went to the home, not the folder")
	}
	for _, line := range []string{"RETR /inbox/report.csv", "LIST /inbox", "NLST /inbox", "MLSD /inbox"} {
		r := h.xfer(line, nil)
		if r.code != 550 || !strings.Contains(r.msg, "in /inbox") {
			t.Errorf("%s: %d %q, want 550 naming /inbox", line, r.code, r.msg)
		}
	}
	h.expect(550, "SIZE /inbox/report.csv")
	h.expect(550, "DELE /inbox/report.csv")
	h.expect(550, "MKD /inbox/sub")
	// Without the overwrite permission an upload cannot replace the file.
	if r := h.xfer("STOR /inbox/report.csv", new("x")); r.code != 550 {
		t.Errorf("STOR over an inbox file: %d %q, want 550", r.code, r.msg)
	}
	if got := h.file("exchange/in/report.csv"); got != "a,b\n" {
		t.Errorf("the refused overwrite changed the file to %q", got)
	}
	// CWD into the folder works; the working directory is inside it.
	h.expect(250, "CWD /inbox")
	h.stor("second.csv", "2")
	if got := h.file("exchange/in/second.csv"); got != "2" {
		t.Errorf("relative STOR in the folder landed as %q", got)
	}
}

func TestFolderReadOnlyOutbox(t *testing.T) {
	h, _ := folderHarness(t)
	h.put("exchange/out/invoice.pdf", "PDF")
	h.login()
	if got := h.retr("/outbox/invoice.pdf"); got != "PDF" {
		t.Fatalf("RETR read %q", got)
	}
	if got := h.list("NLST /outbox"); !slices.Equal(got, []string{"invoice.pdf"}) {
		t.Errorf("NLST /outbox = %q", got)
	}
	if r := h.xfer("STOR /outbox/new.txt", new("x")); r.code != 550 {
		t.Errorf("STOR into /outbox: %d %q, want 550", r.code, r.msg)
	}
	h.expect(550, "DELE /outbox/invoice.pdf")
	h.expect(550, "RNFR /outbox/invoice.pdf")
	h.expect(213, "SIZE /outbox/invoice.pdf")
	// MLST tells the client what it may do in the folder: read, not write.
	msg := h.expect(250, "MLST /outbox/invoice.pdf")
	if !strings.Contains(msg, "perm=r;") {
		t.Errorf("MLST in /outbox: %q, want perm=r", msg)
	}
	if h.exists("exchange/out/new.txt") {
		t.Error("the refused upload left a file")
	}
}

func TestFolderListedAsDirectory(t *testing.T) {
	h, _ := folderHarness(t)
	h.put("alice/own.txt", "mine")
	h.login()
	got := h.list("NLST /")
	slices.Sort(got)
	if want := []string{"inbox", "outbox", "own.txt", "partner"}; !slices.Equal(got, want) {
		t.Errorf("NLST / = %q, want %q", got, want)
	}
	facts := map[string]string{}
	for _, l := range h.list("MLSD /") {
		f, name, _ := strings.Cut(l, " ")
		facts[name] = f
	}
	for name, want := range map[string]string{
		"inbox":   "perm=ce;",  // upload only: no l(ist)
		"outbox":  "perm=el;",  // read only
		"partner": "perm=cel;", // may delete and rename inside, not the mount point itself
		"own.txt": "perm=adfrw;",
	} {
		if !strings.Contains(facts[name], want) {
			t.Errorf("MLSD / shows %s as %q, want %s", name, facts[name], want)
		}
	}
	if !strings.Contains(facts["inbox"], "type=dir;") {
		t.Errorf("MLSD / shows the inbox as %q, want a directory", facts["inbox"])
	}
	// The mount point is the configuration's, not the user's.
	h.expect(550, "RMD /outbox") // no delete permission there
	// /partner's permissions allow deleting and renaming, but not of the
	// mount point itself.
	for _, line := range []string{"RMD /partner", "RNFR /partner"} {
		if msg := h.expect(550, line); !strings.Contains(msg, "virtual folder") {
			t.Errorf("%s: %q, want the virtual-folder refusal", line, msg)
		}
	}
}

func TestFolderRenameAcrossRefused(t *testing.T) {
	h, partner := folderHarness(t)
	h.put("alice/a.txt", "A")
	if err := partner.WriteFile("acme/p.txt", []byte("P")); err != nil {
		t.Fatal(err)
	}
	h.login()
	h.expect(350, "RNFR /a.txt")
	msg := h.expect(553, "RNTO /partner/a.txt")
	if !strings.Contains(msg, "/ and /partner are separate storage") {
		t.Errorf("cross-folder rename: %q", msg)
	}
	h.expect(350, "RNFR /partner/p.txt")
	msg = h.expect(553, "RNTO /inbox/p.txt")
	if !strings.Contains(msg, "/partner and /inbox are separate storage") {
		t.Errorf("cross-folder rename: %q", msg)
	}
	if h.file("alice/a.txt") != "A" {
		t.Error("the refused rename moved the file")
	}
	// Inside a folder, rename works on its volume.
	h.expect(350, "RNFR /partner/p.txt")
	h.expect(250, "RNTO /partner/q.txt")
	if b, err := partner.ReadFile("acme/q.txt"); err != nil || string(b) != "P" {
		t.Errorf("renamed file on the volume: %q, %v", b, err)
	}
	// The volume's capabilities, not the home's, decide APPE.
	if r := h.xfer("APPE /partner/q.txt", new("more")); r.code != 502 {
		t.Errorf("APPE on a volume that cannot append: %d %q, want 502", r.code, r.msg)
	}
	if r := h.xfer("APPE /a.txt", new("more")); r.code != 226 {
		t.Errorf("APPE in the home: %d %q, want 226", r.code, r.msg)
	}
}

func TestFolderUnknownVolumeFailsLogin(t *testing.T) {
	h := newHarness(t, harnessOpts{config: func(c *Config) {
		c.Auth = folderAuth{Authenticator: c.Auth, folders: []auth.Folder{{Path: "/x", Volume: "gone", Target: ".", Perms: auth.PermList}}}
	}})
	h.expect(331, "USER alice")
	h.expect(421, "PASS alice-pw")
	h.closed()
	if !strings.Contains(h.logs.String(), `no volume \"gone\"`) {
		t.Errorf("the log does not say why:\n%s", h.logs.String())
	}
}
