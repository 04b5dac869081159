package ftp

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Reply is an FTP reply as a value: a code and one or more lines of text.
type Reply struct {
	Code  int
	Lines []string
}

// appendReply renders r in RFC 959 form: "123 text" for one line, and
// "123-first", " middle", "123 last" for several. Every line is made
// harmless first (see appendSafe), so no text can end the reply early or
// start one of its own.
func appendReply(b []byte, r Reply) []byte {
	lines := r.Lines
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, l := range lines {
		switch {
		case len(lines) == 1 || i == len(lines)-1:
			b = strconv.AppendInt(b, int64(r.Code), 10)
			b = append(b, ' ')
		case i == 0:
			b = strconv.AppendInt(b, int64(r.Code), 10)
			b = append(b, '-')
		default:
			// A middle line starts with a space, so a line of text that
			// begins "213 " cannot be read as the end of the reply.
			b = append(b, ' ')
		}
		b = appendSafe(b, l)
		b = append(b, '\r', '\n')
	}
	return b
}

// appendSafe appends text with CR, LF and NUL replaced by spaces. They are
// the bytes that end a reply line (CR LF), or that clients treat as a line
// end on their own (bare LF, bare CR); NUL ends strings in C clients. A
// file name, user name or message can therefore never add a line to the
// control connection.
func appendSafe(b []byte, text string) []byte {
	for len(text) > 0 {
		i := strings.IndexAny(text, "\r\n\x00")
		if i < 0 {
			return append(b, text...)
		}
		b = append(b, text[:i]...)
		b = append(b, ' ')
		text = text[i+1:]
	}
	return b
}

// RenderReply renders r as it goes on the wire, for the few places that
// answer before a Session exists (a connection refused at accept).
func RenderReply(r Reply) []byte { return appendReply(nil, r) }

// replyWriter is the only way to the control connection's output: the
// greeting, every reply, FEAT and HELP lists and STAT listings all go
// through it, so the multi-line format and the escaping of CR, LF and NUL
// are applied in one place and no caller can forget them. Its lock
// serialises the command loop and the transfer goroutine's final reply.
// A client that does not read its replies cannot block a writer for
// longer than the write timeout; after the first failed write the rest are
// dropped (the session is ending anyway).
type replyWriter struct {
	mu      sync.Mutex
	conn    net.Conn // swapped by AUTH TLS and CCC
	timeout time.Duration
	buf     []byte
	err     error
}

func newReplyWriter(conn net.Conn, timeout time.Duration) *replyWriter {
	return &replyWriter{conn: conn, timeout: timeout}
}

// write sends one reply.
func (w *replyWriter) write(r Reply) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.buf = appendReply(w.buf[:0], r)
	w.send(w.buf)
	if cap(w.buf) > 1024 {
		w.buf = nil // an idle session keeps no large buffer
	}
	return w.err
}

func (w *replyWriter) send(b []byte) {
	if w.timeout > 0 {
		w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	_, w.err = w.conn.Write(b)
}

// stream sends a multi-line reply whose middle lines are produced one at a
// time by body (a STAT listing of a large directory), holding the writer
// for the duration. Each line given to emit is escaped and indented like
// a middle line of appendReply. The reply is closed with last even when
// body fails, so the client always reads one whole reply.
func (w *replyWriter) stream(code int, first, last string, body func(emit func(line []byte) error) error) (bodyErr error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	bw := bufio.NewWriterSize(writerFunc(func(b []byte) (int, error) {
		w.send(b)
		return len(b), w.err
	}), 8<<10)
	line := make([]byte, 0, 256)
	line = strconv.AppendInt(line, int64(code), 10)
	line = append(line, '-')
	line = append(appendSafe(line, first), '\r', '\n')
	bw.Write(line)
	bodyErr = body(func(l []byte) error {
		line = append(line[:0], ' ')
		line = append(appendSafe(line, string(l)), '\r', '\n')
		_, err := bw.Write(line)
		return err
	})
	line = strconv.AppendInt(line[:0], int64(code), 10)
	line = append(line, ' ')
	line = append(appendSafe(line, last), '\r', '\n')
	bw.Write(line)
	bw.Flush()
	return bodyErr
}

// swap moves the writer to a new connection (TLS upgrade, CCC).
func (w *replyWriter) swap(c net.Conn) {
	w.mu.Lock()
	w.conn = c
	w.mu.Unlock()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// quotePath quotes a path for a 257 reply, doubling embedded quotes
// (RFC 959 appendix II).
func quotePath(p string) string {
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}

// writeReply sends a reply on the control connection.
func (s *Session) writeReply(r Reply) {
	if err := s.out.write(r); err != nil {
		s.log.Debug("write reply", "err", err)
	}
}

func (s *Session) reply(code int, text string) {
	s.writeReply(Reply{Code: code, Lines: []string{text}})
}
