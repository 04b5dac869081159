//go:build linux

package local

import (
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// xattrsOrSkip skips when dir's file system has no user extended
// attributes; CI's (ext4) has them, so there it fails instead.
func xattrsOrSkip(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "xattr-probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	if err := unix.Setxattr(p, "user.probe", []byte("1"), 0); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no user extended attributes in %s: %v", dir, err)
		}
		t.Skipf("no user extended attributes in %s: %v", dir, err)
	}
}

// upload writes data to name with its SHA-256 handed over, and commits.
func uploadSum(t *testing.T, tr *tree, name, data string, opts storage.CreateOptions) {
	t.Helper()
	up, err := tr.Create(t.Context(), name, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(up, data); err != nil {
		t.Fatal(err)
	}
	up.(storage.ChecksumSetter).SetSHA256(sha256.Sum256([]byte(data)))
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func wantSum(t *testing.T, tr *tree, name, data string) {
	t.Helper()
	got, err := tr.SHA256(t.Context(), name)
	if err != nil {
		t.Fatalf("SHA256(%s): %v", name, err)
	}
	if got != sha256.Sum256([]byte(data)) {
		t.Fatalf("SHA256(%s) = %x, want the hash of %q", name, got, data)
	}
}

func wantNoSum(t *testing.T, tr *tree, name string) {
	t.Helper()
	if got, err := tr.SHA256(t.Context(), name); !errors.Is(err, storage.ErrNoChecksum) {
		t.Fatalf("SHA256(%s) = %x, %v; want ErrNoChecksum", name, got, err)
	}
}

// TestChecksumStored covers the SHA-256 stored in user.cloudftpd.sha256:
// published with the upload's rename, kept by Rename and SetModTime,
// hidden from listings, and never answered once the file has changed
// (append, resume, a write from outside) or when none was stored.
func TestChecksumStored(t *testing.T) {
	tr, dir := newTree(t)
	xattrsOrSkip(t, dir)

	uploadSum(t, tr, "/a.txt", "first version", storage.CreateOptions{})
	wantSum(t, tr, "/a.txt", "first version")
	v, err := unix.Getxattr(filepath.Join(dir, "a.txt"), checksumAttr, make([]byte, 128))
	if err != nil || v == 0 {
		t.Fatalf("attribute %s on disk: %d bytes, %v", checksumAttr, v, err)
	}

	// Replaced by a new upload: the new value.
	uploadSum(t, tr, "/a.txt", "second version", storage.CreateOptions{})
	wantSum(t, tr, "/a.txt", "second version")

	// An aborted upload leaves the old file and its value.
	up, err := tr.Create(t.Context(), "/a.txt", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "never")
	up.(storage.ChecksumSetter).SetSHA256(sha256.Sum256([]byte("never")))
	up.Abort()
	wantSum(t, tr, "/a.txt", "second version")

	// Rename and MFMT keep it.
	if err := tr.Mkdir(t.Context(), "/d"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Rename(t.Context(), "/a.txt", "/d/b.txt"); err != nil {
		t.Fatal(err)
	}
	wantSum(t, tr, "/d/b.txt", "second version")
	if err := tr.SetModTime(t.Context(), "/d/b.txt", time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	wantSum(t, tr, "/d/b.txt", "second version")

	// Listings show the file and nothing else.
	it, err := tr.ReadDir(t.Context(), "/d")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		fi, err := it.Next()
		if err != nil {
			break
		}
		names = append(names, fi.Name)
	}
	it.Close()
	if len(names) != 1 || names[0] != "b.txt" {
		t.Errorf("listing of /d: %q", names)
	}

	// Appending drops it (the file is no longer what was hashed).
	up, err = tr.Create(t.Context(), "/d/b.txt", storage.CreateOptions{Append: true})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, " more")
	up.Commit(t.Context())
	wantNoSum(t, tr, "/d/b.txt")

	// A resumed upload too, even one that fails: the value is dropped
	// before the first byte is written.
	uploadSum(t, tr, "/c.txt", "0123456789", storage.CreateOptions{})
	up, err = tr.Create(t.Context(), "/c.txt", storage.CreateOptions{Offset: 5})
	if err != nil {
		t.Fatal(err)
	}
	up.Abort()
	wantNoSum(t, tr, "/c.txt")

	// Changed on disk by something else, same size: the binding to size
	// and mtime catches it.
	uploadSum(t, tr, "/e.txt", "aaaa", storage.CreateOptions{})
	time.Sleep(10 * time.Millisecond) // a later mtime even on coarse clocks
	if err := os.WriteFile(filepath.Join(dir, "e.txt"), []byte("bbbb"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantNoSum(t, tr, "/e.txt")

	// No value handed over: none stored; missing files and directories
	// are errors of their own.
	up, err = tr.Create(t.Context(), "/plain.txt", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "x")
	up.Commit(t.Context())
	wantNoSum(t, tr, "/plain.txt")
	if _, err := tr.SHA256(t.Context(), "/missing"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("SHA256 of a missing file: %v", err)
	}
	if _, err := tr.SHA256(t.Context(), "/d"); !errors.Is(err, storage.ErrIsDir) {
		t.Errorf("SHA256 of a directory: %v", err)
	}
}

// TestChecksumForeignValue: an attribute not in our format (or forged)
// is not believed.
func TestChecksumForeignValue(t *testing.T) {
	tr, dir := newTree(t)
	xattrsOrSkip(t, dir)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"", "v1 zz 4 0", "v2 " + string(make([]byte, 64)), "v1 00 4 1"} {
		if err := unix.Setxattr(p, checksumAttr, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
		wantNoSum(t, tr, "/f")
	}
}
