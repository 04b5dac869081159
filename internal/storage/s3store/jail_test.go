package s3store

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// TestJail drives the home "alice" through every operation, hostile names
// included, next to the home "alicex" and keys that share alice's
// beginning, and checks from the server's side that no request named a
// key or listed a prefix outside "alice/".
func TestJail(t *testing.T) {
	f := newFake(t)
	b := f.backend(t, Options{PartSize: MinPartSize})
	ctx := t.Context()
	neighbours := map[string]string{
		"alicex/secret":   "x secret",
		"alicex/d/f":      "x file",
		"alicex/":         "",
		"alice":           "a file named like the home",
		"alice.txt":       "a sibling",
		"alice-archive/f": "another prefix",
		"secret":          "top level",
	}
	for k, v := range neighbours {
		f.put(t, k, v)
	}
	if _, err := b.Home(ctx, "alicex"); err != nil {
		t.Fatal(err)
	}
	s, err := b.Home(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	f.reset()

	put := func(name, data string, opts storage.CreateOptions) {
		up, err := s.Create(ctx, name, opts)
		if err != nil {
			t.Errorf("Create(%s): %v", name, err)
			return
		}
		defer up.Abort()
		io.Copy(up, strings.NewReader(data))
		if err := up.Commit(ctx); err != nil {
			t.Errorf("Commit(%s): %v", name, err)
		}
	}
	put("/f", "mine", storage.CreateOptions{})
	put("/big", string(bytes.Repeat([]byte("b"), MinPartSize+100)), storage.CreateOptions{})
	put("/x", "exclusive", storage.CreateOptions{Exclusive: true})
	if err := s.Mkdir(ctx, "/d"); err != nil {
		t.Error(err)
	}
	put("/d/g", "nested", storage.CreateOptions{})
	if err := s.Rename(ctx, "/d/g", "/g"); err != nil {
		t.Error(err)
	}
	if err := s.Remove(ctx, "/g"); err != nil {
		t.Error(err)
	}
	if err := s.RemoveDir(ctx, "/d"); err != nil {
		t.Error(err)
	}
	up, err := s.Create(ctx, "/aborted", storage.CreateOptions{})
	if err == nil {
		up.Write(bytes.Repeat([]byte("a"), MinPartSize+1))
		up.Abort()
	}
	if got := readDir(t, s, "/"); len(got) != 3 || got["f"].Size != 4 {
		t.Errorf("alice's home lists %v, want f, big and x", got)
	}
	if r, err := s.Open(ctx, "/f", 2); err == nil {
		r.Close()
	}

	// Names that would leave the home if they reached a key, and names
	// of the neighbours' keys.
	hostile := []string{
		"/../alicex/secret", "/../alicex", "/..", "/a/../../secret", "/./../alice",
		"//alicex/secret", "/../secret", "x/secret", "", "/f/..", "/\x00", "/../alice.txt",
		"/d//../../alicex/d/f",
	}
	for _, name := range hostile {
		s.Stat(ctx, name)
		if r, err := s.Open(ctx, name, 0); err == nil {
			r.Close()
		}
		if up, err := s.Create(ctx, name, storage.CreateOptions{}); err == nil {
			up.Abort()
		}
		if it, err := s.ReadDir(ctx, name); err == nil {
			it.Close()
		}
		s.Mkdir(ctx, name)
		s.Remove(ctx, name)
		s.RemoveDir(ctx, name)
		s.Rename(ctx, name, "/stolen")
		s.Rename(ctx, "/f", name)
		s.SetModTime(ctx, name, time.Now())
		s.Chmod(ctx, name, 0o777)
	}
	// Names that are fine inside the home but look like the neighbours.
	for _, name := range []string{"/secret", "/alicex", "/alicex/secret", "/d"} {
		if _, err := s.Stat(ctx, name); err == nil {
			t.Errorf("Stat(%s) found something in alice's empty-looking home", name)
		}
	}

	reqs := f.requests()
	if len(reqs) < 30 {
		t.Fatalf("only %d requests recorded: the recorder is broken", len(reqs))
	}
	for _, r := range reqs {
		switch {
		case r.key != "" && !strings.HasPrefix(r.key, "alice/"):
			t.Errorf("%s request for the key %q, outside alice/", r.method, r.key)
		case r.key == "" && !isList(r):
			t.Errorf("%s request on the bucket (%v), not a listing", r.method, r.query)
		case r.key == "" && !strings.HasPrefix(r.query.Get("prefix"), "alice/"):
			t.Errorf("listing of the prefix %q, outside alice/", r.query.Get("prefix"))
		case r.copySource != "" && !strings.HasPrefix(r.copySource, testBucket+"/alice/"):
			t.Errorf("copy from %q, outside alice/", r.copySource)
		}
	}
	for k, v := range neighbours {
		if got := string(f.get(t, k)); got != v {
			t.Errorf("neighbour %s now reads %q, want %q", k, got, v)
		}
	}
	if p := f.pendingUploads(t); len(p) != 0 {
		t.Errorf("multipart uploads left: %v", p)
	}
}
