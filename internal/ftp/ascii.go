package ftp

import (
	"bufio"
	"io"
)

// asciiWriter converts LF line ends to CRLF for TYPE A downloads (RFC 959
// 3.1.1.1). Files already stored with CRLF are not doubled: an LF that
// follows a CR is passed as is.
type asciiWriter struct {
	w      *bufio.Writer
	prevCR bool
}

func newASCIIWriter(w io.Writer) *asciiWriter {
	return &asciiWriter{w: bufio.NewWriterSize(w, 32<<10)}
}

func (a *asciiWriter) Write(p []byte) (int, error) {
	start := 0
	for i, c := range p {
		if c == '\n' && !a.prevCR {
			if _, err := a.w.Write(p[start:i]); err != nil {
				return start, err
			}
			if err := a.w.WriteByte('\r'); err != nil {
				return i, err
			}
			start = i
		}
		a.prevCR = c == '\r'
	}
	if _, err := a.w.Write(p[start:]); err != nil {
		return start, err
	}
	return len(p), nil
}

// Flush writes buffered data.
func (a *asciiWriter) Flush() error { return a.w.Flush() }

// asciiReader converts CRLF to LF for TYPE A uploads. A CR not followed by
// LF is kept; a CR at the end of one read is held until the next byte shows
// what it is.
type asciiReader struct {
	r       io.Reader
	in      []byte
	out     []byte // converted bytes; out[pos:] not yet returned
	pos     int
	heldCR  bool
	srcDone error
}

func newASCIIReader(r io.Reader) *asciiReader {
	return &asciiReader{r: r, in: make([]byte, 32<<10), out: make([]byte, 0, 32<<10+1)}
}

func (a *asciiReader) Read(p []byte) (int, error) {
	for a.pos == len(a.out) {
		a.out, a.pos = a.out[:0], 0
		if a.srcDone != nil {
			if a.heldCR {
				a.heldCR = false
				a.out = append(a.out, '\r')
				break
			}
			return 0, a.srcDone
		}
		n, err := a.r.Read(a.in)
		if err != nil {
			a.srcDone = err
		}
		a.convert(a.in[:n])
	}
	n := copy(p, a.out[a.pos:])
	a.pos += n
	return n, nil
}

// convert appends in, with CRLF turned into LF, to a.out.
func (a *asciiReader) convert(in []byte) {
	out := a.out[:0]
	for _, c := range in {
		if a.heldCR {
			a.heldCR = false
			if c != '\n' {
				out = append(out, '\r')
			}
		}
		if c == '\r' {
			a.heldCR = true
			continue
		}
		out = append(out, c)
	}
	a.out = out
}
