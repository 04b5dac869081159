package state

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// crashChildEnv names the state directory a re-executed test binary
// appends to until it is killed.
const crashChildEnv = "CLOUDFTPD_STATE_CRASH_CHILD"

// TestCrashAppend kills a process with SIGKILL at a random point while it
// appends from several goroutines. Every event whose Append had returned
// (the child prints its id only then) must be in the outbox exactly once
// after reopening, and the database must pass SQLite's integrity check.
// Three rounds share one directory, so recovery after a kill is itself
// followed by appends and another kill.
func TestCrashAppend(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	var acked []string
	for round := range 3 {
		got := runAndKill(t, dir, 5+rand.IntN(300))
		t.Logf("round %d: %d appends acknowledged before SIGKILL", round, len(got))
		acked = append(acked, got...)
	}

	s := open(t, dir)
	var check string
	if err := s.db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	for _, id := range acked {
		var n int
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM outbox WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("acknowledged event %s is in the outbox %d times, want once", id, n)
		}
	}
	var rows, maxSeq int64
	s.db.QueryRow(`SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM outbox`).Scan(&rows, &maxSeq)
	if rows != maxSeq {
		t.Errorf("%d rows but seq reaches %d: a gap or a reused seq", rows, maxSeq)
	}
	if int(rows) < len(acked) {
		t.Errorf("%d rows for %d acknowledged events", rows, len(acked))
	}
}

// runAndKill starts the child, reads acknowledged ids until it has at
// least killAfter of them, kills the child, and returns every id it
// printed (including those still in the pipe at the kill: they too were
// printed after their Append returned).
func runAndKill(t *testing.T, dir string, killAfter int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashAppend$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	sc := bufio.NewScanner(out)
	deadline := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	killed := false
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "acked ")
		if !ok {
			continue // the testing package's own output
		}
		ids = append(ids, id)
		if len(ids) >= killAfter && !killed {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended after %d appends without being killed: %v", len(ids), err)
	}
	return ids
}

// crashChild appends from four goroutines, printing each id once its
// Append has returned, until it is killed.
func crashChild(dir string) {
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := 0; i < 100_000; i++ {
				e := events.Event{Type: events.UploadCommitted, Path: fmt.Sprintf("/f%d", i), Size: int64(i)}
				e.Stamp(time.Now())
				if err := s.Append(ctx, e); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				// One write(2) per line, straight to the pipe: nothing
				// acknowledged sits in a buffer that the kill would lose.
				os.Stdout.WriteString("acked " + e.ID + "\n")
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(3) // never reached in the test: the parent kills first
}
