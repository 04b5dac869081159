package retention_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/retention"
	"github.com/cloudftpd/cloudftpd/internal/s3test"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/local"
	"github.com/cloudftpd/cloudftpd/internal/storage/s3store"
)

// usersTOML are the rules every test sweeps by:
//   - alice: everything 2 days, /archive 10 days (longer than her
//     user-wide rule), /tmp 1 hour (shorter);
//   - bob: only /incoming, 1 day;
//   - carol: no rule.
const usersTOML = `
[[user]]
name = "alice"
password_hash = %[1]q
permissions = ["all"]
retention = "2d"
  [[user.dir]]
  path = "/archive"
  retention = "10d"
  [[user.dir]]
  path = "/tmp"
  retention = "1h"

[[user]]
name = "bob"
password_hash = %[1]q
permissions = ["all"]
  [[user.dir]]
  path = "/incoming"
  retention = "1d"
  [[user.dir]]
  path = "/incoming/names"
  denied_patterns = ["*.exe"]

[[user]]
name = "carol"
password_hash = %[1]q
permissions = ["all"]
`

// files are the paths (home/path) every test stores.
var files = []string{
	"alice/a.txt", "alice/sub/b.txt", "alice/sub/deeper/b2.txt",
	"alice/archive/c.txt", "alice/archive/deep/d.txt",
	"alice/tmp/e.txt",
	"bob/top.txt", "bob/other/z.txt", "bob/incoming/x.txt", "bob/incoming/sub/y.txt", "bob/incoming/names/n.txt",
	"carol/f.txt",
}

// expiredAt3Days are the files older than their rule three days on.
var expiredAt3Days = []string{
	"alice/a.txt", "alice/sub/b.txt", "alice/sub/deeper/b2.txt", "alice/tmp/e.txt",
	"bob/incoming/x.txt", "bob/incoming/sub/y.txt", "bob/incoming/names/n.txt",
}

// users loads usersTOML through the users file, as the server does.
func users(t *testing.T) auth.Lister {
	t.Helper()
	h, err := auth.HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(p, fmt.Appendf(nil, usersTOML, h), 0o600); err != nil {
		t.Fatal(err)
	}
	uf, err := auth.LoadUsersFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return auth.NewFileAuthenticator(uf, auth.Options{})
}

// testBackend is a real storage backend for the sweep to work on.
type testBackend struct {
	name string
	make func(t *testing.T) storage.Backend
}

var backends = []testBackend{
	{"local", func(t *testing.T) storage.Backend {
		b, err := local.New(t.TempDir(), local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}},
	{"s3-versitygw", func(t *testing.T) storage.Backend {
		gw := s3test.Versitygw(t, "retention")
		b, err := s3store.New(t.Context(), s3store.Options{Bucket: gw.Bucket, Prefix: "homes/", Client: gw.Client})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
}

// put stores rel ("home/path") through the backend, creating its
// directories, and returns its content.
func put(t *testing.T, b storage.Backend, rel string) {
	t.Helper()
	home, name, _ := strings.Cut(rel, "/")
	st, err := b.Home(t.Context(), home)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dirs := strings.Split(name, "/")
	for i := 1; i < len(dirs); i++ {
		d := "/" + strings.Join(dirs[:i], "/")
		if err := st.Mkdir(t.Context(), d); err != nil && !errors.Is(err, storage.ErrExist) {
			t.Fatal(err)
		}
	}
	u, err := st.Create(t.Context(), "/"+name, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(u, "content of %s\n", rel)
	if err := u.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// stat looks rel up through the backend.
func stat(t *testing.T, b storage.Backend, rel string) (storage.FileInfo, error) {
	t.Helper()
	home, name, _ := strings.Cut(rel, "/")
	st, err := b.Home(t.Context(), home)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return st.Stat(t.Context(), "/"+name)
}

// existing returns the files of want that are still there.
func existing(t *testing.T, b storage.Backend, want []string) []string {
	t.Helper()
	var out []string
	for _, rel := range want {
		_, err := stat(t, b, rel)
		switch {
		case err == nil:
			out = append(out, rel)
		case !errors.Is(err, storage.ErrNotExist):
			t.Fatalf("stat %s: %v", rel, err)
		}
	}
	return out
}

// recorder keeps the events it is given.
type recorder struct {
	mu  sync.Mutex
	evs []events.Event
	// freed is what Options.Deleted heard: bytes and files per user.
	freed map[string][2]int64
}

func (r *recorder) deleted(user string, size int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.freed == nil {
		r.freed = map[string][2]int64{}
	}
	f := r.freed[user]
	r.freed[user] = [2]int64{f[0] + size, f[1] + 1}
}

func (r *recorder) Record(e events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
	return nil
}

func (r *recorder) paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.evs {
		out = append(out, e.User+e.Path)
	}
	slices.Sort(out)
	return out
}

// clock is a settable now.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) set(d time.Duration) {
	c.mu.Lock()
	c.offset = d
	c.mu.Unlock()
}

func sweeper(t *testing.T, b storage.Backend, name string, maxFiles int, rec events.Recorder, c *clock) (*retention.Sweeper, *clienttest.LogBuffer) {
	logs := &clienttest.LogBuffer{}
	us := users(t)
	return retention.New(retention.Options{
		Env: func() retention.Env {
			return retention.Env{Users: us, Storage: b, StorageName: name, Interval: time.Hour, MaxFiles: maxFiles}
		},
		Events:  rec,
		Deleted: deletedHook(rec),
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Now:     c.now,
	}), logs
}

// deletedHook is rec's Deleted callback, when rec is a *recorder.
func deletedHook(rec events.Recorder) func(string, int64) {
	if r, ok := rec.(*recorder); ok {
		return r.deleted
	}
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestSweep stores files in three users' homes and sweeps them now (all
// new: nothing goes) and three days on (S3 modification times cannot be
// set, so the sweep's clock moves): the files older than their most
// specific rule are deleted, with an event each; files under a longer
// per-directory rule, outside any rule's directory, or of a user
// without rules stay, and so do the directories.
func TestSweep(t *testing.T) {
	for _, tb := range backends {
		t.Run(tb.name, func(t *testing.T) {
			b := tb.make(t)
			for _, f := range files {
				put(t, b, f)
			}
			rec, c := &recorder{}, &clock{}
			sw, logs := sweeper(t, b, tb.name, 0, rec, c)

			res, err := sw.Sweep(t.Context())
			if err != nil || res.Deleted != 0 || !res.Complete || res.Failed != 0 {
				t.Fatalf("sweep now: %+v, %v; want nothing deleted", res, err)
			}
			if got := existing(t, b, files); len(got) != len(files) {
				t.Fatalf("new files deleted: left %v", got)
			}

			c.set(3 * 24 * time.Hour)
			res, err = sw.Sweep(t.Context())
			if err != nil || !res.Complete || res.Failed != 0 {
				t.Fatalf("sweep +3d: %+v, %v", res, err)
			}
			if res.Deleted != len(expiredAt3Days) || res.Users != 2 {
				t.Errorf("sweep +3d: %+v, want %d deleted for 2 users", res, len(expiredAt3Days))
			}
			var kept []string
			for _, f := range files {
				if !slices.Contains(expiredAt3Days, f) {
					kept = append(kept, f)
				}
			}
			if got := existing(t, b, files); !slices.Equal(got, kept) {
				t.Errorf("left after +3d:\n got %v\nwant %v", got, kept)
			}
			for _, d := range []string{"alice/sub", "alice/sub/deeper", "alice/tmp", "bob/incoming/sub"} {
				if fi, err := stat(t, b, d); err != nil || !fi.IsDir() {
					t.Errorf("directory %s after the sweep: %+v, %v; want it kept", d, fi, err)
				}
			}
			if got, want := rec.paths(), sorted(expiredAt3Days); !slices.Equal(got, want) {
				t.Errorf("events for\n %v\nwant\n %v", got, want)
			}
			for _, e := range rec.evs {
				if e.Type != events.Expired || e.Storage != tb.name || e.Object == "" || e.ModTime.IsZero() ||
					e.Result != events.ResultOK || !strings.Contains(e.Reason, "retention") || e.Size == 0 {
					t.Errorf("event %+v", e)
				}
			}
			// Options.Deleted (the quota's hook) heard of each deletion
			// with the size the event has.
			want := map[string][2]int64{}
			for _, e := range rec.evs {
				w := want[e.User]
				want[e.User] = [2]int64{w[0] + e.Size, w[1] + 1}
			}
			if !maps.Equal(rec.freed, want) {
				t.Errorf("Deleted heard %v (bytes, files per user), want %v", rec.freed, want)
			}
			if e := rec.evs[0]; !strings.Contains(e.Object, strings.TrimPrefix(e.Path, "/")) {
				t.Errorf("event object %q does not name the file %s", e.Object, e.Path)
			}
			if n := strings.Count(logs.String(), "retention: expired file deleted"); n != len(expiredAt3Days) {
				t.Errorf("%d deletions logged, want %d:\n%s", n, len(expiredAt3Days), logs)
			}
			if !strings.Contains(logs.String(), "user=bob path=/incoming/x.txt age=72h") {
				t.Errorf("log of a deletion lacks user, path and age:\n%s", logs)
			}

			// Eleven days on the archive goes too.
			c.set(11 * 24 * time.Hour)
			if res, err := sw.Sweep(t.Context()); err != nil || res.Deleted != 2 {
				t.Errorf("sweep +11d: %+v, %v; want the 2 archive files", res, err)
			}
			if got, want := existing(t, b, files), []string{"bob/top.txt", "bob/other/z.txt", "carol/f.txt"}; !slices.Equal(got, want) {
				t.Errorf("left after +11d: %v, want %v", got, want)
			}
		})
	}
}

// TestSweepBounded sweeps with room for 3 entries a pass: each pass stops
// there and the next carries on, inside a directory as well as across
// directories and users, until one pass completes; the outcome is that of
// an unbounded pass.
func TestSweepBounded(t *testing.T) {
	for _, tb := range backends {
		t.Run(tb.name, func(t *testing.T) {
			b := tb.make(t)
			all := slices.Clone(files)
			for i := range 7 {
				all = append(all, fmt.Sprintf("alice/many/f%d.txt", i))
			}
			for _, f := range all {
				put(t, b, f)
			}
			rec, c := &recorder{}, &clock{}
			c.set(3 * 24 * time.Hour)
			sw, _ := sweeper(t, b, tb.name, 3, rec, c)
			passes, deleted := 0, 0
			for {
				passes++
				res, err := sw.Sweep(t.Context())
				if err != nil || res.Examined > 3 || res.Failed != 0 {
					t.Fatalf("pass %d: %+v, %v", passes, res, err)
				}
				deleted += res.Deleted
				if res.Complete {
					break
				}
				if passes > 30 {
					t.Fatalf("no complete pass after %d", passes)
				}
			}
			want := append(slices.Clone(expiredAt3Days), "alice/many/f0.txt", "alice/many/f1.txt", "alice/many/f2.txt",
				"alice/many/f3.txt", "alice/many/f4.txt", "alice/many/f5.txt", "alice/many/f6.txt")
			if deleted != len(want) || passes < 5 {
				t.Errorf("%d passes deleted %d files, want %d in several passes", passes, deleted, len(want))
			}
			if left := existing(t, b, want); len(left) > 0 {
				t.Errorf("expired files left: %v", left)
			}
			if got := rec.paths(); !slices.Equal(got, sorted(want)) {
				t.Errorf("events for %v, want %v", got, sorted(want))
			}
		})
	}
}

// TestSweepSkipsUploads starts an upload, sweeps three days on and then
// commits it: an upload in progress (a temporary file on disk, a
// multipart upload or buffer in S3) is not listed, so nothing of it is
// deleted, and the committed file is whole.
func TestSweepSkipsUploads(t *testing.T) {
	for _, tb := range backends {
		t.Run(tb.name, func(t *testing.T) {
			b := tb.make(t)
			put(t, b, "alice/old.txt")
			st, err := b.Home(t.Context(), "alice")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			u, err := st.Create(t.Context(), "/uploading.bin", storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Abort()
			data := []byte(strings.Repeat("x", 1<<16))
			if _, err := u.Write(data); err != nil {
				t.Fatal(err)
			}
			rec, c := &recorder{}, &clock{}
			c.set(3 * 24 * time.Hour)
			sw, _ := sweeper(t, b, tb.name, 0, rec, c)
			res, err := sw.Sweep(t.Context())
			if err != nil || res.Deleted != 1 || res.Failed != 0 {
				t.Fatalf("sweep: %+v, %v; want old.txt deleted", res, err)
			}
			if _, err := u.Write(data); err != nil {
				t.Fatalf("upload after the sweep: %v", err)
			}
			if err := u.Commit(t.Context()); err != nil {
				t.Fatalf("commit after the sweep: %v", err)
			}
			if fi, err := st.Stat(t.Context(), "/uploading.bin"); err != nil || fi.Size != int64(2*len(data)) {
				t.Errorf("committed upload: %+v, %v; want %d bytes", fi, err, 2*len(data))
			}
			if got := rec.paths(); !slices.Equal(got, []string{"alice/old.txt"}) {
				t.Errorf("events for %v", got)
			}
		})
	}
}

// TestSweepLocalAges ages files on disk with SetModTime and sweeps with
// the real clock: in one directory the old file goes and the new one
// stays; a symbolic link to an old file outside the home is neither
// followed nor deleted, and neither is its target.
func TestSweepLocalAges(t *testing.T) {
	root := t.TempDir()
	b, err := local.New(root, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, f := range []string{"alice/old.txt", "alice/new.txt", "alice/tmp/hour-old.txt", "alice/tmp/minute-old.txt"} {
		put(t, b, f)
	}
	st, err := b.Home(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !st.Capabilities().SetModTime {
		t.Fatal("local storage cannot set modification times")
	}
	now := time.Now()
	for name, age := range map[string]time.Duration{
		"/old.txt": 50 * time.Hour, "/new.txt": 47 * time.Hour,
		"/tmp/hour-old.txt": 61 * time.Minute, "/tmp/minute-old.txt": time.Minute,
	} {
		if err := st.SetModTime(t.Context(), name, now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("not alice's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(outside, now.Add(-1000*time.Hour), now.Add(-1000*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "alice", "link.txt")); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	sw, _ := sweeper(t, b, "local", 0, rec, &clock{})
	res, err := sw.Sweep(t.Context())
	if err != nil || res.Deleted != 2 || res.Failed != 0 {
		t.Fatalf("sweep: %+v, %v", res, err)
	}
	if got := rec.paths(); !slices.Equal(got, []string{"alice/old.txt", "alice/tmp/hour-old.txt"}) {
		t.Errorf("deleted %v, want old.txt and tmp/hour-old.txt", got)
	}
	if got := existing(t, b, []string{"alice/new.txt", "alice/tmp/minute-old.txt"}); len(got) != 2 {
		t.Errorf("new files left: %v", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "alice", "link.txt")); err != nil {
		t.Errorf("symbolic link deleted: %v", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("file outside the home deleted: %v", err)
	}
}

// failing is a backend whose trees cannot delete files named "stuck*".
type failing struct{ storage.Backend }

func (f failing) Home(ctx context.Context, home string) (storage.Storage, error) {
	st, err := f.Backend.Home(ctx, home)
	return failingTree{st}, err
}

type failingTree struct{ storage.Storage }

func (f failingTree) Remove(ctx context.Context, name string) error {
	if strings.HasPrefix(filepath.Base(name), "stuck") {
		return fmt.Errorf("remove %s: %w", name, storage.ErrPermission)
	}
	return f.Storage.Remove(ctx, name)
}

// TestSweepContinuesAfterFailure: a file that cannot be deleted is logged
// and counted, and the pass deletes the others.
func TestSweepContinuesAfterFailure(t *testing.T) {
	b := backends[0].make(t)
	for _, f := range []string{"alice/a.txt", "alice/stuck.txt", "alice/z.txt", "bob/incoming/x.txt"} {
		put(t, b, f)
	}
	rec, c := &recorder{}, &clock{}
	c.set(3 * 24 * time.Hour)
	sw, logs := sweeper(t, failing{b}, "local", 0, rec, c)
	res, err := sw.Sweep(t.Context())
	if err != nil || res.Deleted != 3 || res.Failed != 1 || !res.Complete {
		t.Fatalf("sweep: %+v, %v; want 3 deleted, 1 failed", res, err)
	}
	if got := existing(t, b, []string{"alice/a.txt", "alice/stuck.txt", "alice/z.txt", "bob/incoming/x.txt"}); !slices.Equal(got, []string{"alice/stuck.txt"}) {
		t.Errorf("left %v, want only stuck.txt", got)
	}
	if !strings.Contains(logs.String(), "cannot delete an expired file") || !strings.Contains(logs.String(), "path=/stuck.txt") {
		t.Errorf("failure not logged:\n%s", logs)
	}
	if st := sw.Stats(); st.Deleted != 3 || st.Failed != 1 || st.Passes != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestRunStopsWithContext: Run sweeps after its first delay and returns
// when its context ends.
func TestRunStopsWithContext(t *testing.T) {
	b := backends[0].make(t)
	put(t, b, "alice/a.txt")
	rec, c := &recorder{}, &clock{}
	c.set(3 * 24 * time.Hour)
	us := users(t)
	sw := retention.New(retention.Options{
		Env: func() retention.Env {
			return retention.Env{Users: us, Storage: b, StorageName: "local", Interval: time.Hour}
		},
		Events:     rec,
		Now:        c.now,
		FirstDelay: 10 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sw.Run(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.paths()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := rec.paths(); !slices.Equal(got, []string{"alice/a.txt"}) {
		t.Errorf("Run deleted %v", got)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
