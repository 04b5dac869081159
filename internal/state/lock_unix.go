//go:build unix

package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// LockDir takes the exclusive lock of the state directory dir, creating
// it (mode 0700) and its lock file (0600) if needed, or fails at once
// with ErrLocked when another process holds it. The lock is flock(2) on
// the open file, so the kernel drops it when the process ends, however
// it ends (kill -9 included): there is never a stale lock to remove. The
// holder writes its pid into the file for the refusal to name.
//
// flock belongs to the open file, not the process: a second LockDir of
// the same directory in one process fails too, so two servers in one
// program cannot share a directory either.
func LockDir(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	name := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		err = lockError(dir, f)
		f.Close()
		return nil, err
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("state: locking %s: %w", name, err)
	}
	// Ours now: say who holds it. A failure here costs only the pid in
	// another process's message.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &DirLock{f: f, dir: dir}, nil
}

// Close releases the lock. The file stays: removing it would let a
// process that opened it just before lock the removed file while a third
// one locks a new file of the same name.
func (l *DirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return f.Close()
}
