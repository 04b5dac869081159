//go:build !unix

package local

import (
	"io/fs"
	"os"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// nonblockFlag is 0 where open(2) semantics for FIFOs do not apply.
const nonblockFlag = 0

func setBlocking(*os.File) error { return nil }

// fileID is empty: there is no portable inode number.
func fileID(fs.FileInfo) string { return "" }

// statAt stats directory entries through an os.Root opened on the
// directory, so no entry can lead outside it.
type statAt struct {
	dir *os.Root
}

func newStatAt(root *os.Root, rel string, _ *os.File) (statAt, error) {
	dir, err := root.OpenRoot(rel)
	return statAt{dir: dir}, err
}

func (s statAt) stat(name string) (storage.FileInfo, error) {
	fi, err := s.dir.Lstat(name)
	if err != nil {
		return storage.FileInfo{}, err
	}
	return fileInfo(fi), nil
}

func (s statAt) close() { s.dir.Close() }
