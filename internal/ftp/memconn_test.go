package ftp

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// memPipe returns the two ends of an in-memory, full-duplex connection
// with deadlines. Unlike net.Pipe its writes are buffered and never block,
// as on a TCP socket with roomy buffers: with net.Pipe a server write (a
// TLS 1.3 session ticket after the handshake, a reply to a pipelined
// command) waits for the client to read while the client waits for its
// own write to be read, and both hang.
func memPipe() (client, server *memConn) {
	a := &memBuf{wake: make(chan struct{}, 1)}
	b := &memBuf{wake: make(chan struct{}, 1)}
	clientAddr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
	serverAddr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 21}
	client = &memConn{in: a, out: b, local: clientAddr, remote: serverAddr, closed: make(chan struct{})}
	server = &memConn{in: b, out: a, local: serverAddr, remote: clientAddr, closed: make(chan struct{})}
	return client, server
}

// memBuf is one direction of a memPipe.
type memBuf struct {
	mu     sync.Mutex
	data   []byte
	eof    bool          // the writing end closed: read what is left, then io.EOF
	broken bool          // the reading end closed: writes fail
	wake   chan struct{} // capacity 1: data arrived, EOF, or a deadline moved
}

func (b *memBuf) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// memConn is one end of a memPipe. One goroutine reads at a time (as the
// session and the test client do); any number may write.
type memConn struct {
	in, out       *memBuf
	local, remote net.Addr

	mu              sync.Mutex
	readDL, writeDL time.Time
	closeOnce       sync.Once
	closed          chan struct{}
}

var _ net.Conn = (*memConn)(nil)

func (c *memConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		default:
		}
		c.in.mu.Lock()
		if len(c.in.data) > 0 {
			n := copy(p, c.in.data)
			c.in.data = c.in.data[n:]
			c.in.mu.Unlock()
			return n, nil
		}
		eof := c.in.eof
		c.in.mu.Unlock()
		if eof {
			return 0, io.EOF
		}
		c.mu.Lock()
		dl := c.readDL
		c.mu.Unlock()
		var timeout <-chan time.Time
		var timer *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			timer = time.NewTimer(d)
			timeout = timer.C
		}
		select {
		case <-c.in.wake:
		case <-timeout:
		case <-c.closed:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (c *memConn) Write(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.mu.Lock()
	dl := c.writeDL
	c.mu.Unlock()
	if !dl.IsZero() && !time.Now().Before(dl) {
		return 0, os.ErrDeadlineExceeded
	}
	c.out.mu.Lock()
	if c.out.broken || c.out.eof {
		c.out.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	c.out.data = append(c.out.data, p...)
	c.out.mu.Unlock()
	c.out.signal()
	return len(p), nil
}

// Close ends both directions: the peer reads what was written, then EOF,
// and its writes fail.
func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.out.mu.Lock()
		c.out.eof = true
		c.out.mu.Unlock()
		c.out.signal()
		c.in.mu.Lock()
		c.in.broken, c.in.data = true, nil
		c.in.mu.Unlock()
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *memConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDL = t
	c.mu.Unlock()
	c.in.signal() // a blocked Read looks at the new deadline
	return nil
}

func (c *memConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.writeDL = t
	c.mu.Unlock()
	return nil
}
