package local

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// tempFiles lists the upload temporaries below dir on the host.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tempPrefix) {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func readHost(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAtomicUpload(t *testing.T) { bothResolvers(t, testAtomicUpload) }

func testAtomicUpload(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	type step func(t *testing.T, up storage.Upload) error
	write := func(data string) step {
		return func(t *testing.T, up storage.Upload) error {
			_, err := io.WriteString(up, data)
			return err
		}
	}
	commit := func(t *testing.T, up storage.Upload) error { return up.Commit(t.Context()) }
	abort := func(t *testing.T, up storage.Upload) error { return up.Abort() }
	cancelled := func(t *testing.T, up storage.Upload) error {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		return up.Commit(ctx)
	}

	for _, tt := range []struct {
		name    string
		old     string // "" for no previous file
		steps   []step
		want    string // file content after; "" for no file
		wantErr error  // from the last step
	}{
		{"commit replaces", "old content", []step{write("new"), commit}, "new", nil},
		{"commit creates", "", []step{write("new"), commit}, "new", nil},
		{"empty commit", "old", []step{commit}, "", nil},
		{"abort keeps old", "old", []step{write("partial"), abort}, "old", nil},
		{"abort before writing", "old", []step{abort}, "old", nil},
		{"abort of a new file", "", []step{write("partial"), abort}, "", nil},
		{"cancelled commit keeps old", "old", []step{write("new"), cancelled}, "old", context.Canceled},
		{"abort after commit", "old", []step{write("new"), commit, abort}, "new", nil},
		{"second commit", "old", []step{write("new"), commit, commit}, "new", errFinished},
		{"write after commit", "old", []step{write("new"), commit, write("more")}, "new", os.ErrClosed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newTree(t)
			target := filepath.Join(dir, "f")
			if tt.old != "" {
				os.WriteFile(target, []byte(tt.old), 0o644)
			}
			up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.old != "" && readHost(t, target) != tt.old {
				t.Error("Create touched the existing file")
			}
			for i, st := range tt.steps {
				err := st(t, up)
				if i == len(tt.steps)-1 {
					if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("last step: error %v, want %v", err, tt.wantErr)
					}
				} else if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			up.Abort() // what a deferred Abort does: must not undo anything
			b, err := os.ReadFile(target)
			switch {
			case tt.want == "" && tt.old == "" && err == nil:
				t.Errorf("file exists with %q, want none", b)
			case (tt.want != "" || tt.old != "") && string(b) != tt.want:
				t.Errorf("file holds %q, want %q", b, tt.want)
			}
			if tmp := tempFiles(t, dir); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

// TestAtomicUploadInvisible checks where the data goes while an upload
// runs: a hidden temporary file next to the target, not listed, and not
// reachable by name.
func TestAtomicUploadInvisible(t *testing.T) { bothResolvers(t, testAtomicUploadInvisible) }

func testAtomicUploadInvisible(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	up, err := s.Create(t.Context(), "/d/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	io.WriteString(up, "in flight")
	tmp := tempFiles(t, dir)
	if len(tmp) != 1 || filepath.Dir(tmp[0]) != filepath.Join(dir, "d") {
		t.Fatalf("temporary files %v, want one in d", tmp)
	}
	it, err := s.ReadDir(t.Context(), "/d")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := it.Next(); err != io.EOF {
		t.Errorf("listing shows %+v (%v) during an upload, want nothing", fi, err)
	}
	it.Close()

	virtual := "/d/" + filepath.Base(tmp[0])
	if _, err := s.Stat(t.Context(), virtual); !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("Stat of the temporary name: %v, want ErrInvalidName", err)
	}
	if r, err := s.Open(t.Context(), virtual, 0); !errors.Is(err, storage.ErrInvalidName) {
		if err == nil {
			r.Close()
		}
		t.Errorf("Open of the temporary name: %v, want ErrInvalidName", err)
	}
	if err := s.Rename(t.Context(), virtual, "/stolen"); !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("Rename of the temporary name: %v, want ErrInvalidName", err)
	}
	if err := s.Remove(t.Context(), virtual); !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("Remove of the temporary name: %v, want ErrInvalidName", err)
	}
}

func TestAtomicUploadKeepsMode(t *testing.T) { bothResolvers(t, testAtomicUploadKeepsMode) }

func testAtomicUploadKeepsMode(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	target := filepath.Join(dir, "f")
	os.WriteFile(target, []byte("old"), 0o600)
	os.Chmod(target, 0o640)
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "new")
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o640 {
		t.Errorf("replaced file has mode %v, want the old 0640", fi.Mode().Perm())
	}
}

func TestExclusiveUpload(t *testing.T) { bothResolvers(t, testExclusiveUpload) }

func testExclusiveUpload(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	os.WriteFile(filepath.Join(dir, "exists"), []byte("old"), 0o644)
	os.Symlink("nowhere", filepath.Join(dir, "dangling"))
	excl := storage.CreateOptions{Exclusive: true}

	for _, name := range []string{"/exists", "/dangling"} {
		if _, err := s.Create(t.Context(), name, excl); !errors.Is(err, storage.ErrExist) {
			t.Errorf("exclusive Create(%s): %v, want ErrExist", name, err)
		}
	}
	if _, err := s.Create(t.Context(), "/exists", storage.CreateOptions{Exclusive: true, Append: true}); !errors.Is(err, storage.ErrExist) {
		t.Errorf("exclusive append to an existing file: %v, want ErrExist", err)
	}

	// The target appears between Create and Commit.
	up, err := s.Create(t.Context(), "/late", excl)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "mine")
	os.WriteFile(filepath.Join(dir, "late"), []byte("theirs"), 0o644)
	if err := up.Commit(t.Context()); !errors.Is(err, storage.ErrExist) {
		t.Errorf("exclusive Commit over a file that appeared: %v, want ErrExist", err)
	}
	if got := readHost(t, filepath.Join(dir, "late")); got != "theirs" {
		t.Errorf("exclusive Commit replaced the file: %q", got)
	}

	up, err = s.Create(t.Context(), "/new", excl)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "new")
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := readHost(t, filepath.Join(dir, "new")); got != "new" {
		t.Errorf("exclusive upload wrote %q", got)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestCreateErrors(t *testing.T) { bothResolvers(t, testCreateErrors) }

func testCreateErrors(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "f"), []byte("12345"), 0o644)
	for _, tt := range []struct {
		name string
		opts storage.CreateOptions
		want error
	}{
		{"/", storage.CreateOptions{}, storage.ErrIsDir},
		{"/d", storage.CreateOptions{}, storage.ErrIsDir},
		{"/d", storage.CreateOptions{Append: true}, storage.ErrIsDir},
		{"/d", storage.CreateOptions{Offset: 1}, storage.ErrIsDir},
		{"/nodir/x", storage.CreateOptions{}, storage.ErrNotExist},
		{"/nodir/x", storage.CreateOptions{Append: true}, storage.ErrNotExist},
		{"/f/x", storage.CreateOptions{}, storage.ErrNotDir},
		{"/missing", storage.CreateOptions{Offset: 1}, storage.ErrNotExist},
		{"/f", storage.CreateOptions{Offset: 6}, storage.ErrUnsupported},
		{"/f", storage.CreateOptions{Offset: -1}, storage.ErrUnsupported},
		{"/f", storage.CreateOptions{Offset: 1, Append: true}, storage.ErrUnsupported},
		{"/" + strings.Repeat("n", 300), storage.CreateOptions{}, storage.ErrInvalidName},
	} {
		up, err := s.Create(t.Context(), tt.name, tt.opts)
		if err == nil {
			up.Abort()
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("Create(%.20s, %+v): %v, want %v", tt.name, tt.opts, err, tt.want)
		}
	}
	if got := readHost(t, filepath.Join(dir, "f")); got != "12345" {
		t.Errorf("failed Creates changed /f: %q", got)
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestInPlaceUploads covers APPE and REST+STOR: written in place, cut at
// the end of the new data on Commit (offset), kept as is on Abort.
func TestInPlaceUploads(t *testing.T) { bothResolvers(t, testInPlaceUploads) }

func testInPlaceUploads(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	for _, tt := range []struct {
		name  string
		old   string // "-" for no file
		opts  storage.CreateOptions
		data  string
		abort bool
		want  string
	}{
		{"append", "abc", storage.CreateOptions{Append: true}, "def", false, "abcdef"},
		{"append creates", "-", storage.CreateOptions{Append: true}, "new", false, "new"},
		{"append empty", "abc", storage.CreateOptions{Append: true}, "", false, "abc"},
		{"append aborted keeps data", "abc", storage.CreateOptions{Append: true}, "def", true, "abcdef"},
		{"exclusive append creates", "-", storage.CreateOptions{Append: true, Exclusive: true}, "new", false, "new"},
		{"offset continues", "0123456789", storage.CreateOptions{Offset: 10}, "abc", false, "0123456789abc"},
		{"offset overwrites and extends", "0123456789", storage.CreateOptions{Offset: 8}, "abcd", false, "01234567abcd"},
		{"offset truncates at the end of the new data", "0123456789", storage.CreateOptions{Offset: 3}, "ab", false, "012ab"},
		{"offset with no data truncates", "0123456789", storage.CreateOptions{Offset: 4}, "", false, "0123"},
		{"offset aborted is in place, not truncated", "0123456789", storage.CreateOptions{Offset: 3}, "ab", true, "012ab56789"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newTree(t)
			target := filepath.Join(dir, "f")
			if tt.old != "-" {
				os.WriteFile(target, []byte(tt.old), 0o644)
			}
			up, err := s.Create(t.Context(), "/f", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(up, tt.data); err != nil {
				t.Fatal(err)
			}
			if tt.abort {
				err = up.Abort()
			} else {
				err = up.Commit(t.Context())
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := readHost(t, target); got != tt.want {
				t.Errorf("file holds %q, want %q", got, tt.want)
			}
			if tmp := tempFiles(t, dir); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

// TestDiscard: a discarded upload leaves the file as it was before it
// (storage.Discarder), where Abort keeps what an in-place one wrote.
func TestDiscard(t *testing.T) { bothResolvers(t, testDiscard) }

func testDiscard(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	for _, tt := range []struct {
		name string
		old  string // "-" for no file
		opts storage.CreateOptions
		data string
		want string // "-" for no file
	}{
		{"atomic replacing", "old", storage.CreateOptions{}, "new data", "old"},
		{"atomic new", "-", storage.CreateOptions{}, "new data", "-"},
		{"append", "abc", storage.CreateOptions{Append: true}, "defgh", "abc"},
		{"append that created the file", "-", storage.CreateOptions{Append: true}, "new", "-"},
		{"exclusive append that created the file", "-", storage.CreateOptions{Append: true, Exclusive: true}, "new", "-"},
		{"offset at the end", "0123456789", storage.CreateOptions{Offset: 10}, "abcdef", "0123456789"},
		// Bytes overwritten below the old length cannot come back; the
		// length does.
		{"offset inside", "0123456789", storage.CreateOptions{Offset: 8}, "abcdef", "01234567ab"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newTree(t)
			target := filepath.Join(dir, "f")
			if tt.old != "-" {
				os.WriteFile(target, []byte(tt.old), 0o644)
			}
			up, err := s.Create(t.Context(), "/f", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(up, tt.data); err != nil {
				t.Fatal(err)
			}
			if err := up.(storage.Discarder).Discard(); err != nil {
				t.Fatal(err)
			}
			if err := up.Abort(); err != nil {
				t.Errorf("Abort after Discard: %v", err)
			}
			b, err := os.ReadFile(target)
			switch {
			case tt.want == "-" && err == nil:
				t.Errorf("file left: %q", b)
			case tt.want != "-" && string(b) != tt.want:
				t.Errorf("file holds %q (%v), want %q", b, err, tt.want)
			}
			if tmp := tempFiles(t, dir); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

// TestAppendNotOAppend checks the append file is not opened with O_APPEND,
// which would make os.File.ReadFrom give up splice.
func TestAppendNotOAppend(t *testing.T) {
	s, _ := newTree(t)
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{Append: true})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	f := up.(*upload).f
	// WriteAt is refused on files opened with O_APPEND.
	if _, err := f.WriteAt([]byte("x"), 0); err != nil {
		t.Errorf("append upload behaves as O_APPEND: %v", err)
	}
}

// TestWriteNoSpace uses /dev/full, where every write fails with ENOSPC,
// to check that Write and ReadFrom report storage.ErrNoSpace.
func TestWriteNoSpace(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	up := &upload{f: f, name: "/full"}
	defer up.Abort()
	if _, err := up.Write([]byte("data")); !errors.Is(err, storage.ErrNoSpace) {
		t.Errorf("Write: %v, want ErrNoSpace", err)
	}
	if _, err := up.ReadFrom(strings.NewReader("data")); !errors.Is(err, storage.ErrNoSpace) {
		t.Errorf("ReadFrom: %v, want ErrNoSpace", err)
	}
	if _, err := up.Write([]byte("data")); err != nil && strings.Contains(err.Error(), "/dev/full") {
		t.Errorf("error %q names the host path", err)
	}
}

// TestReadFromKeepsReaderErrors checks that a failing client connection is
// not reported as a storage failure.
func TestReadFromKeepsReaderErrors(t *testing.T) {
	s, _ := newTree(t)
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	errConn := errors.New("connection reset")
	_, err = io.Copy(up, io.MultiReader(strings.NewReader("x"), errReader{errConn}))
	if err != errConn {
		t.Errorf("io.Copy: %v, want the reader's error unchanged", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestUploadReplaces checks that an upload tells whether committing it
// would replace something, as the server asks when a client may have died
// mid-upload.
func TestUploadReplaces(t *testing.T) { bothResolvers(t, testUploadReplaces) }

func testUploadReplaces(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	ctx := t.Context()
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "old"), []byte("old"), 0o644)
	os.Symlink("nowhere", filepath.Join(dir, "d", "dangling"))
	for _, c := range []struct {
		name string
		opts storage.CreateOptions
		want bool
	}{
		{"/d/new", storage.CreateOptions{}, false},
		{"/d/old", storage.CreateOptions{}, true},
		{"/d/dangling", storage.CreateOptions{}, true}, // a link is something
		{"/d/old", storage.CreateOptions{Append: true}, true},
		{"/d/new2", storage.CreateOptions{Append: true}, true}, // created by Create
	} {
		up, err := s.Create(ctx, c.name, c.opts)
		if err != nil {
			t.Fatalf("Create(%s, %+v): %v", c.name, c.opts, err)
		}
		got, err := up.(storage.Replacer).Replaces()
		if err != nil || got != c.want {
			t.Errorf("Replaces(%s, %+v) = %v, %v; want %v", c.name, c.opts, got, err, c.want)
		}
		up.Abort()
	}
	// A file appearing at the target during the upload counts.
	up, err := s.Create(ctx, "/d/late", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Abort()
	os.WriteFile(filepath.Join(dir, "d", "late"), []byte("late"), 0o644)
	if got, err := up.(storage.Replacer).Replaces(); err != nil || !got {
		t.Errorf("Replaces after the target appeared = %v, %v; want true", got, err)
	}
}
