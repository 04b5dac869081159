package ftp

import "context"

// A gate shapes a transfer chunk by chunk. copyData asks every gate of a
// transfer how much the next chunk may move before it moves it, and tells
// each what it moved after. The data itself never passes through a gate,
// so a gated transfer keeps the zero-copy path (sendfile, splice): the
// gates only shorten the io.LimitedReader that bounds each chunk.
//
// Limits that need to see the bytes (checksums) wrap the reader or writer
// instead and give up zero-copy; limits that need only counts belong here:
// a maximum file size, a quota, a bandwidth limit.
type gate interface {
	// allow returns how many bytes the next chunk may move, at most want
	// and at least 1; it may wait (a bandwidth limit) and fails when the
	// transfer must end (ctx done). A gate that must notice a limit being
	// crossed allows one byte past it and fails in moved.
	allow(ctx context.Context, want int64) (int64, error)
	// moved reports what the chunk moved (0 at the end of the data); an
	// error ends the transfer with it (e.g. errFileTooLarge).
	moved(n int64) error
}

// nextChunk asks each gate in turn how much of want the next chunk may
// move; each sees what the ones before it allowed.
func nextChunk(ctx context.Context, gates []gate, want int64) (int64, error) {
	for _, g := range gates {
		n, err := g.allow(ctx, want)
		if err != nil {
			return 0, err
		}
		if n < want {
			want = max(n, 1)
		}
	}
	return want, nil
}

// chunkMoved tells every gate what the chunk moved; the first error wins.
func chunkMoved(gates []gate, n int64) error {
	var first error
	for _, g := range gates {
		if err := g.moved(n); err != nil && first == nil {
			first = err
		}
	}
	return first
}
