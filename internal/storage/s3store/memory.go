package s3store

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// DefaultUploadMemory is Options.UploadMemory when zero.
const DefaultUploadMemory = 256 << 20

// partMemory is the budget of part buffers shared by every upload of a
// Backend: a buffer is handed out only when its whole size fits in what is
// left, and its size counts until it is given back. Without it each upload
// held up to Concurrency+1 parts whatever the number of uploads, and 32
// parallel uploads took 2.7 GiB.
//
// Waiting is first come, first served (semaphore.Weighted), so a large
// request is not overtaken forever by small ones, and it honours the
// context, so the upload of a session that is closed stops waiting. It
// cannot deadlock: an upload waits for a buffer only while it holds none
// being filled, and the buffers it has in flight come back when their
// requests end, which the request timeout bounds.
//
// Buffers come from a sync.Pool per size (sizes are the upload's part
// sizes: the base size, doubled every 1,000 parts, up to the cap), so
// they are reused between parts and uploads instead of being allocated
// for each, and an idle server gives them back to the garbage collector.
type partMemory struct {
	sem   *semaphore.Weighted
	size  int64                // the budget
	pools map[int64]*sync.Pool // of *[]byte, by capacity; read-only after newPartMemory

	mu    sync.Mutex
	inUse int64 // bytes of buffers handed out and not yet given back
	peak  int64 // highest inUse, for tests
}

// newPartMemory returns a budget of size bytes for parts of the given
// sizes.
func newPartMemory(size int64, sizes []int64) *partMemory {
	m := &partMemory{sem: semaphore.NewWeighted(size), size: size, pools: make(map[int64]*sync.Pool)}
	for _, s := range sizes {
		m.pools[s] = &sync.Pool{}
	}
	return m
}

// get waits until size bytes fit in the budget and returns an empty
// buffer of that capacity. size must be one of the part sizes and at most
// the budget (partSizeFor makes sure of both).
func (m *partMemory) get(ctx context.Context, size int64) ([]byte, error) {
	if err := m.sem.Acquire(ctx, size); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.inUse += size
	m.peak = max(m.peak, m.inUse)
	m.mu.Unlock()
	if pool := m.pools[size]; pool != nil {
		if p, ok := pool.Get().(*[]byte); ok {
			return (*p)[:0], nil
		}
	}
	return make([]byte, 0, size), nil
}

// put gives back a buffer from get, for reuse. It must not be used after.
func (m *partMemory) put(buf []byte) {
	size := int64(cap(buf))
	if pool := m.pools[size]; pool != nil {
		buf = buf[:0]
		pool.Put(&buf)
	}
	m.mu.Lock()
	m.inUse -= size
	m.mu.Unlock()
	m.sem.Release(size)
}

// usage reports the bytes handed out now and at most so far.
func (m *partMemory) usage() (inUse, peak int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inUse, m.peak
}
