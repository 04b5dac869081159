package local

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// sentinels are the categories the protocol layer maps to replies.
var sentinels = []error{
	storage.ErrNotExist, storage.ErrExist, storage.ErrPermission, storage.ErrNotEmpty,
	storage.ErrIsDir, storage.ErrNotDir, storage.ErrNoSpace, storage.ErrQuota,
	storage.ErrUnsupported, storage.ErrInvalidName,
}

// matching lists the sentinels err matches.
func matching(err error) []error {
	var m []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			m = append(m, s)
		}
	}
	return m
}

func TestMapErr(t *testing.T) {
	escape := func() error {
		r, err := os.OpenRoot(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, err = r.Stat("../x")
		return err
	}()
	host := "/srv/ftp/secret-host-path"
	for _, tt := range []struct {
		err  error
		want error // nil: no sentinel
	}{
		{&fs.PathError{Op: "write", Path: host, Err: syscall.ENOSPC}, storage.ErrNoSpace},
		{&fs.PathError{Op: "write", Path: host, Err: syscall.EDQUOT}, storage.ErrQuota},
		{&fs.PathError{Op: "write", Path: host, Err: syscall.EFBIG}, storage.ErrNoSpace},
		{&os.LinkError{Op: "renameat", Old: host, New: host, Err: syscall.ENOSPC}, storage.ErrNoSpace},
		{&fs.PathError{Op: "removeat", Path: host, Err: syscall.ENOTEMPTY}, storage.ErrNotEmpty},
		{&fs.PathError{Op: "open", Path: host, Err: syscall.EISDIR}, storage.ErrIsDir},
		{&fs.PathError{Op: "open", Path: host, Err: syscall.ENOTDIR}, storage.ErrNotDir},
		{&fs.PathError{Op: "open", Path: host, Err: syscall.ENOENT}, storage.ErrNotExist},
		{&fs.PathError{Op: "open", Path: host, Err: syscall.EEXIST}, storage.ErrExist},
		{&fs.PathError{Op: "open", Path: host, Err: syscall.EACCES}, storage.ErrPermission},
		{&fs.PathError{Op: "open", Path: host, Err: syscall.EROFS}, storage.ErrPermission},
		{&fs.PathError{Op: "open", Path: host, Err: syscall.ENAMETOOLONG}, storage.ErrInvalidName},
		{&os.LinkError{Op: "renameat", Old: host, New: host, Err: syscall.EXDEV}, storage.ErrUnsupported},
		{os.NewSyscallError("fstat", syscall.ENOSPC), storage.ErrNoSpace},
		{escape, storage.ErrPermission},
		{&fs.PathError{Op: "read", Path: host, Err: syscall.EIO}, nil},
	} {
		err := mapErr("op", "/virtual", tt.err)
		got := matching(err)
		switch {
		case tt.want == nil && len(got) != 0:
			t.Errorf("mapErr(%v) matches %v, want none", tt.err, got)
		case tt.want != nil && (len(got) != 1 || got[0] != tt.want):
			// Exactly one: ENOTEMPTY must not also read as ErrExist.
			t.Errorf("mapErr(%v) matches %v, want only %v", tt.err, got, tt.want)
		}
		if msg := err.Error(); strings.Contains(msg, host) || !strings.HasPrefix(msg, "local: op /virtual: ") {
			t.Errorf("mapErr(%v) = %q, want the virtual path and no host path", tt.err, msg)
		}
	}
	if mapErr("op", "/x", nil) != nil {
		t.Error("mapErr(nil) != nil")
	}
}

// TestOperationErrors checks the sentinel of each operation's failures, and
// that no message carries a host path.
func TestOperationErrors(t *testing.T) {
	s, dir := newTree(t)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.Mkdir(filepath.Join(dir, "full"), 0o755)
	os.WriteFile(filepath.Join(dir, "full", "x"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	ctx := t.Context()
	open := func(name string) error {
		r, err := s.Open(ctx, name, 0)
		if err == nil {
			r.Close()
		}
		return err
	}
	readDir := func(name string) error {
		it, err := s.ReadDir(ctx, name)
		if err == nil {
			it.Close()
		}
		return err
	}
	stat := func(name string) error { _, err := s.Stat(ctx, name); return err }
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	for _, tt := range []struct {
		what string
		err  error
		want error
	}{
		{"Stat missing", stat("/nope"), storage.ErrNotExist},
		{"Stat below a file", stat("/f/x"), storage.ErrNotDir},
		{"Open missing", open("/nope"), storage.ErrNotExist},
		{"Open directory", open("/d"), storage.ErrIsDir},
		{"Open home", open("/"), storage.ErrIsDir},
		{"Open below a file", open("/f/x"), storage.ErrNotDir},
		{"ReadDir missing", readDir("/nope"), storage.ErrNotExist},
		{"ReadDir file", readDir("/f"), storage.ErrNotDir},
		{"Mkdir existing", s.Mkdir(ctx, "/d"), storage.ErrExist},
		{"Mkdir home", s.Mkdir(ctx, "/"), storage.ErrExist},
		{"Mkdir over file", s.Mkdir(ctx, "/f"), storage.ErrExist},
		{"Mkdir no parent", s.Mkdir(ctx, "/a/b"), storage.ErrNotExist},
		{"Remove missing", s.Remove(ctx, "/nope"), storage.ErrNotExist},
		{"Remove directory", s.Remove(ctx, "/d"), storage.ErrIsDir},
		{"Remove home", s.Remove(ctx, "/"), storage.ErrIsDir},
		{"RemoveDir non-empty", s.RemoveDir(ctx, "/full"), storage.ErrNotEmpty},
		{"RemoveDir file", s.RemoveDir(ctx, "/f"), storage.ErrNotDir},
		{"RemoveDir missing", s.RemoveDir(ctx, "/nope"), storage.ErrNotExist},
		{"RemoveDir home", s.RemoveDir(ctx, "/"), storage.ErrPermission},
		{"Rename missing", s.Rename(ctx, "/nope", "/x"), storage.ErrNotExist},
		{"Rename onto directory", s.Rename(ctx, "/f", "/d"), storage.ErrExist},
		{"Rename directory onto file", s.Rename(ctx, "/d", "/f"), storage.ErrNotDir},
		{"Rename into itself", s.Rename(ctx, "/d", "/d/e"), storage.ErrInvalidName},
		{"Rename home", s.Rename(ctx, "/", "/x"), storage.ErrPermission},
		{"Rename onto home", s.Rename(ctx, "/f", "/"), storage.ErrPermission},
		{"SetModTime missing", s.SetModTime(ctx, "/nope", time.Now()), storage.ErrNotExist},
		{"Chmod missing", s.Chmod(ctx, "/nope", 0o644), storage.ErrNotExist},
		{"Chmod setuid", s.Chmod(ctx, "/f", os.ModeSetuid|0o755), storage.ErrUnsupported},
		{"Chmod home", s.Chmod(ctx, "/", 0o000), storage.ErrPermission},
		{"Stat cancelled", func() error { _, err := s.Stat(cancelled, "/f"); return err }(), context.Canceled},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error %v, want %v", tt.what, tt.err, tt.want)
		}
		if tt.err != nil && strings.Contains(tt.err.Error(), dir) {
			t.Errorf("%s: error %q names the host path", tt.what, tt.err)
		}
	}
	// The refusals changed nothing.
	if fi, err := os.Stat(filepath.Join(dir, "f")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("/f after refused operations: %v, %v", fi, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() == 0 {
		t.Errorf("home after refused chmod: %v, %v", fi, err)
	}
}

func TestSetModTimeAndChmod(t *testing.T) {
	s, dir := newTree(t)
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	os.Symlink("f", filepath.Join(dir, "link"))
	atime := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(dir, "f"), atime, atime)
	mtime := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)

	for _, name := range []string{"/f", "/d"} {
		if err := s.SetModTime(t.Context(), name, mtime); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(filepath.Join(dir, name))
		if !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", name, fi.ModTime(), mtime)
		}
	}
	if got, ok := accessTime(filepath.Join(dir, "f")); ok && !got.Equal(atime) {
		t.Errorf("SetModTime changed the access time to %v", got)
	}

	if err := s.Chmod(t.Context(), "/link", 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "f")); fi.Mode().Perm() != 0o600 {
		t.Errorf("Chmod through an inside link: target mode %v, want 0600", fi.Mode().Perm())
	}
	if err := s.Chmod(t.Context(), "/d", 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "d")); fi.Mode().Perm() != 0o700 {
		t.Errorf("Chmod of a directory: mode %v, want 0700", fi.Mode().Perm())
	}
}

// TestStatRoot checks how the home itself is described.
func TestStatRoot(t *testing.T) {
	s, dir := newTree(t)
	fi, err := s.Stat(t.Context(), "/")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Name != "/" || !fi.IsDir() || fi.Size != 0 || fi.ID != hostID(t, dir) {
		t.Errorf("Stat(/) = %+v", fi)
	}
}

// TestClosed checks that a closed home refuses work instead of crashing.
func TestClosed(t *testing.T) {
	s, _ := newTree(t)
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "x")
	s.Close()
	if err := up.Commit(t.Context()); err == nil {
		t.Error("Commit after Close succeeded")
	}
	if _, err := s.Stat(t.Context(), "/"); err == nil {
		t.Error("Stat after Close succeeded")
	}
}
