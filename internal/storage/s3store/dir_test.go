package s3store

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/storagetest"
)

// TestListPagination lists 95 entries, files and implicit directories
// whose keys straddle page ends, ten at a time.
func TestListPagination(t *testing.T) {
	f := newFake(t)
	b := f.backend(t, Options{})
	b.pageSize = 10
	s, _ := b.Home(t.Context(), "alice")
	f.put(t, "alice/d/", "") // the directory's own marker: not listed
	want := map[string]bool{}
	for i := range 80 {
		f.put(t, fmt.Sprintf("alice/d/f%03d", i), "x")
		want[fmt.Sprintf("f%03d", i)] = false
	}
	for i := range 15 {
		// Several keys under each subdirectory, so that pages end inside
		// a common prefix; one subdirectory has only its marker.
		name := fmt.Sprintf("f%03d.d", i*5)
		f.put(t, "alice/d/"+name+"/", "")
		if i%2 == 0 {
			for j := range 12 {
				f.put(t, fmt.Sprintf("alice/d/%s/g%d", name, j), "y")
			}
		}
		want[name] = true
	}
	f.put(t, "alice/dx", "not in d")
	f.reset()
	it, err := s.ReadDir(t.Context(), "/d")
	if err != nil {
		t.Fatal(err)
	}
	got := storagetest.Drain(t, it)
	if len(got) != len(want) {
		t.Errorf("listed %d entries, want %d", len(got), len(want))
	}
	for name, dir := range want {
		fi, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s missing", name)
		case fi.IsDir() != dir:
			t.Errorf("%s listed as %+v, want directory %v", name, fi, dir)
		case !dir && (fi.Size != 1 || fi.ModTime.IsZero() || fi.ID == ""):
			t.Errorf("%s listed as %+v", name, fi)
		}
	}
	if n := f.count(isList); n < 10 {
		t.Errorf("%d list requests for 95 entries in pages of 10", n)
	}
}

// TestListStreams checks that a large directory is fetched one page at a
// time, as it is read.
func TestListStreams(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{}).Home(t.Context(), "alice")
	const n = 5000
	for i := range n {
		f.put(t, fmt.Sprintf("alice/big/%05d", i), "")
	}
	f.reset()
	it, err := s.ReadDir(t.Context(), "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if got := f.count(isList); got != 1 {
		t.Fatalf("ReadDir made %d list requests, want 1", got)
	}
	for i := range n {
		fi, err := it.Next()
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if want := fmt.Sprintf("%05d", i); fi.Name != want {
			t.Fatalf("entry %d is %q, want %q", i, fi.Name, want)
		}
		if i == defaultPageSize-1 || i == defaultPageSize {
			if got, want := f.count(isList), 1+i/defaultPageSize; got != want {
				t.Errorf("after %d entries: %d list requests, want %d", i+1, got, want)
			}
		}
	}
	if _, err := it.Next(); err != io.EOF {
		t.Errorf("after the last entry: %v, want io.EOF", err)
	}
	if got := f.count(isList); got != n/defaultPageSize {
		t.Errorf("%d list requests for %d keys, want %d", got, n, n/defaultPageSize)
	}
}

// TestImplicitDirectories works with keys written by another S3 tool,
// without directory markers.
func TestImplicitDirectories(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{}).Home(t.Context(), "alice")
	ctx := t.Context()
	f.put(t, "alice/a/b/c.txt", "deep")

	for _, name := range []string{"/a", "/a/b"} {
		fi, err := s.Stat(ctx, name)
		if err != nil || !fi.IsDir() || !fi.ModTime.IsZero() {
			t.Errorf("Stat(%s) = %+v, %v; want a directory with no time", name, fi, err)
		}
	}
	if got := readDir(t, s, "/"); len(got) != 1 || !got["a"].IsDir() {
		t.Errorf("home lists %v, want the directory a", got)
	}
	if got := readDir(t, s, "/a"); len(got) != 1 || !got["b"].IsDir() {
		t.Errorf("/a lists %v, want the directory b", got)
	}
	if r, err := s.Open(ctx, "/a", 0); !errors.Is(err, storage.ErrIsDir) {
		if err == nil {
			r.Close()
		}
		t.Errorf("Open(/a): %v, want ErrIsDir", err)
	}
	wantErr(t, "Mkdir(/a)", s.Mkdir(ctx, "/a"), storage.ErrExist)
	wantErr(t, "RemoveDir(/a)", s.RemoveDir(ctx, "/a"), storage.ErrNotEmpty)
	wantErr(t, "RemoveDir(/a/b)", s.RemoveDir(ctx, "/a/b"), storage.ErrNotEmpty)
	wantErr(t, "Remove(/a)", s.Remove(ctx, "/a"), storage.ErrIsDir)
	wantErr(t, "Rename(/a)", s.Rename(ctx, "/a", "/z"), storage.ErrUnsupported)

	// Uploading into an implicit directory needs no marker.
	up, err := s.Create(ctx, "/a/b/new", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create in an implicit directory: %v", err)
	}
	io.WriteString(up, "new")
	if err := up.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Emptied, an implicit directory stays (it gets a marker), so a tree
	// is removed the usual way: files, then directories, deepest first.
	for _, name := range []string{"/a/b/c.txt", "/a/b/new"} {
		if err := s.Remove(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := s.Stat(ctx, "/a/b"); err != nil || !fi.IsDir() {
		t.Fatalf("Stat of an emptied implicit directory: %+v, %v; want a directory", fi, err)
	}
	if err := s.RemoveDir(ctx, "/a/b"); err != nil {
		t.Fatalf("RemoveDir(/a/b) once empty: %v", err)
	}
	if err := s.RemoveDir(ctx, "/a"); err != nil {
		t.Fatalf("RemoveDir(/a) once empty: %v", err)
	}
	_, err = s.Stat(ctx, "/a")
	wantErr(t, "Stat of a removed directory", err, storage.ErrNotExist)
}

// TestDirectoryMarkers checks the objects Mkdir and RemoveDir handle.
func TestDirectoryMarkers(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{Prefix: "p"}).Home(t.Context(), "alice")
	ctx := t.Context()
	if err := s.Mkdir(ctx, "/m"); err != nil {
		t.Fatal(err)
	}
	if got := f.get(t, "p/alice/m/"); len(got) != 0 {
		t.Errorf("marker holds %q", got)
	}
	fi, err := s.Stat(ctx, "/m")
	if err != nil || !fi.IsDir() || fi.ModTime.IsZero() || fi.Name != "m" {
		t.Errorf("Stat of a marked directory = %+v, %v; want a directory with the marker's time", fi, err)
	}
	if got := readDir(t, s, "/m"); len(got) != 0 {
		t.Errorf("new directory lists %v", got)
	}
	wantErr(t, "Mkdir of an existing marker", s.Mkdir(ctx, "/m"), storage.ErrExist)
	f.put(t, "p/alice/m/sub/", "")
	wantErr(t, "RemoveDir with a subdirectory", s.RemoveDir(ctx, "/m"), storage.ErrNotEmpty)
	if err := s.RemoveDir(ctx, "/m/sub"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDir(ctx, "/m"); err != nil {
		t.Fatal(err)
	}
	if got := readDir(t, s, "/"); len(got) != 0 {
		t.Errorf("home lists %v after RemoveDir", got)
	}
}

// readDir lists name.
func readDir(t *testing.T, s storage.Storage, name string) map[string]storage.FileInfo {
	t.Helper()
	it, err := s.ReadDir(t.Context(), name)
	if err != nil {
		t.Fatalf("ReadDir(%s): %v", name, err)
	}
	return storagetest.Drain(t, it)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
	}
}
