package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// target says where a server is and how to log in.
type target struct {
	Addr string // host:port of the control listener
	User string
	Pass string
	// TLS uses explicit FTPS (AUTH TLS, PBSZ 0, PROT P) with TLS 1.3 and
	// resumed data sessions.
	TLS bool
	// ServerName is sent in SNI and keys the session cache, so data
	// connections find the control connection's ticket.
	ServerName string
	// Timeout bounds every wait on the control connection.
	Timeout time.Duration
}

// client is a minimal FTP client: one control connection, replies parsed
// only as far as the code (and the EPSV port), buffers reused. It is made
// to cost the server's opponent as little CPU as possible.
type client struct {
	t     *target
	raw   net.Conn // TCP control connection
	ctrl  net.Conn // raw, or TLS over raw
	r     *bufio.Reader
	wbuf  []byte
	local *net.TCPAddr // source address for data connections (same as control)
	host  string       // server host for data connections
	tls   *tls.Config  // per-session config with its own session cache

	lastLine []byte // copy of the last reply line, for error messages
	resumed  int    // protected data connections that resumed the TLS session
	full     int    // protected data connections with a full handshake
	cipher   string // of the last protected data connection
}

// replyError is an unexpected reply.
type replyError struct {
	cmd  string
	code int
	line string
}

func (e *replyError) Error() string {
	return fmt.Sprintf("%s: unexpected reply %q", e.cmd, e.line)
}

// dial connects from src (nil: any) and reads the greeting.
func dial(t *target, src *net.TCPAddr) (*client, error) {
	d := net.Dialer{Timeout: t.timeout()}
	if src != nil {
		d.LocalAddr = src
	}
	raw, err := d.Dial("tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(t.Addr)
	c := &client{t: t, raw: raw, ctrl: raw, host: host, wbuf: make([]byte, 0, 128)}
	c.local = &net.TCPAddr{IP: raw.LocalAddr().(*net.TCPAddr).IP}
	c.r = bufio.NewReaderSize(raw, 1024)
	if _, err := c.expect("greeting", 220); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

func (t *target) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return 60 * time.Second
}

// login dials and logs in; with t.TLS it first secures the control
// connection and turns on data protection.
func login(t *target, src *net.TCPAddr) (*client, error) {
	c, err := dial(t, src)
	if err != nil {
		return nil, err
	}
	if err := c.login(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *client) login() error {
	if c.t.TLS {
		if err := c.authTLS(); err != nil {
			return err
		}
	}
	if _, err := c.cmd(331, "USER ", c.t.User); err != nil {
		return err
	}
	if _, err := c.cmd(230, "PASS ", c.t.Pass); err != nil {
		return err
	}
	if _, err := c.cmd(200, "TYPE I", ""); err != nil {
		return err
	}
	if c.t.TLS {
		if _, err := c.cmd(200, "PBSZ 0", ""); err != nil {
			return err
		}
		if _, err := c.cmd(200, "PROT P", ""); err != nil {
			return err
		}
	}
	return nil
}

func (c *client) authTLS() error {
	if _, err := c.cmd(234, "AUTH TLS", ""); err != nil {
		return err
	}
	c.tls = &tls.Config{
		ServerName:         c.t.serverName(),
		InsecureSkipVerify: true, // self-signed benchmark certificate
		MinVersion:         tls.VersionTLS13,
		// One cache per session: the server binds tickets to the control
		// session that issued them (cloudftpd) or to its own process
		// (vsftpd), so sessions must not share tickets.
		ClientSessionCache: tls.NewLRUClientSessionCache(4),
	}
	tc := tls.Client(c.raw, c.tls)
	c.raw.SetDeadline(time.Now().Add(c.t.timeout()))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("control TLS handshake: %w", err)
	}
	c.raw.SetDeadline(time.Time{})
	c.ctrl = tc
	c.r.Reset(tc)
	return nil
}

func (t *target) serverName() string {
	if t.ServerName != "" {
		return t.ServerName
	}
	return "localhost"
}

// send writes one command line without allocating.
func (c *client) send(verb, arg string) error {
	c.wbuf = append(c.wbuf[:0], verb...)
	c.wbuf = append(c.wbuf, arg...)
	c.wbuf = append(c.wbuf, '\r', '\n')
	c.ctrl.SetWriteDeadline(time.Now().Add(c.t.timeout()))
	_, err := c.ctrl.Write(c.wbuf)
	return err
}

// readReply reads one (possibly multi-line) reply and returns its code. The
// last line stays in c.lastLine until the next read.
func (c *client) readReply() (int, error) {
	c.ctrl.SetReadDeadline(time.Now().Add(c.t.timeout()))
	first := true
	code := 0
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				// Long informational line: skip the rest of it.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = c.r.ReadSlice('\n')
				}
				if err != nil {
					return 0, err
				}
				continue
			}
			return 0, err
		}
		if first {
			if len(line) < 4 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) {
				return 0, fmt.Errorf("malformed reply line %q", line)
			}
			code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
			first = false
			if line[3] != '-' {
				c.lastLine = append(c.lastLine[:0], bytes.TrimRight(line, "\r\n")...)
				return code, nil
			}
			continue
		}
		// Continuation lines until "ddd ".
		if len(line) >= 4 && line[3] == ' ' && isDigit(line[0]) &&
			int(line[0]-'0')*100+int(line[1]-'0')*10+int(line[2]-'0') == code {
			c.lastLine = append(c.lastLine[:0], bytes.TrimRight(line, "\r\n")...)
			return code, nil
		}
	}
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// expect reads a reply and checks its code.
func (c *client) expect(what string, want int) (int, error) {
	code, err := c.readReply()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if code != want {
		return code, &replyError{cmd: what, code: code, line: string(c.lastLine)}
	}
	return code, nil
}

// cmd sends verb+arg and expects the reply code want.
func (c *client) cmd(want int, verb, arg string) (int, error) {
	if err := c.send(verb, arg); err != nil {
		return 0, fmt.Errorf("%s: %w", verb, err)
	}
	return c.expect(verb, want)
}

// epsvConn sends EPSV and connects to the port it names, from the
// control connection's own address (servers check that).
func (c *client) epsvConn() (net.Conn, error) {
	if _, err := c.cmd(229, "EPSV", ""); err != nil {
		return nil, err
	}
	port, err := parseEPSV(c.lastLine)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: c.t.timeout(), LocalAddr: c.local}
	return d.Dial("tcp", net.JoinHostPort(c.host, strconv.Itoa(port)))
}

// parseEPSV extracts the port of "229 Entering Extended Passive Mode (|||port|)".
func parseEPSV(line []byte) (int, error) {
	i := bytes.Index(line, []byte("|||"))
	if i < 0 {
		return 0, fmt.Errorf("EPSV: no port in %q", line)
	}
	port := 0
	for _, b := range line[i+3:] {
		if b == '|' {
			if port == 0 || port > 65535 {
				break
			}
			return port, nil
		}
		if !isDigit(b) {
			break
		}
		port = port*10 + int(b-'0')
	}
	return 0, fmt.Errorf("EPSV: no port in %q", line)
}

// startData opens a data connection for verb+arg: EPSV, connect, send the
// command, read the 150/125, then (PROT P) the TLS handshake, which must
// resume the control session.
func (c *client) startData(verb, arg string) (net.Conn, error) {
	dc, err := c.epsvConn()
	if err != nil {
		return nil, err
	}
	if err := c.send(verb, arg); err != nil {
		dc.Close()
		return nil, err
	}
	code, err := c.readReply()
	if err != nil {
		dc.Close()
		return nil, fmt.Errorf("%s: %w", verb, err)
	}
	if code != 150 && code != 125 {
		dc.Close()
		return nil, &replyError{cmd: verb, code: code, line: string(c.lastLine)}
	}
	if c.tls == nil {
		return dc, nil
	}
	tc := tls.Client(dc, c.tls)
	dc.SetDeadline(time.Now().Add(c.t.timeout()))
	if err := tc.Handshake(); err != nil {
		dc.Close()
		c.expect(verb, 226) // the server gives up too; keep the session in step
		return nil, fmt.Errorf("%s: data TLS handshake: %w", verb, err)
	}
	dc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	c.cipher = tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite)
	if cs.DidResume {
		c.resumed++
	} else {
		c.full++
	}
	return tc, nil
}

// finish reads the transfer's final reply.
func (c *client) finish(verb string) error {
	_, err := c.expect(verb+" (end)", 226)
	return err
}

// retr downloads name into sink and returns the byte count.
func (c *client) retr(name string, sink io.Writer, buf []byte) (int64, error) {
	dc, err := c.startData("RETR ", name)
	if err != nil {
		return 0, err
	}
	n, err := copyDiscard(sink, dc, buf)
	dc.Close()
	if err != nil {
		return n, fmt.Errorf("RETR data: %w", err)
	}
	return n, c.finish("RETR")
}

// copyDiscard copies src to sink: an *os.File sink (/dev/null) takes a
// plain connection by splice; anything else goes through buf. A TLS peer's
// missing close_notify counts as the end of the stream (callers check the
// byte count).
func copyDiscard(sink io.Writer, src net.Conn, buf []byte) (int64, error) {
	if f, ok := sink.(*os.File); ok {
		if _, isTLS := src.(*tls.Conn); !isTLS {
			return f.ReadFrom(src)
		}
	}
	n, err := io.CopyBuffer(onlyWriter{sink}, onlyReader{src}, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return n, err
}

// stor uploads size bytes from src (an *os.File goes out with sendfile on a
// plain connection) as name.
func (c *client) stor(name string, src io.Reader) (int64, error) {
	dc, err := c.startData("STOR ", name)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(dc, src)
	if cerr := closeUpload(dc, c.t.timeout()); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("STOR data: %w", err)
	}
	return n, c.finish("STOR")
}

// closeUpload ends an upload's data connection. A TLS 1.3 server may have
// sent session tickets on it that were never read; closing a socket with
// unread data sends a reset, which the server takes for a failed upload. So
// send close_notify, half-close, and drain until the server closes.
func closeUpload(dc net.Conn, timeout time.Duration) error {
	tc, ok := dc.(*tls.Conn)
	if !ok {
		return dc.Close()
	}
	if err := tc.CloseWrite(); err != nil {
		tc.Close()
		return err
	}
	tc.SetReadDeadline(time.Now().Add(timeout))
	var buf [512]byte
	for {
		if _, err := tc.Read(buf[:]); err != nil {
			break
		}
	}
	tc.Close()
	return nil
}

// list runs LIST or MLSD on dir and returns bytes and lines received.
func (c *client) list(verb, dir string, buf []byte) (int64, int, error) {
	arg := ""
	if dir != "" {
		arg = " " + dir
	}
	dc, err := c.startData(verb, arg)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	lines := 0
	for {
		n, err := dc.Read(buf)
		total += int64(n)
		lines += bytes.Count(buf[:n], []byte{'\n'})
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				dc.Close()
				return total, lines, fmt.Errorf("%s data: %w", verb, err)
			}
			break
		}
	}
	dc.Close()
	return total, lines, c.finish(verb)
}

// quit says goodbye and closes.
func (c *client) quit() error {
	_, err := c.cmd(221, "QUIT", "")
	c.close()
	return err
}

func (c *client) close() { c.ctrl.Close() }

// onlyReader and onlyWriter hide ReadFrom/WriteTo so io.CopyBuffer uses
// the given buffer.
type onlyReader struct{ io.Reader }

type onlyWriter struct{ io.Writer }
