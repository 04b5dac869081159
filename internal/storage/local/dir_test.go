package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/storagetest"
)

// TestReadDirLarge streams a directory bigger than many batches and checks
// that every entry comes exactly once and nothing else does.
func TestReadDirLarge(t *testing.T) {
	s, dir := newTree(t)
	const n = 10_000
	big := filepath.Join(dir, "big")
	os.Mkdir(big, 0o755)
	for i := range n {
		name := filepath.Join(big, fmt.Sprintf("file-%05d", i))
		if err := os.WriteFile(name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Uploads in progress and leftovers of crashed ones stay hidden.
	os.WriteFile(filepath.Join(big, tempPrefix+"0123456789abcdef"), []byte("x"), 0o644)
	up, err := s.Create(t.Context(), "/big/uploading", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()

	it, err := s.ReadDir(t.Context(), "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	seen := make(map[string]int, n)
	for {
		fi, err := it.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[fi.Name]++
	}
	if len(seen) != n {
		t.Errorf("listed %d distinct names, want %d", len(seen), n)
	}
	for i := range n {
		name := fmt.Sprintf("file-%05d", i)
		if seen[name] != 1 {
			t.Errorf("%s listed %d times", name, seen[name])
		}
	}
	if _, err := it.Next(); err != io.EOF {
		t.Errorf("Next after the end: %v, want io.EOF", err)
	}
}

// TestReadDirEntries checks what an entry says: Lstat semantics, sizes and
// the unique ID.
func TestReadDirEntries(t *testing.T) {
	s, dir := newTree(t)
	os.WriteFile(filepath.Join(dir, "file"), []byte("12345"), 0o640)
	os.Mkdir(filepath.Join(dir, "sub"), 0o750)
	os.Symlink("file", filepath.Join(dir, "link"))
	for i := range 300 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("more-%03d", i)), nil, 0o644)
	}
	got := storagetest.List(t, s, "/")
	if len(got) != 303 {
		t.Errorf("%d entries listed, want 303", len(got))
	}
	for _, tt := range []struct {
		name string
		mode os.FileMode
		size int64
	}{
		{"file", 0o640, 5},
		{"sub", os.ModeDir | 0o750, 0},
		{"link", os.ModeSymlink | 0o777, 4}, // the link itself: "file" is 4 bytes
	} {
		fi, ok := got[tt.name]
		if !ok {
			t.Errorf("%s not listed", tt.name)
			continue
		}
		if fi.Mode != tt.mode || fi.Size != tt.size || fi.ModTime.IsZero() {
			t.Errorf("%s: mode %v size %d mtime %v; want mode %v size %d", tt.name, fi.Mode, fi.Size, fi.ModTime, tt.mode, tt.size)
		}
		if want := hostID(t, filepath.Join(dir, tt.name)); fi.ID != want {
			t.Errorf("%s: ID %q, want %q", tt.name, fi.ID, want)
		}
	}
}

// TestReadDirCloseEarly closes a listing of a large directory while the
// read-ahead goroutine is still busy: Close must stop it and return.
func TestReadDirCloseEarly(t *testing.T) {
	s, dir := newTree(t)
	for i := range 4 * batchSize {
		os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644)
	}
	for range 50 {
		it, err := s.ReadDir(t.Context(), "/")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := it.Next(); err != nil {
			t.Fatal(err)
		}
		if err := it.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := it.Next(); err != io.EOF {
			t.Fatalf("Next after Close: %v, want io.EOF", err)
		}
	}
}

// TestReadDirVanished: a name removed between reading the directory and
// stat-ing it is skipped, not an error.
func TestReadDirVanished(t *testing.T) {
	_, dir := newTree(t)
	for _, name := range []string{"a", "gone", "b"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	st, err := newStatAt(root, ".", f)
	if err != nil {
		t.Fatal(err)
	}
	r := &entryReader{f: f, statAt: st}
	defer r.close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "gone"))
	entries, err := r.statNames(names, nil)
	if err != nil {
		t.Fatalf("statNames: %v", err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("entries %v, want [a b]", got)
	}
}

func TestReadDirCancel(t *testing.T) {
	s, dir := newTree(t)
	for i := range 3 * batchSize {
		os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644)
	}
	ctx, cancel := context.WithCancel(t.Context())
	it, err := s.ReadDir(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	cancel()
	n := 0
	for ; ; n++ {
		_, err = it.Next()
		if err != nil {
			break
		}
	}
	if !errors.Is(err, context.Canceled) || n >= 3*batchSize {
		t.Errorf("after cancel: %d entries then %v; want context.Canceled before the end", n, err)
	}
}
