package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFileName is the lock file LockDir keeps in a state directory.
const LockFileName = "cloudftpd.lock"

// ErrLocked is returned (wrapped, naming the directory and, when it is
// known, the holder's pid) when another process holds a directory's lock.
var ErrLocked = errors.New("in use by another cloudftpd process")

// DirLock is the exclusive hold of one process on a state directory:
// two servers sharing one would both deliver the outbox's events, and
// overwrite each other's bans.
type DirLock struct {
	f   *os.File
	dir string
}

// Dir is the locked directory.
func (l *DirLock) Dir() string { return l.dir }

// lockError is ErrLocked for dir, with the pid f says holds it.
func lockError(dir string, f *os.File) error {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		// The holder has locked but not yet written its pid.
		return fmt.Errorf("state: %s is %w (pid unknown; see %s); every server needs a state directory of its own",
			dir, ErrLocked, filepath.Join(dir, LockFileName))
	}
	return fmt.Errorf("state: %s is %w (pid %d); every server needs a state directory of its own", dir, ErrLocked, pid)
}
