package ftp

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// startUpload begins STOR path and returns its open data connection: the
// transfer then runs, waiting for data, until the connection is closed.
func (h *harness) startUpload(path string) net.Conn {
	h.t.Helper()
	addr := h.epsv()
	h.expect(150, "STOR "+path)
	return h.dial(addr)
}

// TestCommandsDuringTransfer: NOOP, STAT and QUIT are answered while a
// transfer runs (RFC 959 lets the control connection carry them); other
// commands wait for its final reply, so replies stay in order.
func TestCommandsDuringTransfer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.put("alice/f", "old")
	h.login()
	c := h.startUpload("f")
	h.expect(200, "NOOP")
	if msg := h.expect(211, "STAT"); !strings.Contains(msg, "Transfer in progress: STOR /f") {
		t.Errorf("STAT during a transfer: %q", msg)
	}
	h.expect(450, "STAT /")
	// PWD must wait: its reply comes after the transfer's.
	h.send("PWD")
	io.WriteString(c, "new")
	c.Close()
	h.expectReply(226)
	h.expectReply(257)
	if got := h.file("alice/f"); got != "new" {
		t.Errorf("after the upload /f is %q", got)
	}
}

// TestQUITDuringTransfer: QUIT lets the running transfer finish (and
// commit) before 221.
func TestQUITDuringTransfer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.login()
	c := h.startUpload("f")
	h.send("QUIT")
	io.WriteString(c, "complete")
	c.Close()
	h.expectReply(226)
	h.expectReply(221)
	record("QUIT", 221)
	h.closed()
	if got := h.file("alice/f"); got != "complete" {
		t.Errorf("upload finished during QUIT: %q", got)
	}
}

// TestClientVanishesDuringUpload: when the control connection drops, the
// upload is abandoned, not committed: the client cannot have seen it
// succeed. The old file stays.
func TestClientVanishesDuringUpload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.put("alice/f", "old")
	h.login()
	c := h.startUpload("f")
	io.WriteString(c, "new data")
	h.raw.Close()
	// The server abandons the upload and closes the data connection. (Had
	// the data ended first, the upload would look complete: the limit of
	// stream mode that the README's "Storage semantics" states.)
	io.ReadAll(c)
	h.closed()
	if got := h.file("alice/f"); got != "old" {
		t.Errorf("after the client vanished /f is %q, want the old content", got)
	}
}

// TestShutdownDuringTransfer: Shutdown lets the transfer finish, then
// closes the session with 421.
func TestShutdownDuringTransfer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.login()
	c := h.startUpload("f")
	h.sess.Shutdown()
	if !h.sess.transferRunning() {
		t.Error("no transfer running during the upload")
	}
	io.WriteString(c, "done")
	c.Close()
	h.expectReply(226)
	h.expectReply(421)
	h.closed()
	if got := h.file("alice/f"); got != "done" {
		t.Errorf("upload finished during Shutdown: %q", got)
	}
}

// TestTransferPanic: a panic in a transfer is answered 451 without its
// text and ends only that transfer; the file it was reading is closed, the
// upload it was writing aborted (the old file stays), and its data
// connection closed.
func TestTransferPanic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		op   memstore.Op
	}{
		{"STOR f", memstore.OpWrite},
		{"RETR f", memstore.OpRead},
	} {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.put("alice/f", "old")
			h.login()
			var once sync.Once
			h.fs.SetHook(func(op memstore.Op, _ string) error {
				if op == tc.op {
					once.Do(func() { panic("secret transfer detail") })
				}
				return nil
			})
			addr := h.epsv()
			h.expect(150, tc.line)
			c := h.dial(addr)
			if tc.op == memstore.OpWrite {
				io.WriteString(c, "new")
				c.(*net.TCPConn).CloseWrite()
			}
			if msg := h.expectReply(451); strings.Contains(msg, "secret") {
				t.Errorf("panic text on the wire: %q", msg)
			}
			h.expect(200, "NOOP")
			if got := h.file("alice/f"); got != "old" {
				t.Errorf("after the panic /f is %q, want the old content", got)
			}
			// The transfer's cleanup ran: nothing of it is open, and the
			// data connection was closed before the final reply, so EOF
			// is there at once.
			use := h.fs.InUse()
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := io.ReadAll(c)
			if use.Uploads != 0 || use.Readers != 0 || err != nil {
				t.Errorf("after a panic in the transfer: open uploads %d, readers %d, data connection: %v", use.Uploads, use.Readers, err)
			}
		})
	}
}
