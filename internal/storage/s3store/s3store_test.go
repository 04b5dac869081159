package s3store

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/storagetest"
)

// TestConformance runs the backend-independent suite, each case on its own
// fake server, with a prefix and a home so that keys are nested.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		f := newFake(t)
		b := f.backend(t, Options{Prefix: "ftp"})
		s, err := b.Home(t.Context(), "users/alice")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestConformanceSmallParts runs the suite again with list pages of 7 keys,
// so that its 1,000-entry directory spans many pages, the smallest part
// size and one part at a time, and the bucket itself as the home.
func TestConformanceSmallParts(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		f := newFake(t)
		b := f.backend(t, Options{PartSize: MinPartSize, Concurrency: 1})
		b.pageSize = 7
		s, err := b.Home(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestNewBucketErrors(t *testing.T) {
	f := newFake(t)
	_, err := New(t.Context(), Options{Bucket: "missing", Client: f.client})
	if err == nil || !strings.Contains(err.Error(), `bucket "missing"`) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("New with a missing bucket: %v, want an error naming the bucket", err)
	}
	if errors.Is(err, storage.ErrNotExist) {
		t.Errorf("New with a missing bucket: %v matches ErrNotExist, a file-level error", err)
	}
	if !strings.Contains(err.Error(), "endpoint http://127.0.0.1") {
		t.Errorf("New with a missing bucket: %v, want the endpoint named", err)
	}
	if strings.Contains(err.Error(), "SECRETTEST") {
		t.Errorf("error shows the secret key: %v", err)
	}
}

// TestNewBuildsClient checks the client New builds from the standard AWS
// chain (here the environment) for an S3-compatible endpoint.
func TestNewBuildsClient(t *testing.T) {
	f := newFake(t)
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "AKIDENV",
		"AWS_SECRET_ACCESS_KEY":       "SECRETENV",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
	if _, err := New(t.Context(), Options{Bucket: testBucket}); err == nil || !strings.Contains(err.Error(), "region") {
		t.Errorf("New without a region nor an endpoint: %v, want an error about the region", err)
	}
	b, err := New(t.Context(), Options{Bucket: testBucket, Endpoint: f.url, PathStyle: true})
	if err != nil {
		t.Fatalf("New with an endpoint: %v", err)
	}
	if b.client.Options().Region != "us-east-1" || b.checksums {
		t.Errorf("client for a custom endpoint: region %q, checksums %v; want us-east-1 and none",
			b.client.Options().Region, b.checksums)
	}
	s, _ := b.Home(t.Context(), "alice")
	up, err := s.Create(t.Context(), "/f", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(up, "through the built client")
	if err := up.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := string(f.get(t, "alice/f")); got != "through the built client" {
		t.Errorf("object reads %q", got)
	}
}

func TestNewOptions(t *testing.T) {
	f := newFake(t)
	for _, tt := range []struct {
		opts Options
		want string // part of the error; "" for success
	}{
		{Options{}, ""},
		{Options{Prefix: "/a/b/"}, ""},
		{Options{PartSize: MinPartSize}, ""},
		{Options{PartSize: MinPartSize - 1}, "part size"},
		{Options{PartSize: MaxPartSize + 1}, "part size"},
		{Options{Concurrency: -1}, "concurrency"},
		{Options{Prefix: "a/../b"}, "prefix"},
		{Options{Prefix: "a//b"}, "prefix"},
	} {
		tt.opts.Bucket = testBucket
		tt.opts.Client = f.client
		b, err := New(t.Context(), tt.opts)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("New(%+v): %v", tt.opts, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("New(%+v): %v, want an error about %s", tt.opts, err, tt.want)
		case err == nil && (b.partSize < MinPartSize || b.concurrency < 1):
			t.Errorf("New(%+v): part size %d, concurrency %d", tt.opts, b.partSize, b.concurrency)
		}
	}
	if _, err := New(t.Context(), Options{Client: f.client}); err == nil {
		t.Error("New without a bucket succeeded")
	}
}

func TestHomePrefix(t *testing.T) {
	f := newFake(t)
	b := f.backend(t, Options{Prefix: "/ftp/"})
	for _, tt := range []struct {
		home, prefix string
	}{
		{"", "ftp/"},
		{".", "ftp/"},
		{"alice", "ftp/alice/"},
		{"alice/", "ftp/alice/"},
		{"a//b/./c", "ftp/a/b/c/"},
	} {
		s, err := b.Home(t.Context(), tt.home)
		if err != nil {
			t.Errorf("Home(%q): %v", tt.home, err)
			continue
		}
		if got := s.(*tree).prefix; got != tt.prefix {
			t.Errorf("Home(%q) prefix %q, want %q", tt.home, got, tt.prefix)
		}
	}
	for _, home := range []string{"/abs", "..", "a/../b", "a/..", "a\x00b", "\xff"} {
		if _, err := b.Home(t.Context(), home); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Home(%q): %v, want ErrInvalidName", home, err)
		}
	}
	if len(f.requests()) != 1 { // New's check of the bucket
		t.Errorf("Home made requests: %+v", f.requests())
	}
}

func TestResolve(t *testing.T) {
	tr := &tree{b: &Backend{bucket: testBucket}, prefix: "ftp/alice/"}
	for _, tt := range []struct {
		name, key string
		root      bool
	}{
		{"/", "ftp/alice/", true},
		{"/a", "ftp/alice/a", false},
		{"/a/b c/d.txt", "ftp/alice/a/b c/d.txt", false},
		{"/..a/b..", "ftp/alice/..a/b..", false},
		{"/é", "ftp/alice/é", false},
	} {
		key, root, err := tr.resolve(t.Context(), "op", tt.name)
		if err != nil || key != tt.key || root != tt.root {
			t.Errorf("resolve(%q) = %q, %v, %v; want %q, %v", tt.name, key, root, err, tt.key, tt.root)
		}
	}
	for _, name := range []string{
		"", "a", "a/b", "//", "/a/", "/a//b", "/.", "/./a", "/a/.", "/..", "/../x",
		"/a/../../x", "/a/..", "/a\x00b", "/\xff", "/" + strings.Repeat("x", maxKeyLen),
	} {
		if _, _, err := tr.resolve(t.Context(), "op", name); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("resolve(%q): %v, want ErrInvalidName", name, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := tr.resolve(ctx, "op", "/a"); !errors.Is(err, context.Canceled) {
		t.Errorf("resolve with a cancelled context: %v", err)
	}
}

// FuzzResolve checks that every accepted path maps to a key inside the
// home's prefix (with the slash) that no S3 tool would read as leaving it.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/", "/a", "/a/b", "/../x", "/a/./b", "//", "/a\x00", "/x/..", "/..."} {
		f.Add(s)
	}
	tr := &tree{b: &Backend{bucket: testBucket}, prefix: "alice/"}
	f.Fuzz(func(t *testing.T, name string) {
		key, root, err := tr.resolve(context.Background(), "op", name)
		if err != nil {
			if !errors.Is(err, storage.ErrInvalidName) {
				t.Fatalf("resolve(%q): %v", name, err)
			}
			return
		}
		if !strings.HasPrefix(key, "alice/") {
			t.Fatalf("resolve(%q) = %q, outside the home", name, key)
		}
		if root != (key == "alice/") {
			t.Fatalf("resolve(%q) = %q, root %v", name, key, root)
		}
		for elem := range strings.SplitSeq(strings.TrimPrefix(key, "alice/"), "/") {
			if !root && (elem == "" || elem == "." || elem == "..") {
				t.Fatalf("resolve(%q) = %q, with element %q", name, key, elem)
			}
		}
	})
}
