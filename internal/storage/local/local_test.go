package local

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/storagetest"
)

// newTree returns a fresh home and its directory on the host.
func newTree(t *testing.T) (*tree, string) {
	t.Helper()
	return newTreeOpts(t, Options{})
}

// newTreeOsRoot is a tree that reaches the disk through os.Root alone, as
// on a kernel without openat2.
func newTreeOsRoot(t *testing.T) (*tree, string) {
	t.Helper()
	return newTreeOpts(t, Options{noOpenat2: true})
}

// bothResolvers runs f on trees that resolve paths through openat2 (where
// the kernel has it: Linux 5.6 and later) and through os.Root: the jail
// must hold either way.
func bothResolvers(t *testing.T, f func(t *testing.T, newTree func(*testing.T) (*tree, string))) {
	t.Run("openat2", func(t *testing.T) {
		f(t, func(t *testing.T) (*tree, string) {
			t.Helper()
			s, dir := newTree(t)
			if s.home == nil {
				if runtime.GOOS == "linux" && os.Getenv("CI") == "true" {
					t.Fatal("openat2 is not available on this Linux kernel")
				}
				t.Skip("openat2 is not available here")
			}
			return s, dir
		})
	})
	t.Run("os.Root", func(t *testing.T) {
		f(t, newTreeOsRoot)
	})
}

func newTreeOpts(t *testing.T, opts Options) (*tree, string) {
	t.Helper()
	b, err := New(filepath.Join(t.TempDir(), "root"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	s, err := b.Home(t.Context(), "user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*tree), filepath.Join(b.root.Name(), "user")
}

func TestConformance(t *testing.T) {
	bothResolvers(t, func(t *testing.T, newTree func(*testing.T) (*tree, string)) {
		storagetest.Run(t, func(t *testing.T) storage.Storage {
			s, _ := newTree(t)
			return s
		})
	})
}

func TestNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "root")
	b, err := New(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("root created with mode %v, want 0750", fi.Mode().Perm())
	}
	if b.opts.FileMode != 0o644 || b.opts.DirMode != 0o755 {
		t.Errorf("default options %+v", b.opts)
	}

	for _, opts := range []Options{{FileMode: fs.ModeSetuid | 0o644}, {DirMode: fs.ModeSticky | 0o755}} {
		if _, err := New(t.TempDir(), opts); err == nil {
			t.Errorf("New accepted %+v", opts)
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := New(file, Options{}); err == nil {
		t.Error("New accepted a file as root")
	}
}

func TestHome(t *testing.T) {
	rootDir := filepath.Join(t.TempDir(), "root")
	b, err := New(rootDir, Options{DirMode: 0o700})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	for _, tt := range []struct {
		home string
		dir  string // on the host, below rootDir; "" when Home must fail
	}{
		{"alice", "alice"},
		{"team/bob", "team/bob"},
		{"team//carol/", "team/carol"},
		{"./dave", "dave"},
		{"", "."},
		{".", "."},
		{"..", ""},
		{"../x", ""},
		{"a/../../x", ""},
		{"a/..", ""}, // harmless, but ".." means a bug in the caller
		{"/etc", ""},
		{"a\x00b", ""},
	} {
		s, err := b.Home(t.Context(), tt.home)
		if tt.dir == "" {
			if !errors.Is(err, storage.ErrInvalidName) {
				t.Errorf("Home(%q): error %v, want ErrInvalidName", tt.home, err)
			}
			if s != nil {
				s.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("Home(%q): %v", tt.home, err)
			continue
		}
		// Files land in the home's directory on the host.
		up, err := s.Create(t.Context(), "/marker", storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		up.Commit(t.Context())
		s.Close()
		if _, err := os.Stat(filepath.Join(rootDir, tt.dir, "marker")); err != nil {
			t.Errorf("Home(%q): marker not in %s: %v", tt.home, tt.dir, err)
		}
		fi, err := os.Stat(filepath.Join(rootDir, tt.dir))
		if err == nil && tt.dir != "." && fi.Mode().Perm() != 0o700 {
			t.Errorf("Home(%q) created with mode %v, want DirMode 0700", tt.home, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(rootDir), "x")); err == nil {
		t.Error("a home escaped the root")
	}
}

// openFDs counts this process's open descriptors (Linux).
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// TestHomeShared: sessions in one home share one descriptor; closing one
// leaves the others working and the closed one refusing work; a home
// directory replaced on disk is what the next session gets; the last
// Close releases the descriptor.
func TestHomeShared(t *testing.T) {
	rootDir := filepath.Join(t.TempDir(), "root")
	b, err := New(rootDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	home := func() storage.Storage {
		t.Helper()
		s, err := b.Home(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	write := func(s storage.Storage, name string) error {
		up, err := s.Create(ctx, name, storage.CreateOptions{})
		if err != nil {
			return err
		}
		return up.Commit(ctx)
	}

	base := openFDs(t)
	s1 := home()
	afterFirst := openFDs(t)
	var more []storage.Storage
	for range 10 {
		more = append(more, home())
	}
	if n := openFDs(t); n != afterFirst {
		t.Errorf("10 more sessions in the same home opened %d descriptors, want 0", n-afterFirst)
	}

	// An upload started before Close cannot be committed after it.
	up, err := s1.Create(ctx, "/late", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	if err := up.Commit(ctx); err == nil {
		t.Error("Commit after the session's Close succeeded")
	}
	if _, err := s1.Stat(ctx, "/"); err == nil {
		t.Error("Stat on a closed session succeeded")
	}
	if err := write(more[0], "/still"); err != nil {
		t.Errorf("another session after the first one's Close: %v", err)
	}

	// The home directory is replaced: old sessions keep the old one, new
	// sessions get the new one.
	if err := os.Rename(filepath.Join(rootDir, "alice"), filepath.Join(rootDir, "alice.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(rootDir, "alice"), 0o755); err != nil {
		t.Fatal(err)
	}
	fresh := home()
	if err := write(fresh, "/new"); err != nil {
		t.Fatal(err)
	}
	if err := write(more[1], "/old"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"alice/new", "alice.old/old", "alice.old/still"} {
		if _, err := os.Stat(filepath.Join(rootDir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	fresh.Close()
	for _, s := range more {
		s.Close()
		s.Close() // idempotent: must not release twice
	}
	if n := openFDs(t); n != base {
		t.Errorf("%d descriptors open after every session closed, want %d", n, base)
	}
}

func TestHomeSymlinkOutside(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.Mkdir(outside, 0o755)
	b, err := New(filepath.Join(base, "root"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := os.Symlink(outside, filepath.Join(base, "root", "evil")); err != nil {
		t.Fatal(err)
	}
	for _, home := range []string{"evil", "evil/sub"} {
		s, err := b.Home(t.Context(), home)
		if !errors.Is(err, storage.ErrPermission) {
			t.Errorf("Home(%q) through a symlink leading out: %v, want ErrPermission", home, err)
		}
		if s != nil {
			s.Close()
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("Home created %d entries outside the root", len(ents))
	}
}

// TestOpenReturnsFile checks that downloads can use sendfile: the reader
// is the *os.File itself, positioned at the offset.
func TestOpenReturnsFile(t *testing.T) {
	s, dir := newTree(t)
	os.WriteFile(filepath.Join(dir, "f"), []byte("0123456789"), 0o644)
	r, err := s.Open(t.Context(), "/f", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, ok := r.(*os.File)
	if !ok {
		t.Fatalf("Open returned %T, want *os.File", r)
	}
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != 4 {
		t.Errorf("file positioned at %d, want 4", pos)
	}
}

// TestUploadReaderFrom checks that uploads can splice: io.Copy finds a
// ReadFrom on the upload, for every kind of upload.
func TestUploadReaderFrom(t *testing.T) {
	s, dir := newTree(t)
	os.WriteFile(filepath.Join(dir, "f"), []byte("0123456789"), 0o644)
	for _, opts := range []storage.CreateOptions{{}, {Append: true}, {Offset: 5}, {Exclusive: true}} {
		name := "/f"
		if opts.Exclusive {
			name = "/g"
		}
		up, err := s.Create(t.Context(), name, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := up.(io.ReaderFrom); !ok {
			t.Errorf("upload %+v (%T) does not implement io.ReaderFrom", opts, up)
		}
		up.Abort()
	}
}

// TestUploadFromTCP drives the real fast path, io.Copy(upload, *net.TCPConn),
// for each kind of upload: splice must honour the file position.
func TestUploadFromTCP(t *testing.T) {
	s, dir := newTree(t)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	for _, tt := range []struct {
		name string
		old  string
		opts storage.CreateOptions
		want string
	}{
		{"atomic", "old", storage.CreateOptions{}, big},
		{"append", "head-", storage.CreateOptions{Append: true}, "head-" + big},
		{"offset", "0123456789", storage.CreateOptions{Offset: 3}, "012" + big},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "f"), []byte(tt.old), 0o644)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				io.WriteString(c, big)
				c.Close()
			}()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			up, err := s.Create(t.Context(), "/f", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer up.Abort()
			n, err := io.Copy(up, c.(*net.TCPConn))
			if err != nil || n != int64(len(big)) {
				t.Fatalf("io.Copy = %d, %v; want %d bytes", n, err, len(big))
			}
			if err := up.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(dir, "f"))
			if string(got) != tt.want {
				t.Errorf("file has %d bytes, want %d (equal: %v)", len(got), len(tt.want), string(got) == tt.want)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	s, _ := newTree(t)
	want := storage.Capabilities{Append: true, WriteOffset: true, SetModTime: true, Chmod: true, RenameDir: true}
	if got := s.Capabilities(); got != want {
		t.Errorf("Capabilities() = %+v, want %+v", got, want)
	}
}

// TestOpenStat checks that OpenStat describes the file it opened as Stat
// does, and refuses what Open refuses.
func TestOpenStat(t *testing.T) { bothResolvers(t, testOpenStat) }

func testOpenStat(t *testing.T, newTree func(*testing.T) (*tree, string)) {
	s, dir := newTree(t)
	ctx := t.Context()
	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	os.WriteFile(filepath.Join(dir, "d", "f"), []byte("data"), 0o640)
	want, err := s.Stat(ctx, "/d/f")
	if err != nil {
		t.Fatal(err)
	}
	rc, fi, err := s.OpenStat(ctx, "/d/f")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "data" {
		t.Errorf("read %q", b)
	}
	if fi.Name != want.Name || fi.Size != want.Size || fi.Mode != want.Mode || !fi.ModTime.Equal(want.ModTime) || fi.ID != want.ID {
		t.Errorf("OpenStat info %+v, Stat says %+v", fi, want)
	}
	if _, _, err := s.OpenStat(ctx, "/d"); !errors.Is(err, storage.ErrIsDir) {
		t.Errorf("OpenStat(dir): %v, want ErrIsDir", err)
	}
	if _, _, err := s.OpenStat(ctx, "/none"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("OpenStat(missing): %v, want ErrNotExist", err)
	}
	os.Symlink(filepath.Join(t.TempDir()), filepath.Join(dir, "out"))
	os.WriteFile(filepath.Join(dir, "..", "secret"), []byte("secret"), 0o644)
	os.Symlink("../secret", filepath.Join(dir, "up"))
	for _, name := range []string{"/out/x", "/up"} {
		if rc, _, err := s.OpenStat(ctx, name); !errors.Is(err, storage.ErrPermission) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("OpenStat(%s) through a link out of the home: %v, want ErrPermission", name, err)
		}
	}
}
