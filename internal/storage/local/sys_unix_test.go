//go:build unix

package local

import (
	"fmt"
	"syscall"
	"testing"
)

func mkfifo(name string) error { return syscall.Mkfifo(name, 0o644) }

// hostID is the ID a listing should give the file at name (not followed).
func hostID(t *testing.T, name string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(name, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x.%x", uint64(st.Dev), uint64(st.Ino))
}
