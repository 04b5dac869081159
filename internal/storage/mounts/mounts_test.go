package mounts

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
	"github.com/cloudftpd/cloudftpd/internal/storage/storagetest"
)

// setup is alice's tree: her home "alice" with /inbox on "exchange/in",
// /deep/outbox on "exchange/out" and /deep/outbox/sub on "nested", all in
// one memstore so the test can see where files land.
func setup(t *testing.T) (*memstore.Backend, *FS) {
	t.Helper()
	b := memstore.New()
	open := func(dir string) storage.Storage {
		s, err := b.Home(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	f, err := New(open("alice"), []Mount{
		{Path: "/inbox", FS: open("exchange/in")},
		{Path: "/deep/outbox", FS: open("exchange/out")},
		{Path: "/deep/outbox/sub", FS: open("nested")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return b, f
}

func put(t *testing.T, s storage.Storage, name, data string) {
	t.Helper()
	up, err := s.Create(t.Context(), name, storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	if _, err := io.WriteString(up, data); err != nil {
		t.Fatal(err)
	}
	if err := up.Commit(t.Context()); err != nil {
		t.Fatalf("Commit(%q): %v", name, err)
	}
}

func names(m map[string]storage.FileInfo) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		n := k
		if m[k].IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	return strings.Join(out, " ")
}

func TestRouting(t *testing.T) {
	b, f := setup(t)
	for _, c := range []struct{ virtual, backend string }{
		{"/a.txt", "alice/a.txt"},
		{"/inbox/b.txt", "exchange/in/b.txt"},
		{"/inboxes.txt", "alice/inboxes.txt"}, // shares the prefix, not the folder
		{"/deep/outbox/c.txt", "exchange/out/c.txt"},
		{"/deep/outbox/sub/d.txt", "nested/d.txt"},
	} {
		put(t, f, c.virtual, c.virtual)
		got, err := b.ReadFile(c.backend)
		if err != nil || string(got) != c.virtual {
			t.Errorf("%s: backend %s holds %q, %v", c.virtual, c.backend, got, err)
		}
		rc, err := f.Open(t.Context(), c.virtual, 0)
		if err != nil {
			t.Fatalf("Open(%q): %v", c.virtual, err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if string(data) != c.virtual {
			t.Errorf("Open(%q) read %q", c.virtual, data)
		}
	}
	if err := f.Mkdir(t.Context(), "/inbox/new"); err != nil {
		t.Fatal(err)
	}
	if fi, err := b.Home(t.Context(), "exchange/in/new"); err != nil {
		t.Fatal(fi, err)
	}
}

func TestListingShowsFolders(t *testing.T) {
	b, f := setup(t)
	put(t, f, "/a.txt", "a")
	// A real entry named like a folder is hidden by it.
	if err := b.WriteFile("alice/inbox", []byte("shadowed")); err != nil {
		t.Fatal(err)
	}
	put(t, f, "/inbox/x", "x")
	for _, c := range []struct{ dir, want string }{
		{"/", "a.txt deep/ inbox/"},
		{"/deep", "outbox/"}, // exists only as the way to a folder
		{"/deep/outbox", "sub/"},
		{"/inbox", "x"},
	} {
		if got := names(storagetest.List(t, f, c.dir)); got != c.want {
			t.Errorf("ReadDir(%q) = %q, want %q", c.dir, got, c.want)
		}
	}
	for _, p := range []string{"/inbox", "/deep", "/deep/outbox", "/deep/outbox/sub"} {
		fi, err := f.Stat(t.Context(), p)
		if err != nil || !fi.IsDir() {
			t.Errorf("Stat(%q) = %+v, %v; want a directory", p, fi, err)
		}
	}
	if _, err := f.Stat(t.Context(), "/nothing"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat(/nothing) = %v", err)
	}
}

func TestMountPointsAreFixed(t *testing.T) {
	_, f := setup(t)
	ctx := t.Context()
	for _, c := range []struct {
		what string
		err  error
		want error
	}{
		{"RemoveDir /inbox", f.RemoveDir(ctx, "/inbox"), storage.ErrMountPoint},
		{"RemoveDir /deep", f.RemoveDir(ctx, "/deep"), storage.ErrMountPoint},
		{"Remove /inbox", f.Remove(ctx, "/inbox"), storage.ErrIsDir},
		{"Mkdir /deep", f.Mkdir(ctx, "/deep"), storage.ErrExist},
		{"Rename /inbox", f.Rename(ctx, "/inbox", "/box"), storage.ErrMountPoint},
		{"Rename onto /deep", f.Rename(ctx, "/a", "/deep"), storage.ErrMountPoint},
		{"Chmod /inbox", f.Chmod(ctx, "/inbox", 0o700), storage.ErrMountPoint},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
	if _, err := f.Create(ctx, "/deep/outbox", storage.CreateOptions{}); !errors.Is(err, storage.ErrIsDir) {
		t.Errorf("Create over a mount point: %v", err)
	}
	if _, err := f.Open(ctx, "/inbox", 0); !errors.Is(err, storage.ErrIsDir) {
		t.Errorf("Open of a mount point: %v", err)
	}
}

func TestRenameAcrossFoldersRefused(t *testing.T) {
	b, f := setup(t)
	put(t, f, "/a.txt", "a")
	put(t, f, "/inbox/b.txt", "b")
	err := f.Rename(t.Context(), "/a.txt", "/inbox/a.txt")
	var ce *storage.CrossFolderError
	if !errors.As(err, &ce) || !errors.Is(err, storage.ErrCrossFolder) || ce.From != "/" || ce.To != "/inbox" {
		t.Fatalf("Rename home -> /inbox: %v", err)
	}
	if !strings.Contains(err.Error(), "/ and /inbox are separate storage") {
		t.Errorf("message %q does not name the folders", err)
	}
	if err := f.Rename(t.Context(), "/inbox/b.txt", "/deep/outbox/sub/b.txt"); !errors.Is(err, storage.ErrCrossFolder) {
		t.Errorf("Rename /inbox -> nested folder: %v", err)
	}
	// Nothing moved.
	if _, err := b.ReadFile("alice/a.txt"); err != nil {
		t.Error(err)
	}
	// Inside one folder a rename works.
	if err := f.Rename(t.Context(), "/inbox/b.txt", "/inbox/c.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadFile("exchange/in/c.txt"); err != nil {
		t.Error(err)
	}
}

// TestJail: a raw ".." is handed to the folder's own tree, which refuses
// it; it never resolves to a path outside the folder.
func TestJail(t *testing.T) {
	b, f := setup(t)
	if err := b.WriteFile("exchange/secret", []byte("s")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/inbox/../../exchange/secret", "/inbox/..", "/inbox/../secret"} {
		if _, err := f.Open(t.Context(), p, 0); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
		if _, err := f.Stat(t.Context(), p); err == nil {
			t.Errorf("Stat(%q) succeeded", p)
		}
	}
}

// TestContract: the wrapper without folders keeps the storage contract
// (the suite expects "/" to list only its own files, which a folder would
// break by design; the other tests cover the folders).
func TestContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		b := memstore.New()
		home, err := b.Home(context.Background(), "home")
		if err != nil {
			t.Fatal(err)
		}
		f, err := New(home, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	})
}

func TestNewRejects(t *testing.T) {
	b := memstore.New()
	home, _ := b.Home(t.Context(), "h")
	for _, ms := range [][]Mount{
		{{Path: "/", FS: home}},
		{{Path: "in", FS: home}},
		{{Path: "/in/", FS: home}},
		{{Path: "/in", FS: home}, {Path: "/in", FS: home}},
	} {
		if _, err := New(home, ms); err == nil {
			t.Errorf("New(%v) accepted", ms)
		}
	}
}

// TestOpenStat checks that a download opened and described in one step
// reaches the right tree, and that folders and the directories leading to
// them are directories.
func TestOpenStat(t *testing.T) {
	_, f := setup(t)
	put(t, f, "/inbox/b.txt", "hello")
	rc, fi, err := f.OpenStat(t.Context(), "/inbox/b.txt")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "hello" || fi.Size != 5 || fi.Name != "b.txt" {
		t.Errorf("OpenStat read %q, info %+v", data, fi)
	}
	for _, name := range []string{"/inbox", "/deep"} {
		if _, _, err := f.OpenStat(t.Context(), name); !errors.Is(err, storage.ErrIsDir) {
			t.Errorf("OpenStat(%s): %v, want ErrIsDir", name, err)
		}
	}
	if _, _, err := f.OpenStat(t.Context(), "/inbox/none"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("OpenStat of a missing file: %v, want ErrNotExist", err)
	}
}
