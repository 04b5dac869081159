package ftp

import (
	"strconv"
	"strings"
	"time"
)

// Reply is an FTP reply as a value: a code and one or more lines of text.
type Reply struct {
	Code  int
	Lines []string
}

// appendReply renders r in RFC 959 form: "123 text" for one line, and
// "123-first", " middle", "123 last" for several. CR and LF inside the text
// are replaced so a file name can never inject a reply of its own.
func appendReply(b []byte, r Reply) []byte {
	code := strconv.Itoa(r.Code)
	lines := r.Lines
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, l := range lines {
		l = sanitizeReplyText(l)
		switch {
		case len(lines) == 1:
			b = append(b, code...)
			b = append(b, ' ')
		case i == 0:
			b = append(b, code...)
			b = append(b, '-')
		case i == len(lines)-1:
			b = append(b, code...)
			b = append(b, ' ')
		default:
			// A middle line must not look like the end of the reply.
			b = append(b, ' ')
		}
		b = append(b, l...)
		b = append(b, '\r', '\n')
	}
	return b
}

func sanitizeReplyText(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// quotePath quotes a path for a 257 reply, doubling embedded quotes
// (RFC 959 appendix II).
func quotePath(p string) string {
	return `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
}

// writeReply sends a reply on the control connection. Replies from the
// command loop and from a transfer goroutine are serialised here. A client
// that does not read its replies cannot block the session forever.
func (s *Session) writeReply(r Reply) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wbuf = appendReply(s.wbuf[:0], r)
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if _, err := s.conn.Write(s.wbuf); err != nil {
		s.log.Debug("write reply", "err", err)
	}
	if cap(s.wbuf) > 1024 {
		s.wbuf = nil
	}
}

func (s *Session) reply(code int, text string) {
	s.writeReply(Reply{Code: code, Lines: []string{text}})
}
