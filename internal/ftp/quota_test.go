package ftp

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/quota"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// quotaKeeper adapts a quota.Keeper to QuotaKeeper, as internal/server
// does.
type quotaKeeper struct{ k *quota.Keeper }

func (q quotaKeeper) Quota(ctx context.Context, u *auth.User, fs storage.Storage) (Quota, error) {
	t, err := q.k.Tracker(ctx, u.Name, quota.Limits{Bytes: u.Limits.QuotaBytes, Files: u.Limits.QuotaFiles}, fs)
	if err != nil {
		return nil, err
	}
	return quotaTracker{t}, nil
}

type quotaTracker struct{ *quota.Tracker }

func (q quotaTracker) Upload(ctx context.Context, old, base int64, inPlace bool) (QuotaUpload, error) {
	u, err := q.Tracker.Upload(ctx, quota.UploadSpec{Old: old, Base: base, InPlace: inPlace})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// limitsAuth gives users limits that UsersFile.Add cannot set.
type limitsAuth struct {
	auth.Authenticator
	limits map[string]auth.Limits
}

func (a limitsAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	u, err := a.Authenticator.Authenticate(ctx, name, password)
	if u != nil {
		u.Limits = a.limits[name]
	}
	return u, err
}

// quotaHarness is a session whose alice has limits l, with the files of
// files in her home before the session starts (so the first scan sees
// them).
func quotaHarness(t *testing.T, l auth.Limits, files map[string]string) (*harness, *quota.Keeper) {
	t.Helper()
	k := quota.New(quota.Options{})
	t.Cleanup(func() { k.Close() })
	var seed *memstore.Backend
	h := newHarness(t, harnessOpts{config: func(c *Config) {
		c.Auth = limitsAuth{c.Auth, map[string]auth.Limits{"alice": l}}
		c.Quotas = quotaKeeper{k}
		seed = c.Storage.(*memstore.Backend)
		for name, data := range files {
			if err := seed.WriteFile("alice/"+name, []byte(data)); err != nil {
				t.Fatal(err)
			}
		}
	}})
	h.login()
	return h, k
}

func used(t *testing.T, k *quota.Keeper) quota.Usage {
	t.Helper()
	tr := k.Lookup("alice")
	if tr == nil {
		t.Fatal("no tracker for alice")
	}
	st := tr.Status()
	if st.Reserved != (quota.Usage{}) {
		t.Errorf("reservations left after the transfers: %+v", st.Reserved)
	}
	return st.Used
}

func upload(h *harness, line, data string) dataResult {
	h.t.Helper()
	return h.xfer(line, &data)
}

func TestQuotaBytes(t *testing.T) {
	h, k := quotaHarness(t, auth.Limits{QuotaBytes: 100}, map[string]string{"old": strings.Repeat("o", 40)})

	// 60 bytes fit exactly.
	if r := upload(h, "STOR a", strings.Repeat("a", 60)); r.code != 226 {
		t.Fatalf("STOR within quota: %d %q", r.code, r.msg)
	}
	if u := used(t, k); u != (quota.Usage{Bytes: 100, Files: 2}) {
		t.Fatalf("usage %+v, want 100 bytes in 2 files", u)
	}
	// One more byte does not.
	r := upload(h, "STOR b", "b")
	if r.code != 552 || !strings.Contains(r.msg, "Quota exceeded: 100 B of 100 B used.") || !strings.Contains(r.msg, "Upload discarded.") {
		t.Fatalf("STOR past quota: %d %q", r.code, r.msg)
	}
	if h.exists("alice/b") {
		t.Error("the refused upload left a file")
	}
	// A replace larger than the delta allows keeps the old file.
	if r := upload(h, "STOR old", strings.Repeat("n", 41)); r.code != 552 {
		t.Fatalf("replace past quota: %d %q", r.code, r.msg)
	}
	if got := h.file("alice/old"); got != strings.Repeat("o", 40) {
		t.Fatalf("the old file changed: %q", got)
	}
	// A replace whose delta fits works.
	if r := upload(h, "STOR old", strings.Repeat("n", 30)); r.code != 226 {
		t.Fatalf("replace within quota: %d %q", r.code, r.msg)
	}
	if u := used(t, k); u != (quota.Usage{Bytes: 90, Files: 2}) {
		t.Fatalf("usage after the replace %+v, want 90 bytes in 2 files", u)
	}
	// DELE frees the file; RNTO onto a file frees the replaced one.
	h.expect(250, "DELE a")
	if u := used(t, k); u != (quota.Usage{Bytes: 30, Files: 1}) {
		t.Fatalf("usage after DELE %+v", u)
	}
	if r := upload(h, "STOR c", strings.Repeat("c", 50)); r.code != 226 {
		t.Fatalf("STOR after DELE: %d %q", r.code, r.msg)
	}
	h.expect(350, "RNFR c")
	h.expect(250, "RNTO old")
	if u := used(t, k); u != (quota.Usage{Bytes: 50, Files: 1}) {
		t.Fatalf("usage after RNTO onto a file %+v, want 50 bytes in 1 file", u)
	}
	// RMD of an empty directory changes nothing.
	h.expect(257, "MKD d")
	h.expect(250, "RMD d")
	if u := used(t, k); u != (quota.Usage{Bytes: 50, Files: 1}) {
		t.Fatalf("usage after MKD/RMD %+v", u)
	}
}

func TestQuotaFiles(t *testing.T) {
	h, k := quotaHarness(t, auth.Limits{QuotaFiles: 2}, map[string]string{"one": "1"})
	if r := upload(h, "STOR two", "2"); r.code != 226 {
		t.Fatalf("second file: %d %q", r.code, r.msg)
	}
	// A third new file is refused before any data moves.
	r := upload(h, "STOR three", "3")
	if r.first != 552 || r.msg != "Quota exceeded: 2 of 2 files used." {
		t.Fatalf("third file: first reply %d %q, want 552 at once", r.first, r.msg)
	}
	h.expect(552, "STOU")
	// Replacing an existing one is fine.
	if r := upload(h, "STOR two", "22"); r.code != 226 {
		t.Fatalf("replace: %d %q", r.code, r.msg)
	}
	if u := used(t, k); u != (quota.Usage{Bytes: 3, Files: 2}) {
		t.Fatalf("usage %+v", u)
	}
}

// TestQuotaAppend: APPE writes in place, so it stops at the quota
// exactly, keeps what it wrote, and that counts.
func TestQuotaAppend(t *testing.T) {
	h, k := quotaHarness(t, auth.Limits{QuotaBytes: 100}, map[string]string{"log": strings.Repeat("l", 60)})
	r := upload(h, "APPE log", strings.Repeat("x", 70))
	if r.code != 552 || !strings.Contains(r.msg, "Quota exceeded: 100 B of 100 B used") {
		t.Fatalf("APPE past quota: %d %q", r.code, r.msg)
	}
	// memstore keeps an aborted APPE's data or not as it likes (local
	// disk keeps it: see the server tests); never more than the quota,
	// and usage is what the file holds.
	got := h.file("alice/log")
	if len(got) > 100 || !strings.HasPrefix(got, strings.Repeat("l", 60)) {
		t.Fatalf("the file after the APPE has %d bytes", len(got))
	}
	if u := used(t, k); u != (quota.Usage{Bytes: int64(len(got)), Files: 1}) {
		t.Fatalf("usage %+v, want the file's %d bytes", u, len(got))
	}
}

// TestQuotaUsageUnknown: when the first scan fails, uploads are refused
// with 451 rather than let through unbounded, and a later try scans
// again.
func TestQuotaUsageUnknown(t *testing.T) {
	var fs *memstore.Backend
	k := quota.New(quota.Options{})
	t.Cleanup(func() { k.Close() })
	h := newHarness(t, harnessOpts{config: func(c *Config) {
		c.Auth = limitsAuth{c.Auth, map[string]auth.Limits{"alice": {QuotaBytes: 10}}}
		c.Quotas = quotaKeeper{k}
		fs = c.Storage.(*memstore.Backend)
	}})
	h.login()
	fs.FailNext(memstore.OpReadDir, "", errors.New("disk on fire"))
	if r := upload(h, "STOR f", "x"); r.first != 451 || !strings.Contains(r.msg, "usage") {
		t.Fatalf("STOR with unknown usage: %d %q", r.first, r.msg)
	}
	if r := upload(h, "STOR f", "x"); r.code != 226 {
		t.Fatalf("STOR once the scan works: %d %q", r.code, r.msg)
	}
}

// TestQuotaLeavesFoldersOut: a virtual folder's files are not the user's
// to count: uploads there neither use quota nor are refused by it, and
// the first scan counts the home only.
func TestQuotaLeavesFoldersOut(t *testing.T) {
	l := auth.Limits{QuotaBytes: 50, Folders: []auth.Folder{{Path: "/shared", Target: "shared", Perms: auth.PermList | auth.PermDownload | auth.PermUpload | auth.PermDelete}}}
	h, k := quotaHarness(t, l, map[string]string{"old": strings.Repeat("o", 40)})
	if err := h.fs.WriteFile("shared/big", []byte(strings.Repeat("b", 500))); err != nil {
		t.Fatal(err)
	}
	if r := upload(h, "STOR /shared/more", strings.Repeat("m", 200)); r.code != 226 {
		t.Fatalf("STOR into the folder past the user's quota: %d %q", r.code, r.msg)
	}
	h.expect(250, "DELE /shared/big")
	if r := upload(h, "STOR a", strings.Repeat("a", 10)); r.code != 226 {
		t.Fatalf("STOR within quota in the home: %d %q", r.code, r.msg)
	}
	if u := used(t, k); u != (quota.Usage{Bytes: 50, Files: 2}) {
		t.Fatalf("usage %+v, want the home's 50 bytes in 2 files", u)
	}
	if r := upload(h, "STOR b", "b"); r.code != 552 {
		t.Fatalf("STOR past quota in the home: %d %q", r.code, r.msg)
	}
}
