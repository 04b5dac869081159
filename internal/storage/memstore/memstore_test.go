package memstore

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/storagetest"
)

func newHome(t *testing.T, b *Backend, home string) storage.Storage {
	t.Helper()
	s, err := b.Home(t.Context(), home)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the backend suite with every capability, and again
// with none, so that both sides of each capability check are exercised.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return newHome(t, New(), "users/alice")
	})
}

func TestConformanceNoCapabilities(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		b := New()
		b.SetCapabilities(storage.Capabilities{})
		return newHome(t, b, "")
	})
}

func put(t *testing.T, s storage.Storage, name, data string, opts storage.CreateOptions) error {
	t.Helper()
	up, err := s.Create(t.Context(), name, opts)
	if err != nil {
		return err
	}
	defer up.Abort()
	if _, err := io.WriteString(up, data); err != nil {
		return err
	}
	return up.Commit(t.Context())
}

// TestFaults: every injected error reaches the caller wrapped (errors.Is
// matches), FailNext fires once, Fail until cleared, and the hook sees the
// operations with their virtual paths.
func TestFaults(t *testing.T) {
	b := New()
	s := newHome(t, b, "alice")
	ctx := t.Context()
	if err := put(t, s, "/f", "old", storage.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	b.FailNext(OpStat, "/f", storage.ErrPermission)
	if _, err := s.Stat(ctx, "/f"); !errors.Is(err, storage.ErrPermission) {
		t.Errorf("first Stat: %v, want ErrPermission", err)
	}
	if _, err := s.Stat(ctx, "/f"); err != nil {
		t.Errorf("second Stat after FailNext: %v", err)
	}

	b.Fail(OpMkdir, "", storage.ErrQuota)
	for _, d := range []string{"/a", "/b"} {
		if err := s.Mkdir(ctx, d); !errors.Is(err, storage.ErrQuota) {
			t.Errorf("Mkdir(%s) with Fail: %v, want ErrQuota", d, err)
		}
	}
	b.ClearFaults()
	if err := s.Mkdir(ctx, "/a"); err != nil {
		t.Errorf("Mkdir after ClearFaults: %v", err)
	}

	// A failed Write or Commit leaves the old file as it was.
	for _, op := range []Op{OpWrite, OpCommit} {
		b.FailNext(op, "/f", storage.ErrNoSpace)
		err := put(t, s, "/f", "new", storage.CreateOptions{})
		if !errors.Is(err, storage.ErrNoSpace) {
			t.Errorf("upload with %s failing: %v, want ErrNoSpace", op, err)
		}
		if got, _ := b.ReadFile("alice/f"); string(got) != "old" {
			t.Errorf("after a failed %s: %q, want the old content", op, got)
		}
	}
	if u := b.InUse(); u.Uploads != 0 {
		t.Errorf("%d uploads still open after Commit/Abort", u.Uploads)
	}

	var seen []string
	b.SetHook(func(op Op, name string) error {
		seen = append(seen, string(op)+" "+name)
		if op == OpRead {
			return context.DeadlineExceeded
		}
		return nil
	})
	r, err := s.Open(ctx, "/f", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read with the hook failing: %v", err)
	}
	if b.InUse().Readers != 1 {
		t.Errorf("InUse().Readers = %d before Close, want 1", b.InUse().Readers)
	}
	r.Close()
	if got := strings.Join(seen, ","); got != "open /f,read /f" {
		t.Errorf("hook saw %q", got)
	}
	if u := b.InUse(); u.Readers != 0 {
		t.Errorf("InUse() = %+v after Close", u)
	}
}

// TestAtomicAppend: unlike the local disk, an aborted append changes
// nothing, and a reader opened before a commit keeps the old content.
func TestAtomicAppend(t *testing.T) {
	b := New()
	s := newHome(t, b, "")
	ctx := t.Context()
	if err := put(t, s, "/f", "abc", storage.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, "/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	up, err := s.Create(ctx, "/f", storage.CreateOptions{Append: true})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "def")
	up.Abort()
	if got, _ := b.ReadFile("f"); string(got) != "abc" {
		t.Errorf("after an aborted append: %q", got)
	}
	if err := put(t, s, "/f", "XYZ", storage.CreateOptions{Append: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "abc" {
		t.Errorf("reader opened before the commit reads %q, want abc", got)
	}
	if got, _ := b.ReadFile("f"); string(got) != "abcXYZ" {
		t.Errorf("after append: %q", got)
	}
}

// TestHomes: homes share one tree, are created on demand, refuse escapes,
// and are counted until closed.
func TestHomes(t *testing.T) {
	b := New()
	if err := b.WriteFile("alice/dir/f", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s, err := b.Home(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := s.Stat(t.Context(), "/dir/f")
	if err != nil || fi.Size != 1 {
		t.Errorf("Stat in home = %+v, %v", fi, err)
	}
	if b.InUse().Homes != 1 {
		t.Errorf("InUse().Homes = %d", b.InUse().Homes)
	}
	s.Close()
	s.Close()
	if b.InUse().Homes != 0 {
		t.Errorf("InUse().Homes = %d after Close", b.InUse().Homes)
	}
	if _, err := s.Stat(t.Context(), "/"); err == nil {
		t.Error("Stat on a closed home succeeded")
	}
	for _, bad := range []string{"/abs", "../x", "a/../../b"} {
		if _, err := b.Home(t.Context(), bad); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Home(%q): %v, want ErrInvalidName", bad, err)
		}
	}
	b.FailNext(OpHome, "bob", storage.ErrPermission)
	if _, err := b.Home(t.Context(), "bob"); !errors.Is(err, storage.ErrPermission) {
		t.Errorf("Home with a fault: %v", err)
	}
}
