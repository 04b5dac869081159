// Package bandwidth holds the token buckets of bandwidth limits: bytes
// per second shared by every transfer that draws on the same bucket (one
// user's sessions, or one listener's).
//
// A transfer takes the bytes of its next chunk from the bucket before it
// moves them (Take) and never hands the data itself to this package, so
// a limited transfer can still go zero-copy. Chunks are a tenth of a
// second's worth of the rate, so that the bucket's burst, which is one
// chunk, lets at most that much through ahead of the rate.
package bandwidth

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// Chunk bounds. The upper one is the engine's own chunk (1 MiB, reached
// at 10 MiB/s): a bucket never needs a larger one. Below the lower one
// (a rate under 40 KiB/s) the burst is more than a tenth of a second's
// worth; that costs accuracy only over transfers of a few seconds, and
// keeps every chunk at least a page.
const (
	MinChunk = 4 << 10
	MaxChunk = 1 << 20
)

// ChunkFor is the chunk, and burst, of a bucket of bytesPerSecond:
// rate/10, within [MinChunk, MaxChunk].
func ChunkFor(bytesPerSecond int64) int64 {
	return min(max(bytesPerSecond/10, MinChunk), MaxChunk)
}

// Limiter is a bandwidth limit. Its rate can be changed while transfers
// use it (a reload): SetRate swaps the bucket underneath, and a transfer
// waiting on the old one finishes that wait, at most one chunk, at the
// old rate. The zero rate is unlimited. Safe for concurrent use.
type Limiter struct {
	bucket atomic.Pointer[rate.Limiter] // nil: unlimited
}

// New returns a limiter of bytesPerSecond (0: unlimited).
func New(bytesPerSecond int64) *Limiter {
	l := &Limiter{}
	l.SetRate(bytesPerSecond)
	return l
}

// SetRate changes the rate; 0 lifts the limit. Changing it to the rate it
// has keeps the bucket (and its tokens).
func (l *Limiter) SetRate(bytesPerSecond int64) {
	if bytesPerSecond <= 0 {
		l.bucket.Store(nil)
		return
	}
	if b := l.bucket.Load(); b != nil && int64(b.Limit()) == bytesPerSecond {
		return
	}
	l.bucket.Store(rate.NewLimiter(rate.Limit(bytesPerSecond), int(ChunkFor(bytesPerSecond))))
}

// Rate is the limit in bytes per second, 0 when unlimited.
func (l *Limiter) Rate() int64 {
	if b := l.bucket.Load(); b != nil {
		return int64(b.Limit())
	}
	return 0
}

// Take waits until the bucket holds the next chunk of up to want bytes
// and takes it: it returns how many bytes may move now, at most want and
// at most one chunk (want itself when unlimited). It fails only when ctx
// ends first.
func (l *Limiter) Take(ctx context.Context, want int64) (int64, error) {
	b := l.bucket.Load()
	if b == nil || want <= 0 {
		return want, nil
	}
	n := min(want, int64(b.Burst())) // the burst is the chunk: WaitN never refuses it
	if err := b.WaitN(ctx, int(n)); err != nil {
		return 0, err
	}
	return n, nil
}

// Shared hands out limiters by name, one per name, so that everything
// asking for the same name (every session of a user, on every listener)
// draws on one bucket. Names are kept for the life of the Shared: one
// small bucket (about 100 bytes) per user that has a rate and has
// transferred, a number bounded by the user store. The zero value is
// ready to use; it is safe for concurrent use.
type Shared struct {
	mu sync.Mutex
	m  map[string]*Limiter
}

// Get returns the limiter of name, creating it at bytesPerSecond. One that
// exists takes bytesPerSecond: the latest caller's rate wins, so a rate
// changed in the users file applies to the transfers already running too.
func (s *Shared) Get(name string, bytesPerSecond int64) *Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*Limiter)
	}
	l := s.m[name]
	if l == nil {
		l = New(bytesPerSecond)
		s.m[name] = l
	} else {
		l.SetRate(bytesPerSecond)
	}
	return l
}

// Len is how many names are kept.
func (s *Shared) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
