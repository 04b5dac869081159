// Package batch groups concurrent requests into one commit: the outbox
// stores (internal/state, internal/pgoutbox) append events through it, so
// that many sessions recording at once share a transaction and its fsync
// (or WAL flush) rather than queueing behind each other's.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrClosed is returned by Submit after Close.
var ErrClosed = errors.New("batch: closed")

// Batcher hands submitted values to its commit function from one
// goroutine, in batches. Its methods are safe for concurrent use.
type Batcher[T any] struct {
	commit   func([]T) error
	maxBatch int

	reqs      chan *request[T]
	closing   chan struct{}
	done      chan struct{} // closed when the writer has returned
	closeOnce sync.Once
}

type request[T any] struct {
	v    T
	done chan error // buffered: the writer never blocks on it
}

// New starts a Batcher that calls commit with at most maxBatch values at
// a time. commit runs on the Batcher's goroutine only, so it needs no
// locking of its own; it must bound its own time (a batch carries many
// callers' values, so it cannot use any one caller's context).
func New[T any](maxBatch int, commit func([]T) error) *Batcher[T] {
	b := &Batcher[T]{
		commit:   commit,
		maxBatch: max(maxBatch, 1),
		reqs:     make(chan *request[T]),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	go b.writer()
	return b
}

// Submit queues v for the next commit and returns that commit's error.
// It returns ErrClosed after Close, and ctx's error if ctx ends first:
// as is if v was not handed over yet, and saying that v may still be
// committed if it was.
func (b *Batcher[T]) Submit(ctx context.Context, v T) error {
	r := &request[T]{v: v, done: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-b.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w (it may still be written)", ctx.Err())
	}
}

// Close waits for the commit in progress, if any, and stops the
// Batcher; Submit fails with ErrClosed afterwards. It may be called more
// than once.
func (b *Batcher[T]) Close() {
	b.closeOnce.Do(func() { close(b.closing) })
	<-b.done
}

// writer commits requests. Everything that arrived while the previous
// commit was in progress goes into the next one.
func (b *Batcher[T]) writer() {
	defer close(b.done)
	for {
		var batch []*request[T]
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		case <-b.closing:
			return
		}
	more:
		for len(batch) < b.maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		vs := make([]T, len(batch))
		for i, r := range batch {
			vs[i] = r.v
		}
		err := b.commit(vs)
		for _, r := range batch {
			r.done <- err
		}
	}
}
