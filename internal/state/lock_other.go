//go:build !unix

package state

import (
	"fmt"
	"os"
)

// LockDir creates dir; without flock(2) it takes no lock, so on these
// systems nothing stops two servers from sharing a state directory.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return &DirLock{dir: dir}, nil
}

// Close does nothing.
func (l *DirLock) Close() error { return nil }
