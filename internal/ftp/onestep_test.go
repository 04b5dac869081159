package ftp

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// oneStepBackend wraps a backend so that its trees open and describe a
// file in one step (storage.StatOpener) and its uploads say whether they
// replace a file (storage.Replacer), as local storage does, counting what
// the session asks.
type oneStepBackend struct {
	storage.Backend
	stats, openStats, replaces atomic.Int64
	replacesAnswer             atomic.Bool
}

func (b *oneStepBackend) Home(ctx context.Context, home string) (storage.Storage, error) {
	s, err := b.Backend.Home(ctx, home)
	if err != nil {
		return nil, err
	}
	return &oneStepTree{Storage: s, b: b}, nil
}

type oneStepTree struct {
	storage.Storage
	b *oneStepBackend
}

func (t *oneStepTree) Stat(ctx context.Context, name string) (storage.FileInfo, error) {
	t.b.stats.Add(1)
	return t.Storage.Stat(ctx, name)
}

func (t *oneStepTree) OpenStat(ctx context.Context, name string) (io.ReadCloser, storage.FileInfo, error) {
	t.b.openStats.Add(1)
	fi, err := t.Storage.Stat(ctx, name)
	if err != nil {
		return nil, fi, err
	}
	if fi.IsDir() {
		return nil, fi, storage.ErrIsDir
	}
	r, err := t.Storage.Open(ctx, name, 0)
	return r, fi, err
}

func (t *oneStepTree) Create(ctx context.Context, name string, opts storage.CreateOptions) (storage.Upload, error) {
	up, err := t.Storage.Create(ctx, name, opts)
	if err != nil {
		return nil, err
	}
	return &oneStepUpload{Upload: up, b: t.b}, nil
}

type oneStepUpload struct {
	storage.Upload
	b *oneStepBackend
}

func (u *oneStepUpload) Replaces() (bool, error) {
	u.b.replaces.Add(1)
	return u.b.replacesAnswer.Load(), nil
}

// TestOneStepStorage: RETR from the start asks a storage.StatOpener
// instead of Stat then Open, with the same replies; REST still takes
// Stat; the end of an upload asks a storage.Replacer instead of Stat.
func TestOneStepStorage(t *testing.T) {
	t.Parallel()
	var b *oneStepBackend
	h := newHarness(t, harnessOpts{config: func(c *Config) {
		b = &oneStepBackend{Backend: c.Storage}
		c.Storage = b
		c.ReplaceGrace = 20 * time.Millisecond
	}})
	h.put("alice/f", "hello")
	h.put("alice/d/x", "")
	h.login()
	h.expect(200, "TYPE I")

	b.stats.Store(0)
	if got := h.retr("f"); got != "hello" {
		t.Errorf("RETR f: %q", got)
	}
	if b.openStats.Load() != 1 || b.stats.Load() != 0 {
		t.Errorf("RETR f: %d OpenStat and %d Stat, want 1 and 0", b.openStats.Load(), b.stats.Load())
	}
	for _, c := range []struct {
		line string
		code int
		msg  string
	}{
		{"RETR d", 550, "Not a regular file."},
		{"RETR nope", 550, "No such file or directory."},
	} {
		if code, msg := h.cmd(c.line); code != c.code || msg != c.msg {
			t.Errorf("%s: %d %q, want %d %q", c.line, code, msg, c.code, c.msg)
		}
	}
	h.expect(350, "REST 1")
	b.stats.Store(0)
	if got := h.retr("f"); got != "ello" {
		t.Errorf("RETR after REST 1: %q", got)
	}
	if b.stats.Load() != 1 {
		t.Errorf("RETR after REST: %d Stat, want 1", b.stats.Load())
	}

	b.stats.Store(0)
	h.stor("g", "data")
	if b.replaces.Load() != 1 || b.stats.Load() != 0 {
		t.Errorf("STOR g: %d Replaces and %d Stat, want 1 and 0", b.replaces.Load(), b.stats.Load())
	}
	b.replacesAnswer.Store(true) // the grace wait for a file to replace
	h.stor("g", "more")
	if got := h.retr("g"); got != "more" {
		t.Errorf("RETR g after the replacing upload: %q", got)
	}
	if b.stats.Load() != 0 {
		t.Errorf("%d Stat for the replacing upload, want 0", b.stats.Load())
	}
}
