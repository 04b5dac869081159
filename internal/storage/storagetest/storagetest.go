// Package storagetest checks that a storage.Storage keeps the contract the
// FTP protocol layer relies on, whatever it stores files in.
//
// It offers Run, a conformance suite each backend calls from its own tests
// with a constructor for empty trees.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Run checks the backend-independent contract of storage.Storage. Each
// subtest gets its own empty tree from newStorage, which should register
// the tree's cleanup with t.Cleanup.
//
// Beyond what storage.Storage's comments say, it expects that:
//   - an upload is invisible (to Stat, Open and ReadDir) until committed;
//   - Exclusive fails with ErrExist at Create or at Commit;
//   - Open at an offset at or beyond the end reads nothing;
//   - operations the Capabilities deny fail with ErrUnsupported;
//   - a raw ".." path fails with ErrInvalidName or ErrPermission.
func Run(t *testing.T, newStorage func(t *testing.T) storage.Storage) {
	tests := []struct {
		name string
		f    func(t *testing.T, s storage.Storage)
	}{
		{"StatRoot", testStatRoot},
		{"CreateReadBack", testCreateReadBack},
		{"OpenOffset", testOpenOffset},
		{"OpenErrors", testOpenErrors},
		{"CreateErrors", testCreateErrors},
		{"CommitReplaces", testCommitReplaces},
		{"AbortKeepsOld", testAbortKeepsOld},
		{"UploadInvisibleUntilCommit", testUploadInvisible},
		{"AbortAfterCommit", testAbortAfterCommit},
		{"Exclusive", testExclusive},
		{"ListManyEntries", testListMany},
		{"ListErrors", testListErrors},
		{"Mkdir", testMkdir},
		{"Remove", testRemove},
		{"RemoveDir", testRemoveDir},
		{"Rename", testRename},
		{"RenameDir", testRenameDir},
		{"Append", testAppend},
		{"WriteOffset", testWriteOffset},
		{"SetModTime", testSetModTime},
		{"Chmod", testChmod},
		{"InvalidPaths", testInvalidPaths},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f(t, newStorage(t))
		})
	}
}

// put writes a whole file and commits it.
func put(t *testing.T, s storage.Storage, name, data string) {
	t.Helper()
	up, err := s.Create(t.Context(), name, storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	defer up.Abort()
	if _, err := io.WriteString(up, data); err != nil {
		t.Fatalf("write %q: %v", name, err)
	}
	if err := up.Commit(t.Context()); err != nil {
		t.Fatalf("Commit(%q): %v", name, err)
	}
}

// get reads a whole file from offset.
func get(t *testing.T, s storage.Storage, name string, offset int64) string {
	t.Helper()
	r, err := s.Open(t.Context(), name, offset)
	if err != nil {
		t.Fatalf("Open(%q, %d): %v", name, offset, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	return string(b)
}

func mkdir(t *testing.T, s storage.Storage, name string) {
	t.Helper()
	if err := s.Mkdir(t.Context(), name); err != nil {
		t.Fatalf("Mkdir(%q): %v", name, err)
	}
}

// wantErr fails unless err matches want.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

// List returns a directory's entries by name, failing the test on errors
// and on names listed twice.
func List(t *testing.T, s storage.Storage, dir string) map[string]storage.FileInfo {
	t.Helper()
	it, err := s.ReadDir(t.Context(), dir)
	if err != nil {
		t.Fatalf("ReadDir(%q): %v", dir, err)
	}
	return Drain(t, it)
}

// Drain reads it to the end and closes it, returning the entries by name;
// it fails the test on errors and on names listed twice.
func Drain(t *testing.T, it storage.DirIterator) map[string]storage.FileInfo {
	t.Helper()
	defer it.Close()
	got := map[string]storage.FileInfo{}
	for {
		fi, err := it.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if _, dup := got[fi.Name]; dup {
			t.Errorf("%q listed twice", fi.Name)
		}
		got[fi.Name] = fi
	}
}

func testStatRoot(t *testing.T, s storage.Storage) {
	fi, err := s.Stat(t.Context(), "/")
	if err != nil {
		t.Fatalf("Stat(/): %v", err)
	}
	if !fi.IsDir() {
		t.Errorf("Stat(/) mode %v, want a directory", fi.Mode)
	}
	if got := List(t, s, "/"); len(got) != 0 {
		t.Errorf("new tree lists %d entries, want none", len(got))
	}
}

func testCreateReadBack(t *testing.T, s storage.Storage) {
	data := strings.Repeat("cloudftpd ", 100_000) // 1 MB: more than one buffer
	put(t, s, "/a.txt", data)
	if got := get(t, s, "/a.txt", 0); got != data {
		t.Errorf("read back %d bytes, want %d", len(got), len(data))
	}
	fi, err := s.Stat(t.Context(), "/a.txt")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if fi.Name != "a.txt" || fi.Size != int64(len(data)) || fi.IsDir() {
		t.Errorf("Stat = %+v, want name a.txt, size %d, a file", fi, len(data))
	}
	if fi.ModTime.IsZero() {
		t.Error("Stat: zero modification time")
	}

	mkdir(t, s, "/d")
	mkdir(t, s, "/d/e")
	put(t, s, "/d/e/f.txt", "nested")
	if got := get(t, s, "/d/e/f.txt", 0); got != "nested" {
		t.Errorf("nested file reads %q", got)
	}
	put(t, s, "/empty", "")
	if got := get(t, s, "/empty", 0); got != "" {
		t.Errorf("empty file reads %q", got)
	}
}

func testOpenOffset(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "0123456789")
	for _, tt := range []struct {
		offset int64
		want   string
	}{
		{0, "0123456789"},
		{3, "3456789"},
		{9, "9"},
		{10, ""}, // REST with the full size, then RETR
		{25, ""},
	} {
		if got := get(t, s, "/f", tt.offset); got != tt.want {
			t.Errorf("Open at %d reads %q, want %q", tt.offset, got, tt.want)
		}
	}
}

func testOpenErrors(t *testing.T, s storage.Storage) {
	mkdir(t, s, "/d")
	for _, tt := range []struct {
		name string
		want error
	}{
		{"/missing", storage.ErrNotExist},
		{"/d/missing", storage.ErrNotExist},
		{"/nodir/f", storage.ErrNotExist},
		{"/d", storage.ErrIsDir},
		{"/", storage.ErrIsDir},
	} {
		r, err := s.Open(t.Context(), tt.name, 0)
		if err == nil {
			r.Close()
		}
		wantErr(t, "Open("+tt.name+")", err, tt.want)
	}
}

func testCreateErrors(t *testing.T, s storage.Storage) {
	mkdir(t, s, "/d")
	for _, tt := range []struct {
		name string
		want error
	}{
		{"/nodir/f", storage.ErrNotExist},
		{"/d", storage.ErrIsDir},
	} {
		// A backend may only find out on Commit (S3 has no directories to
		// check against cheaply), so the error may come from either.
		up, err := s.Create(t.Context(), tt.name, storage.CreateOptions{})
		if err == nil {
			io.WriteString(up, "x")
			err = up.Commit(t.Context())
			up.Abort()
		}
		wantErr(t, "Create("+tt.name+")", err, tt.want)
	}
}

func testCommitReplaces(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "old content, longer than the new one")
	put(t, s, "/f", "new")
	if got := get(t, s, "/f", 0); got != "new" {
		t.Errorf("after replacing: %q, want %q", got, "new")
	}
}

func testAbortKeepsOld(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "old")
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "partial new content")
	if err := up.Abort(); err != nil {
		t.Errorf("Abort: %v", err)
	}
	if got := get(t, s, "/f", 0); got != "old" {
		t.Errorf("after Abort: %q, want the old content", got)
	}

	// An aborted upload of a new name leaves nothing.
	up, err = s.Create(t.Context(), "/new", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "data")
	up.Abort()
	_, err = s.Stat(t.Context(), "/new")
	wantErr(t, "Stat after aborted upload", err, storage.ErrNotExist)
	if got := List(t, s, "/"); len(got) != 1 {
		t.Errorf("after aborted uploads the home lists %v, want only f", keys(got))
	}

	// A cancelled Commit does not publish.
	ctx, cancel := context.WithCancel(t.Context())
	up, err = s.Create(ctx, "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "cancelled")
	cancel()
	if err := up.Commit(ctx); err == nil {
		t.Error("Commit with a cancelled context succeeded")
	}
	up.Abort()
	if got := get(t, s, "/f", 0); got != "old" {
		t.Errorf("after cancelled Commit: %q, want the old content", got)
	}
}

func testUploadInvisible(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "old")
	up1, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up1.Abort()
	up2, err := s.Create(t.Context(), "/g", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up2.Abort()
	io.WriteString(up1, "new")
	io.WriteString(up2, "new")

	if got := get(t, s, "/f", 0); got != "old" {
		t.Errorf("during upload /f reads %q, want the old content", got)
	}
	_, err = s.Stat(t.Context(), "/g")
	wantErr(t, "Stat of an uncommitted new file", err, storage.ErrNotExist)
	if got := List(t, s, "/"); len(got) != 1 || got["f"].Size != 3 {
		t.Errorf("during uploads the home lists %v, want only f (3 bytes)", got)
	}

	if err := up2.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "/g", 0); got != "new" {
		t.Errorf("after Commit /g reads %q", got)
	}
}

func testAbortAfterCommit(t *testing.T, s storage.Storage) {
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "kept")
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := up.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v, want a no-op", err)
	}
	if got := get(t, s, "/f", 0); got != "kept" {
		t.Errorf("after Commit then Abort: %q", got)
	}
}

func testExclusive(t *testing.T, s storage.Storage) {
	excl := storage.CreateOptions{Exclusive: true}
	up, err := s.Create(t.Context(), "/new", excl)
	if err != nil {
		t.Fatalf("exclusive Create of a new name: %v", err)
	}
	io.WriteString(up, "first")
	if err := up.Commit(t.Context()); err != nil {
		t.Fatalf("exclusive Commit of a new name: %v", err)
	}

	// Existing target: ErrExist, at Create or at Commit.
	up, err = s.Create(t.Context(), "/new", excl)
	if err == nil {
		io.WriteString(up, "second")
		err = up.Commit(t.Context())
		up.Abort()
	}
	wantErr(t, "exclusive upload over an existing file", err, storage.ErrExist)
	if got := get(t, s, "/new", 0); got != "first" {
		t.Errorf("after refused exclusive upload: %q, want the first content", got)
	}

	// The target appears while the upload runs: Commit must not replace it.
	up, err = s.Create(t.Context(), "/race", excl)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	io.WriteString(up, "late")
	put(t, s, "/race", "early")
	wantErr(t, "exclusive Commit after the target appeared", up.Commit(t.Context()), storage.ErrExist)
	if got := get(t, s, "/race", 0); got != "early" {
		t.Errorf("exclusive Commit replaced a file that appeared meanwhile: %q", got)
	}
}

func testListMany(t *testing.T, s storage.Storage) {
	const n = 1000
	mkdir(t, s, "/many")
	for i := range n {
		put(t, s, fmt.Sprintf("/many/f%04d", i), strings.Repeat("x", i%7))
	}
	mkdir(t, s, "/many/sub")
	got := List(t, s, "/many")
	if len(got) != n+1 {
		t.Errorf("listed %d entries, want %d", len(got), n+1)
	}
	for i := range n {
		name := fmt.Sprintf("f%04d", i)
		fi, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s missing from the listing", name)
		case fi.IsDir() || fi.Size != int64(i%7):
			t.Errorf("%s listed as %+v, want a file of %d bytes", name, fi, i%7)
		}
	}
	if fi := got["sub"]; !fi.IsDir() {
		t.Errorf("sub listed as %+v, want a directory", fi)
	}
	if got := List(t, s, "/"); len(got) != 1 || !got["many"].IsDir() {
		t.Errorf("home lists %v, want only the directory many", keys(got))
	}
}

func testListErrors(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "x")
	for _, tt := range []struct {
		name string
		want error
	}{
		{"/missing", storage.ErrNotExist},
		{"/f", storage.ErrNotDir},
	} {
		it, err := s.ReadDir(t.Context(), tt.name)
		if err == nil {
			// A backend may report the error on the first Next.
			_, err = it.Next()
			it.Close()
		}
		wantErr(t, "ReadDir("+tt.name+")", err, tt.want)
	}
}

func testMkdir(t *testing.T, s storage.Storage) {
	mkdir(t, s, "/d")
	fi, err := s.Stat(t.Context(), "/d")
	if err != nil || !fi.IsDir() || fi.Name != "d" {
		t.Errorf("Stat of a new directory = %+v, %v", fi, err)
	}
	put(t, s, "/f", "x")
	wantErr(t, "Mkdir of an existing directory", s.Mkdir(t.Context(), "/d"), storage.ErrExist)
	wantErr(t, "Mkdir over a file", s.Mkdir(t.Context(), "/f"), storage.ErrExist)
	wantErr(t, "Mkdir without parent", s.Mkdir(t.Context(), "/a/b"), storage.ErrNotExist)
}

func testRemove(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "x")
	mkdir(t, s, "/d")
	if err := s.Remove(t.Context(), "/f"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	_, err := s.Stat(t.Context(), "/f")
	wantErr(t, "Stat after Remove", err, storage.ErrNotExist)
	wantErr(t, "Remove of a missing file", s.Remove(t.Context(), "/f"), storage.ErrNotExist)
	wantErr(t, "Remove of a directory", s.Remove(t.Context(), "/d"), storage.ErrIsDir)
	if _, err := s.Stat(t.Context(), "/d"); err != nil {
		t.Errorf("directory gone after a refused Remove: %v", err)
	}
}

func testRemoveDir(t *testing.T, s storage.Storage) {
	mkdir(t, s, "/d")
	put(t, s, "/d/f", "x")
	put(t, s, "/f", "x")
	wantErr(t, "RemoveDir of a non-empty directory", s.RemoveDir(t.Context(), "/d"), storage.ErrNotEmpty)
	wantErr(t, "RemoveDir of a file", s.RemoveDir(t.Context(), "/f"), storage.ErrNotDir)
	wantErr(t, "RemoveDir of a missing directory", s.RemoveDir(t.Context(), "/nope"), storage.ErrNotExist)
	if got := get(t, s, "/d/f", 0); got != "x" {
		t.Errorf("file inside a refused RemoveDir: %q", got)
	}
	if err := s.Remove(t.Context(), "/d/f"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDir(t.Context(), "/d"); err != nil {
		t.Fatalf("RemoveDir of an empty directory: %v", err)
	}
	_, err := s.Stat(t.Context(), "/d")
	wantErr(t, "Stat after RemoveDir", err, storage.ErrNotExist)
	if err := s.RemoveDir(t.Context(), "/"); err == nil {
		t.Error("RemoveDir(/) succeeded")
	}
}

func testRename(t *testing.T, s storage.Storage) {
	put(t, s, "/a", "A")
	put(t, s, "/b", "B")
	mkdir(t, s, "/d")
	if err := s.Rename(t.Context(), "/a", "/d/a2"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if got := get(t, s, "/d/a2", 0); got != "A" {
		t.Errorf("renamed file reads %q", got)
	}
	_, err := s.Stat(t.Context(), "/a")
	wantErr(t, "Stat of the old name", err, storage.ErrNotExist)

	if err := s.Rename(t.Context(), "/d/a2", "/b"); err != nil {
		t.Fatalf("Rename over a file: %v", err)
	}
	if got := get(t, s, "/b", 0); got != "A" {
		t.Errorf("file replaced by Rename reads %q, want A", got)
	}

	wantErr(t, "Rename of a missing file", s.Rename(t.Context(), "/nope", "/x"), storage.ErrNotExist)
	wantErr(t, "Rename onto a directory", s.Rename(t.Context(), "/b", "/d"), storage.ErrExist)
	wantErr(t, "Rename into a missing directory", s.Rename(t.Context(), "/b", "/nodir/b"), storage.ErrNotExist)
	if got := get(t, s, "/b", 0); got != "A" {
		t.Errorf("after refused Renames /b reads %q", got)
	}
	if err := s.Rename(t.Context(), "/", "/x"); err == nil {
		t.Error("Rename(/) succeeded")
	}
}

func testRenameDir(t *testing.T, s storage.Storage) {
	mkdir(t, s, "/d")
	put(t, s, "/d/f", "x")
	err := s.Rename(t.Context(), "/d", "/e")
	if !s.Capabilities().RenameDir {
		wantErr(t, "Rename of a directory without RenameDir", err, storage.ErrUnsupported)
		return
	}
	if err != nil {
		t.Fatalf("Rename of a directory: %v", err)
	}
	if got := get(t, s, "/e/f", 0); got != "x" {
		t.Errorf("file in a renamed directory reads %q", got)
	}
	_, err = s.Stat(t.Context(), "/d")
	wantErr(t, "Stat of the old directory name", err, storage.ErrNotExist)
}

func testAppend(t *testing.T, s storage.Storage) {
	appendTo := func(name, data string) error {
		up, err := s.Create(t.Context(), name, storage.CreateOptions{Append: true})
		if err != nil {
			return err
		}
		defer up.Abort()
		if _, err := io.WriteString(up, data); err != nil {
			return err
		}
		return up.Commit(t.Context())
	}
	if !s.Capabilities().Append {
		wantErr(t, "Append without the capability", appendTo("/f", "x"), storage.ErrUnsupported)
		return
	}
	put(t, s, "/f", "abc")
	if err := appendTo("/f", "def"); err != nil {
		t.Fatalf("append: %v", err)
	}
	if got := get(t, s, "/f", 0); got != "abcdef" {
		t.Errorf("after append: %q", got)
	}
	if err := appendTo("/new", "created"); err != nil {
		t.Fatalf("append to a missing file: %v", err)
	}
	if got := get(t, s, "/new", 0); got != "created" {
		t.Errorf("append to a missing file: %q", got)
	}
	mkdir(t, s, "/d")
	wantErr(t, "append to a directory", appendTo("/d", "x"), storage.ErrIsDir)
}

func testWriteOffset(t *testing.T, s storage.Storage) {
	writeAt := func(name string, offset int64, data string) error {
		up, err := s.Create(t.Context(), name, storage.CreateOptions{Offset: offset})
		if err != nil {
			return err
		}
		defer up.Abort()
		if _, err := io.WriteString(up, data); err != nil {
			return err
		}
		return up.Commit(t.Context())
	}
	put(t, s, "/f", "0123456789")
	if !s.Capabilities().WriteOffset {
		wantErr(t, "offset write without the capability", writeAt("/f", 5, "x"), storage.ErrUnsupported)
		return
	}
	if err := writeAt("/f", 4, "abcdefghij"); err != nil {
		t.Fatalf("write at 4: %v", err)
	}
	if got := get(t, s, "/f", 0); got != "0123abcdefghij" {
		t.Errorf("after writing past the end from 4: %q", got)
	}
	// A shorter resumed upload ends the file where it stops.
	if err := writeAt("/f", 2, "XY"); err != nil {
		t.Fatalf("write at 2: %v", err)
	}
	if got := get(t, s, "/f", 0); got != "01XY" {
		t.Errorf("after a short write at 2: %q, want 01XY", got)
	}
	// At exactly the end: a plain continuation.
	if err := writeAt("/f", 4, "Z"); err != nil {
		t.Fatalf("write at the end: %v", err)
	}
	if got := get(t, s, "/f", 0); got != "01XYZ" {
		t.Errorf("after writing at the end: %q", got)
	}
	if err := writeAt("/f", 100, "x"); err == nil {
		t.Error("write beyond the end succeeded")
	}
	if got := get(t, s, "/f", 0); got != "01XYZ" {
		t.Errorf("after a refused write beyond the end: %q", got)
	}
	wantErr(t, "offset write to a missing file", writeAt("/missing", 3, "x"), storage.ErrNotExist)
}

func testSetModTime(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "x")
	when := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	err := s.SetModTime(t.Context(), "/f", when)
	if !s.Capabilities().SetModTime {
		wantErr(t, "SetModTime without the capability", err, storage.ErrUnsupported)
		return
	}
	if err != nil {
		t.Fatalf("SetModTime: %v", err)
	}
	fi, err := s.Stat(t.Context(), "/f")
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime.Equal(when) {
		t.Errorf("ModTime %v, want %v", fi.ModTime, when)
	}
	wantErr(t, "SetModTime of a missing file", s.SetModTime(t.Context(), "/nope", when), storage.ErrNotExist)
}

func testChmod(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "x")
	err := s.Chmod(t.Context(), "/f", 0o600)
	if !s.Capabilities().Chmod {
		wantErr(t, "Chmod without the capability", err, storage.ErrUnsupported)
		return
	}
	if err != nil {
		t.Fatalf("Chmod: %v", err)
	}
	fi, err := s.Stat(t.Context(), "/f")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode.Perm() != 0o600 {
		t.Errorf("mode %v after Chmod 0600", fi.Mode)
	}
	wantErr(t, "Chmod of a missing file", s.Chmod(t.Context(), "/nope", 0o644), storage.ErrNotExist)
}

func testInvalidPaths(t *testing.T, s storage.Storage) {
	put(t, s, "/f", "x")
	ctx := t.Context()
	for _, name := range []string{"/../f", "/a/../../f", "relative", "", "/f\x00"} {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, storage.ErrInvalidName) && !errors.Is(err, storage.ErrPermission) {
				t.Errorf("%s(%q): error %v, want ErrInvalidName or ErrPermission", op, name, err)
			}
		}
		_, err := s.Stat(ctx, name)
		check("Stat", err)
		r, err := s.Open(ctx, name, 0)
		if err == nil {
			r.Close()
		}
		check("Open", err)
		up, err := s.Create(ctx, name, storage.CreateOptions{})
		if err == nil {
			up.Abort()
		}
		check("Create", err)
		it, err := s.ReadDir(ctx, name)
		if err == nil {
			it.Close()
		}
		check("ReadDir", err)
		check("Mkdir", s.Mkdir(ctx, name))
		check("Remove", s.Remove(ctx, name))
		check("RemoveDir", s.RemoveDir(ctx, name))
		check("Rename", s.Rename(ctx, "/f", name))
	}
	if got := get(t, s, "/f", 0); got != "x" {
		t.Errorf("/f reads %q after invalid paths", got)
	}
}

func keys(m map[string]storage.FileInfo) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
