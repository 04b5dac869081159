package ftp

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSessionInfo: the snapshot follows the session, the bytes of each
// finished transfer count once per direction (listings not at all), and
// reading it while commands and transfers run is race-free (go test
// -race).
func TestSessionInfo(t *testing.T) {
	h := newHarness(t, harnessOpts{config: func(c *Config) { c.Listener = "127.0.0.1:2121" }})
	before := h.sess.Info()
	if before.ID == "" || before.ID != h.sess.ID() || before.User != "" || before.Command != "" || before.Transfer != nil ||
		before.Client.String() != "127.0.0.1" || before.LastCommand != before.Started {
		t.Fatalf("before login: %+v", before)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // an API client polling meanwhile
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				h.sess.Info()
			}
		}
	}()
	h.login()
	up := strings.Repeat("x", 3000)
	h.stor("a.txt", up)
	h.stor("b.txt", up[:1000])
	if got := h.retr("a.txt"); len(got) != len(up) {
		t.Fatalf("RETR: %d bytes", len(got))
	}
	h.list("LIST")
	h.expect(200, "NOOP")
	close(stop)
	wg.Wait()

	in := h.sess.Info()
	if in.User != "alice" || in.Command != "NOOP" || in.Transfer != nil || in.TLS.Version != "" ||
		in.BytesUploaded != 4000 || in.BytesDownloaded != 3000 || !in.LastCommand.After(in.Started) ||
		time.Since(in.LastCommand) > time.Minute {
		t.Errorf("after two uploads, a download and a listing: %+v", in)
	}
	if in.Listener != "127.0.0.1:2121" {
		t.Errorf("listener %q", in.Listener)
	}
}
