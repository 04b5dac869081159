//go:build unix

package state_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/state"
)

// TestLockDirOneProcess: flock belongs to the open file, so a second
// LockDir in the same process is refused too, naming the directory and
// this process's pid; after Close the directory can be locked again.
func TestLockDirOneProcess(t *testing.T) {
	dir := t.TempDir() + "/state"
	l, err := state.LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = state.LockDir(dir)
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second LockDir: %v; want ErrLocked naming %s and pid %d", err, dir, os.Getpid())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := state.LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after Close: %v", err)
	}
	l2.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, %v; want mode 0700", fi, err)
	}
}

// TestLockHolderProcess is the other process of TestLockDirTwoProcesses:
// it holds the lock of $STATE_LOCK_DIR until killed.
func TestLockHolderProcess(t *testing.T) {
	dir := os.Getenv("STATE_LOCK_DIR")
	if dir == "" {
		t.Skip("helper process for TestLockDirTwoProcesses")
	}
	if _, err := state.LockDir(dir); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute) // killed long before
	os.Exit(0)
}

// TestLockDirTwoProcesses runs the test binary again as a process that
// holds a state directory: this one is refused with the holder's pid,
// and once the holder is killed with SIGKILL (no chance to unlock) the
// kernel has released the lock and this process takes it.
func TestLockDirTwoProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STATE_LOCK_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	_, err = state.LockDir(dir)
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("LockDir while another process holds it: %v; want ErrLocked naming pid %d", err, cmd.Process.Pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	l, err := state.LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after the holder was killed: %v", err)
	}
	l.Close()
}
