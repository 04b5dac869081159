package ftp

import (
	"bufio"
	"errors"
)

// Telnet bytes (RFC 854) that may appear on an FTP control connection.
const (
	telnetIAC  = 255 // interpret as command
	telnetDONT = 254
	telnetWILL = 251
	telnetSB   = 250 // subnegotiation begin
	telnetSE   = 240 // subnegotiation end
)

// errLineTooLong is returned for a command line longer than the limit; the
// rest of that line has been discarded.
var errLineTooLong = errors.New("command line too long")

// lineReader reads command lines from the control connection. Unlike
// textproto.Reader it bounds line length, and it strips Telnet command
// sequences: clients send ABOR as IAC IP, IAC DM (as urgent data), ABOR.
// Its state survives a read error, so a read deadline that fires in the
// middle of a line (while a transfer keeps the session alive) loses nothing.
type lineReader struct {
	r       *bufio.Reader
	max     int
	line    []byte
	tooLong bool
	state   uint8 // telnet parser state, below
}

const (
	tsData   uint8 = iota
	tsIAC          // saw IAC
	tsOption       // saw IAC WILL/WONT/DO/DONT: skip one option byte
	tsSub          // inside IAC SB ... IAC SE
	tsSubIAC       // saw IAC inside a subnegotiation
)

// readLine returns the next line without its CR LF.
func (lr *lineReader) readLine() (string, error) {
	for {
		b, err := lr.r.ReadByte()
		if err != nil {
			return "", err
		}
		switch lr.state {
		case tsIAC:
			lr.state = tsData
			switch {
			case b == telnetIAC:
				lr.add(b) // escaped 0xFF
			case b >= telnetWILL && b <= telnetDONT:
				lr.state = tsOption
			case b == telnetSB:
				lr.state = tsSub
			case b < telnetSE:
				// Not a Telnet command: the urgent DM byte of "IAC IP IAC
				// DM" was taken out of band, so this IAC stood alone.
				if done, line, err := lr.data(b); done {
					return line, err
				}
			}
			continue
		case tsOption:
			lr.state = tsData
			continue
		case tsSub:
			if b == telnetIAC {
				lr.state = tsSubIAC
			}
			continue
		case tsSubIAC:
			lr.state = tsSub
			if b == telnetSE {
				lr.state = tsData
			}
			continue
		}
		if b == telnetIAC {
			lr.state = tsIAC
			continue
		}
		if done, line, err := lr.data(b); done {
			return line, err
		}
	}
}

// data takes one ordinary byte and reports whether it ended a line.
func (lr *lineReader) data(b byte) (done bool, line string, err error) {
	if b != '\n' {
		lr.add(b)
		return false, "", nil
	}
	l := lr.line
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	tooLong := lr.tooLong
	line = string(l)
	lr.line, lr.tooLong = lr.line[:0], false
	if cap(lr.line) > 512 {
		lr.line = nil // do not keep a long line's buffer in an idle session
	}
	if tooLong {
		return true, "", errLineTooLong
	}
	return true, line, nil
}

func (lr *lineReader) add(b byte) {
	if len(lr.line) >= lr.max {
		lr.tooLong = true
		return
	}
	lr.line = append(lr.line, b)
}
