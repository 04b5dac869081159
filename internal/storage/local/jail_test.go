package local

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// TestJailRawDotDot checks that paths with ".." are refused even though
// the caller is supposed to clean them, before os.Root is even asked.
func TestJailRawDotDot(t *testing.T) { bothResolvers(t, testJailRawDotDot) }

func testJailRawDotDot(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	// A target that ".." from the home would reach: the home's siblings.
	sibling := filepath.Join(filepath.Dir(dir), "x")
	os.WriteFile(sibling, []byte("secret"), 0o644)
	os.Mkdir(filepath.Join(dir, "a"), 0o755)
	ctx := t.Context()

	for _, name := range []string{"/../x", "/a/../../x", "/a/..", "/..", "x", "", "/a\x00b"} {
		ops := map[string]error{}
		_, ops["Stat"] = s.Stat(ctx, name)
		if r, err := s.Open(ctx, name, 0); err != nil {
			ops["Open"] = err
		} else {
			r.Close()
		}
		if up, err := s.Create(ctx, name, storage.CreateOptions{}); err != nil {
			ops["Create"] = err
		} else {
			up.Abort()
		}
		if it, err := s.ReadDir(ctx, name); err != nil {
			ops["ReadDir"] = err
		} else {
			it.Close()
		}
		ops["Mkdir"] = s.Mkdir(ctx, name)
		ops["Remove"] = s.Remove(ctx, name)
		ops["RemoveDir"] = s.RemoveDir(ctx, name)
		ops["Rename from"] = s.Rename(ctx, name, "/y")
		ops["Rename to"] = s.Rename(ctx, "/a", name)
		ops["SetModTime"] = s.SetModTime(ctx, name, time.Unix(0, 0))
		ops["Chmod"] = s.Chmod(ctx, name, 0o777)
		for op, err := range ops {
			if !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("%s(%q): error %v, want ErrInvalidName", op, name, err)
			}
		}
	}
	if b, _ := os.ReadFile(sibling); string(b) != "secret" {
		t.Errorf("file outside the home changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err != nil {
		t.Errorf("/a was touched: %v", err)
	}
}

// TestJailSymlinks checks that symbolic links pointing out of the home,
// as someone with a shell on the server could create, lead nowhere.
func TestJailSymlinks(t *testing.T) { bothResolvers(t, testJailSymlinks) }

func testJailSymlinks(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	secretTime := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(secret, secretTime, secretTime)

	links := map[string]string{
		"filelink": secret,                     // absolute, to a file
		"rellink":  "../../../../../../secret", // relative, climbing out
		"dirlink":  outside,                    // to a directory
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	perm := func(op, name string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrPermission) {
			t.Errorf("%s(%s): error %v, want ErrPermission", op, name, err)
		}
	}
	for _, name := range []string{"/filelink", "/rellink", "/dirlink/secret", "/dirlink"} {
		_, err := s.Stat(ctx, name)
		perm("Stat", name, err)
		if r, err := s.Open(ctx, name, 0); err == nil {
			b, _ := io.ReadAll(r)
			r.Close()
			t.Errorf("Open(%s) succeeded and read %q", name, b)
		} else {
			perm("Open", name, err)
		}
		for _, opts := range []storage.CreateOptions{{}, {Append: true}, {Offset: 1}, {Exclusive: true}} {
			up, err := s.Create(ctx, name, opts)
			if err == nil {
				io.WriteString(up, "pwned")
				err = up.Commit(ctx)
			}
			if opts.Exclusive && name != "/dirlink/secret" {
				// The link itself exists in the home: ErrExist is the
				// right answer and touches nothing.
				if !errors.Is(err, storage.ErrExist) {
					t.Errorf("exclusive Create(%s): %v, want ErrExist", name, err)
				}
				continue
			}
			perm("Create "+optsName(opts), name, err)
		}
		perm("SetModTime", name, s.SetModTime(ctx, name, time.Now()))
		perm("Chmod", name, s.Chmod(ctx, name, 0o777))
	}

	it, err := s.ReadDir(ctx, "/dirlink")
	if err == nil {
		it.Close()
	}
	perm("ReadDir", "/dirlink", err)
	perm("Mkdir", "/dirlink/new", s.Mkdir(ctx, "/dirlink/new"))
	perm("Remove", "/dirlink/secret", s.Remove(ctx, "/dirlink/secret"))
	perm("Rename", "/dirlink/secret", s.Rename(ctx, "/dirlink/secret", "/stolen"))
	os.WriteFile(filepath.Join(dir, "mine"), []byte("x"), 0o644)
	perm("Rename", "/mine -> /dirlink/mine", s.Rename(ctx, "/mine", "/dirlink/mine"))

	// Outside, nothing was read, written, created, moved or chmod-ed.
	fi, err := os.Stat(secret)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(secret)
	if string(b) != "secret" || fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(secretTime) {
		t.Errorf("outside file changed: %q, mode %v, mtime %v", b, fi.Mode(), fi.ModTime())
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("outside directory has %d entries, want 1", len(ents))
	}

	// The links themselves can be listed (as links, not followed) and
	// removed; removing a link leaves its target alone.
	got := map[string]storage.FileInfo{}
	it, err = s.ReadDir(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	for {
		fi, err := it.Next()
		if err != nil {
			break
		}
		got[fi.Name] = fi
	}
	it.Close()
	for name := range links {
		if got[name].Mode&os.ModeSymlink == 0 {
			t.Errorf("%s listed with mode %v, want a symlink", name, got[name].Mode)
		}
	}
	if err := s.Remove(ctx, "/filelink"); err != nil {
		t.Errorf("Remove of the link itself: %v", err)
	}
	if err := s.RemoveDir(ctx, "/dirlink"); !errors.Is(err, storage.ErrNotDir) {
		t.Errorf("RemoveDir of a symlink to a directory: %v, want ErrNotDir", err)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("removing the link removed its target: %v", err)
	}
}

// TestSymlinkInside checks that links staying inside the home work.
func TestSymlinkInside(t *testing.T) { bothResolvers(t, testSymlinkInside) }

func testSymlinkInside(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "f"), []byte("data"), 0o644)
	os.Symlink("d/f", filepath.Join(dir, "flink"))
	os.Symlink("d", filepath.Join(dir, "dlink"))

	fi, err := s.Stat(t.Context(), "/flink")
	if err != nil || fi.Size != 4 || fi.Mode&os.ModeSymlink != 0 {
		t.Errorf("Stat through an inside link = %+v, %v; want the target's info", fi, err)
	}
	r, err := s.Open(t.Context(), "/dlink/f", 0)
	if err != nil {
		t.Fatalf("Open through an inside link: %v", err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "data" {
		t.Errorf("read %q through an inside link", b)
	}
	// A plain upload replaces the link, not the file it points to.
	up, err := s.Create(t.Context(), "/flink", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "new")
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "d", "f")); string(b) != "data" {
		t.Errorf("upload wrote through the link: target now %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "flink")); !fi.Mode().IsRegular() {
		t.Errorf("after upload /flink has mode %v, want a regular file", fi.Mode())
	}
}

// TestFIFO checks that a FIFO in the home neither hangs a download nor
// gets opened for upload.
func TestFIFO(t *testing.T) { bothResolvers(t, testFIFO) }

func testFIFO(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	if err := mkfifo(filepath.Join(dir, "fifo")); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err := s.Open(t.Context(), "/fifo", 0)
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, storage.ErrPermission) {
			t.Errorf("Open(fifo): %v, want ErrPermission", err)
		}
		for _, opts := range []storage.CreateOptions{{Append: true}, {Offset: 1}} {
			up, err := s.Create(t.Context(), "/fifo", opts)
			if err == nil {
				up.Abort()
				t.Errorf("Create(fifo, %+v) succeeded", opts)
			}
		}
		it, err := s.ReadDir(t.Context(), "/fifo")
		if err == nil {
			it.Close()
		}
		if !errors.Is(err, storage.ErrNotDir) {
			t.Errorf("ReadDir(fifo): %v, want ErrNotDir", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("an operation on a FIFO blocked")
	}
}

func optsName(o storage.CreateOptions) string {
	var parts []string
	if o.Append {
		parts = append(parts, "append")
	}
	if o.Offset > 0 {
		parts = append(parts, "offset")
	}
	if o.Exclusive {
		parts = append(parts, "exclusive")
	}
	if len(parts) == 0 {
		return "atomic"
	}
	return strings.Join(parts, "+")
}
