package bandwidth

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestChunkFor(t *testing.T) {
	for _, tc := range []struct{ rate, want int64 }{
		{1, MinChunk},
		{40 << 10, MinChunk},
		{1 << 20, (1 << 20) / 10},
		{5 << 20, (5 << 20) / 10},
		{10 << 20, (10 << 20) / 10},
		{11 << 20, MaxChunk},
		{1 << 40, MaxChunk},
	} {
		if got := ChunkFor(tc.rate); got != tc.want {
			t.Errorf("ChunkFor(%d) = %d, want %d", tc.rate, got, tc.want)
		}
	}
}

// TestTake: an unlimited limiter gives what is asked at once; a limited
// one at most a chunk, and it waits for the tokens.
func TestTake(t *testing.T) {
	ctx := t.Context()
	un := New(0)
	if n, err := un.Take(ctx, 1<<20); n != 1<<20 || err != nil {
		t.Errorf("unlimited Take(1MiB) = %d, %v", n, err)
	}
	l := New(1 << 20) // chunk 104857
	chunk := ChunkFor(1 << 20)
	if n, err := l.Take(ctx, 1<<20); n != chunk || err != nil {
		t.Errorf("Take(1MiB) at 1MiB/s = %d, %v; want one chunk (%d)", n, err, chunk)
	}
	if n, err := l.Take(ctx, 10); n != 10 || err != nil {
		t.Errorf("Take(10) = %d, %v", n, err)
	}
	// The bucket is empty now: the next chunk takes ~0.1 s.
	start := time.Now()
	if _, err := l.Take(ctx, chunk); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("second chunk after %v: the bucket did not make it wait", d)
	}
	// A cancelled wait fails with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Take(cctx, chunk); !errors.Is(err, context.Canceled) {
		t.Errorf("Take with a cancelled ctx: %v", err)
	}
}

func TestSetRate(t *testing.T) {
	l := New(1 << 20)
	l.SetRate(100 << 10)
	if l.Rate() != 100<<10 {
		t.Errorf("Rate after SetRate = %d", l.Rate())
	}
	if n, _ := l.Take(t.Context(), 1<<20); n != ChunkFor(100<<10) {
		t.Errorf("Take after SetRate = %d, want the new chunk %d", n, ChunkFor(100<<10))
	}
	l.SetRate(0)
	if n, _ := l.Take(t.Context(), 1<<30); n != 1<<30 || l.Rate() != 0 {
		t.Errorf("after SetRate(0): Take = %d, Rate = %d; want unlimited", n, l.Rate())
	}
}

// TestShared: every caller asking for a name gets the same limiter,
// another name another; the latest rate wins.
func TestShared(t *testing.T) {
	var s Shared
	a := s.Get("up alice", 1<<20)
	b := s.Get("up alice", 2<<20)
	c := s.Get("up bob", 1<<20)
	if a != b || a == c {
		t.Fatal("same name must share one limiter, another name must not")
	}
	if a.Rate() != 2<<20 {
		t.Errorf("rate %d, want the latest caller's 2MiB/s", a.Rate())
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
}
