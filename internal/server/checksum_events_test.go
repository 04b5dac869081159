package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

// ftpSession is a bare client for many goroutines: errors are returned,
// not reported on t (Fatal cannot be called off the test goroutine).
type ftpSession struct {
	c  net.Conn
	tp *textproto.Conn
}

func dialSession(addr, user, pass string) (*ftpSession, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	s := &ftpSession{c: c, tp: textproto.NewConn(c)}
	if _, err := s.expect(220); err != nil {
		c.Close()
		return nil, err
	}
	for _, step := range []struct {
		line string
		code int
	}{{"USER " + user, 331}, {"PASS " + pass, 230}, {"TYPE I", 200}} {
		if _, err := s.cmd(step.code, step.line); err != nil {
			c.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *ftpSession) expect(code int) (string, error) {
	got, msg, err := s.tp.ReadResponse(0)
	if got != code {
		return msg, fmt.Errorf("reply %d %q (%v), want %d", got, msg, err, code)
	}
	return msg, nil
}

func (s *ftpSession) cmd(code int, line string) (string, error) {
	if err := s.tp.PrintfLine("%s", line); err != nil {
		return "", err
	}
	msg, err := s.expect(code)
	if err != nil {
		return msg, fmt.Errorf("%s: %w", line, err)
	}
	return msg, nil
}

func (s *ftpSession) epsv() (*net.TCPConn, error) {
	msg, err := s.cmd(229, "EPSV")
	if err != nil {
		return nil, err
	}
	i, j := strings.Index(msg, "(|||"), strings.LastIndex(msg, "|)")
	if i < 0 || j < i {
		return nil, fmt.Errorf("bad 229 reply %q", msg)
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+msg[i+4:j], 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn), nil
}

// How one upload of TestUploadEventsChecksums ends.
const (
	endCommit = iota // all data, then the data connection closed
	endABOR          // half the data, then ABOR
	endReset         // half the data, then the data connection reset
)

// TestUploadEventsChecksums: 200 concurrent uploads into a server whose
// events go to a real HTTP receiver (the webhook sink); a quarter of them
// are aborted mid-stream, half of those by ABOR and half by a TCP reset of
// the data connection. Every committed file gets exactly one
// upload.committed event with its size and the SHA-256 of its bytes, and
// every aborted one an upload.failed event (without a checksum) and never
// a committed one; aborted files are not stored.
func TestUploadEventsChecksums(t *testing.T) {
	const secret = "another-shared-secret-for-tests"
	recv := newSignedReceiver(t, secret)
	ts := startServer(t, func(c *config.Config) {
		c.Server.StateDir = t.TempDir()
		c.Events.Sinks = []events.SinkConfig{{
			Name: "hook", Kind: events.KindWebhook, URL: recv.URL, Secret: secret,
			Types: []events.Type{"upload.*"}, RetryMin: 50 * time.Millisecond,
		}}
	})
	// One login first: the password's verification is then cached, so
	// 200 logins at once cost no argon2id each.
	if s, err := dialSession(ts.Addr, "alice", "alice-secret"); err != nil {
		t.Fatal(err)
	} else {
		s.c.Close()
	}

	const n = 200
	payloads := make([][]byte, n)
	ends := make([]int, n)
	rng := rand.New(rand.NewPCG(13, 17))
	for i := range n {
		payloads[i] = randomBytes(4<<10 + rng.IntN(28<<10))
		switch {
		case i%8 == 3:
			ends[i] = endABOR
		case i%8 == 7:
			ends[i] = endReset
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := uploadOne(ts.Addr, fmt.Sprintf("u-%03d.bin", i), payloads[i], ends[i]); err != nil {
				errs <- fmt.Errorf("upload %d (end %d): %w", i, ends[i], err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	deadline := time.Now().Add(15 * time.Second)
	var evs []events.Event
	for {
		evs = evs[:0]
		for _, e := range recv.events() {
			evs = append(evs, e)
		}
		if len(evs) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	committed, failed := map[string][]events.Event{}, map[string][]events.Event{}
	for _, e := range evs {
		switch e.Type {
		case events.UploadCommitted:
			committed[e.Path] = append(committed[e.Path], e)
		case events.UploadFailed:
			failed[e.Path] = append(failed[e.Path], e)
		default:
			t.Errorf("unexpected event %s", e.Type)
		}
	}
	for i := range n {
		name := fmt.Sprintf("u-%03d.bin", i)
		c, f := committed["/"+name], failed["/"+name]
		if ends[i] == endCommit {
			sum := sha256.Sum256(payloads[i])
			if len(c) != 1 || len(f) != 0 {
				t.Errorf("%s: %d upload.committed and %d upload.failed events, want 1 and 0", name, len(c), len(f))
				continue
			}
			if c[0].SHA256 != hex.EncodeToString(sum[:]) || c[0].Size != int64(len(payloads[i])) {
				t.Errorf("%s: event sha256 %q size %d, want %x and %d", name, c[0].SHA256, c[0].Size, sum, len(payloads[i]))
			}
			continue
		}
		if len(c) != 0 || len(f) != 1 {
			t.Errorf("%s (aborted): %d upload.committed and %d upload.failed events, want 0 and 1", name, len(c), len(f))
		} else if f[0].SHA256 != "" {
			t.Errorf("%s (aborted): upload.failed carries sha256 %q", name, f[0].SHA256)
		}
		if _, err := os.Stat(filepath.Join(ts.Root, "alice", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s (aborted) is stored: %v", name, err)
		}
	}
}

// uploadOne runs one upload of TestUploadEventsChecksums in a session of
// its own.
func uploadOne(addr, name string, data []byte, end int) error {
	s, err := dialSession(addr, "alice", "alice-secret")
	if err != nil {
		return err
	}
	defer s.c.Close()
	dc, err := s.epsv()
	if err != nil {
		return err
	}
	defer dc.Close()
	if _, err := s.cmd(150, "STOR "+name); err != nil {
		return err
	}
	if end == endCommit {
		if _, err := dc.Write(data); err != nil {
			return err
		}
		dc.Close()
		if _, err := s.expect(226); err != nil {
			return err
		}
		_, err = s.cmd(221, "QUIT")
		return err
	}
	if _, err := dc.Write(data[:len(data)/2]); err != nil {
		return err
	}
	switch end {
	case endABOR:
		if _, err := s.cmd(426, "ABOR"); err != nil {
			return err
		}
		if _, err := s.expect(226); err != nil {
			return err
		}
	case endReset:
		time.Sleep(5 * time.Millisecond) // some of the data arrives first
		dc.SetLinger(0)                  // Close sends RST, not FIN
		dc.Close()
		code, msg, _ := s.tp.ReadResponse(0)
		if code < 400 {
			return fmt.Errorf("reset upload: reply %d %q, want a failure", code, msg)
		}
	}
	_, err = s.cmd(221, "QUIT")
	return err
}
