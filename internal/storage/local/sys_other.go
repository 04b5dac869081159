//go:build !unix

package local

import (
	"io/fs"
	"os"
)

// nonblockFlag is 0 where open(2) semantics for FIFOs do not apply.
const nonblockFlag = 0

func setBlocking(*os.File) error { return nil }

// fileID is empty: there is no portable inode number.
func fileID(fs.FileInfo) string { return "" }
