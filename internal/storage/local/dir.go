package local

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// batchSize is how many names one getdents round trip asks for: enough to
// amortise the call, small enough that a huge directory streams.
const batchSize = 256

// dirIter streams a directory in batches of batchSize names.
type dirIter struct {
	ctx  context.Context
	name string   // virtual path, for errors
	dir  *os.Root // the directory, for per-entry Lstat
	f    *os.File // the same directory, for reading names
	buf  []os.DirEntry
	eof  bool
}

// Next returns the next entry, skipping uploads in progress and entries
// removed between reading the directory and looking at them.
func (it *dirIter) Next() (storage.FileInfo, error) {
	for {
		if len(it.buf) == 0 {
			if it.eof {
				return storage.FileInfo{}, io.EOF
			}
			if err := it.ctx.Err(); err != nil {
				return storage.FileInfo{}, &opError{op: "readdir", name: it.name, err: err}
			}
			batch, err := it.f.ReadDir(batchSize)
			if errors.Is(err, io.EOF) {
				it.eof = true
			} else if err != nil {
				return storage.FileInfo{}, mapErr("readdir", it.name, err)
			}
			it.buf = batch
			continue
		}
		e := it.buf[0]
		it.buf = it.buf[1:]
		if strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		fi, err := it.dir.Lstat(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return storage.FileInfo{}, mapErr("readdir", it.name, err)
		}
		return fileInfo(fi), nil
	}
}

// Close releases the directory.
func (it *dirIter) Close() error {
	err := it.f.Close()
	it.dir.Close()
	it.buf, it.eof = nil, true
	return mapErr("readdir", it.name, err)
}
