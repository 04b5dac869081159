package local

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// batchSize is how many entries one round of reading and stat-ing takes:
// enough to amortise the getdents call and the hand-off between
// goroutines, small enough that a huge directory streams.
const batchSize = 256

// readAhead is how many goroutines read and stat batches ahead of the
// consumer of a large directory: the stat calls are most of a listing's
// cost, and two keep both cores of a small host busy.
const readAhead = 2

// dirBatch is one batch of entries, or the error that ended the listing
// (io.EOF at the end).
type dirBatch struct {
	entries []storage.FileInfo
	err     error
}

// dirIter streams a directory. The first batch is read by the caller; if
// the directory has more, readAhead goroutines read and stat the following
// batches, so that on a multi-core host the system calls for the next
// batches overlap each other and the formatting and sending of the current
// one (a listing of 100,000 files is mostly fstatat calls). Small
// directories never start them.
type dirIter struct {
	ctx  context.Context
	name string // virtual path, for errors
	r    *entryReader

	batch []storage.FileInfo // the current batch, for reuse
	cur   []storage.FileInfo // what is left of it
	err   error              // sticky: io.EOF or the failure
	ahead chan dirBatch      // from the reader goroutines; nil until started
	free  chan []storage.FileInfo
	stop  context.CancelFunc
	done  chan struct{} // closed when the reader goroutines have returned
}

func newDirIter(ctx context.Context, name string, r *entryReader) *dirIter {
	return &dirIter{ctx: ctx, name: name, r: r}
}

// Next returns the next entry. Uploads in progress and entries removed
// between reading the directory and looking at them are skipped.
func (it *dirIter) Next() (storage.FileInfo, error) {
	for len(it.cur) == 0 {
		if it.err != nil {
			return storage.FileInfo{}, it.err
		}
		if err := it.ctx.Err(); err != nil {
			it.err = &opError{op: "readdir", name: it.name, err: err}
			return storage.FileInfo{}, it.err
		}
		it.fill()
	}
	fi := it.cur[0]
	it.cur = it.cur[1:]
	return fi, nil
}

// fill loads the next batch into it.cur, or sets it.err.
func (it *dirIter) fill() {
	var b dirBatch
	switch {
	case it.ahead != nil:
		if it.batch != nil {
			// Hand the finished batch back for reuse.
			select {
			case it.free <- it.batch[:0]:
			default:
			}
		}
		select {
		case next, ok := <-it.ahead:
			b = next
			if !ok {
				b.err = io.EOF
			}
		case <-it.ctx.Done():
			b.err = it.ctx.Err()
		}
	default:
		b.entries, b.err = it.r.read(make([]storage.FileInfo, 0, batchSize))
		if b.err == nil {
			// A full batch: the directory may be large.
			it.startReader()
		}
	}
	it.batch, it.cur = b.entries, b.entries
	switch {
	case b.err == nil:
	case errors.Is(b.err, io.EOF):
		it.err = io.EOF
	default:
		// The entries read before the failure are delivered first.
		it.err = mapErr("readdir", it.name, b.err)
	}
}

// startReader starts the goroutines that read batches ahead. They take
// turns reading names and stat each batch concurrently; batches arrive in
// whatever order they finish, which is fine for a listing whose order is the
// directory's own anyway.
func (it *dirIter) startReader() {
	ctx, stop := context.WithCancel(it.ctx)
	it.stop = stop
	it.ahead = make(chan dirBatch, readAhead)
	it.free = make(chan []storage.FileInfo, readAhead+1)
	it.done = make(chan struct{})
	var wg sync.WaitGroup
	for range readAhead {
		wg.Go(func() {
			for {
				var buf []storage.FileInfo
				select {
				case buf = <-it.free:
				default:
					buf = make([]storage.FileInfo, 0, batchSize)
				}
				entries, err := it.r.read(buf)
				last := err != nil
				if errors.Is(err, io.EOF) {
					err = nil // closing the channel says it
				}
				if len(entries) > 0 || err != nil {
					select {
					case it.ahead <- dirBatch{entries, err}:
					case <-ctx.Done():
						return
					}
				}
				if last {
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(it.ahead)
		close(it.done)
	}()
}

// Close stops the reader goroutines, if any, and releases the directory.
func (it *dirIter) Close() error {
	if it.stop != nil {
		it.stop()
		<-it.done
		it.stop = nil
	}
	it.batch, it.cur = nil, nil
	if it.err == nil || errors.Is(it.err, io.EOF) {
		it.err = io.EOF
	}
	return mapErr("readdir", it.name, it.r.close())
}

// entryReader reads a directory opened inside the home's os.Root and stats
// each entry relative to the directory's own descriptor (fstatat with
// AT_SYMLINK_NOFOLLOW on a single name component), so no entry can lead
// outside the directory and symbolic links are reported, not followed.
type entryReader struct {
	mu sync.Mutex // serialises reading names from f
	f  *os.File
	statAt
}

// read appends up to batchSize entries to buf. It returns io.EOF, with
// the entries read, when the directory has no more.
func (r *entryReader) read(buf []storage.FileInfo) ([]storage.FileInfo, error) {
	r.mu.Lock()
	names, err := r.f.Readdirnames(batchSize)
	r.mu.Unlock()
	if err == nil && len(names) < batchSize {
		// Readdirnames stops short only at the end of the directory.
		err = io.EOF
	}
	buf, serr := r.statNames(names, buf)
	if serr != nil {
		return buf, serr
	}
	return buf, err
}

// statNames appends the entries for names to buf, skipping uploads in
// progress and names removed since the directory was read.
func (r *entryReader) statNames(names []string, buf []storage.FileInfo) ([]storage.FileInfo, error) {
	for _, name := range names {
		if strings.HasPrefix(name, tempPrefix) {
			continue
		}
		fi, err := r.stat(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return buf, err
		}
		buf = append(buf, fi)
	}
	return buf, nil
}

func (r *entryReader) close() error {
	r.statAt.close()
	return r.f.Close()
}
