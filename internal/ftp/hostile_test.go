package ftp

import (
	"bufio"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// hostileArgs are arguments built to break the reply stream if any reply
// echoed them raw: a bare CR (a line end to some clients), NUL (a string
// end to C clients), text that starts like a reply, and a name close to
// the line limit.
var hostileArgs = []string{
	"x\r213 forged",
	"x\x00550 forged",
	"226 Transfer complete.",
	"a/" + strings.Repeat("n", 3000),
	"-la \r421 bye",
}

// TestHostileArgumentsCannotForgeReplies sends every command of the
// table, before and after login, with each hostile argument and checks the
// raw reply stream: exactly one reply per command, every line of it well
// formed, and the next command's reply its own. Files with CR and LF in
// their names are in the home, so the commands that list or describe
// files (STAT, MLST) meet them too.
func TestHostileArgumentsCannotForgeReplies(t *testing.T) {
	verbs := make([]string, 0, len(commands))
	for v := range commands {
		if v != "QUIT" { // ends the session; covered on its own
			verbs = append(verbs, v)
		}
	}
	slices.Sort(verbs)
	for _, loggedIn := range []bool{false, true} {
		name := "before login"
		if loggedIn {
			name = "after login"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, verb := range verbs {
				h := newHarness(t, harnessOpts{config: func(c *Config) { c.MaxLoginFailures = 0 }})
				h.put("alice/x\r\n213 forged/f\r\n226 fake", "data")
				h.put("alice/226 plain", "data")
				if loggedIn {
					h.login()
				}
				r := bufio.NewReader(h.tp.R)
				for _, arg := range append(slices.Clone(hostileArgs), "", "/") {
					if verb == "REIN" || verb == "USER" || verb == "PASS" || verb == "AUTH" {
						arg = strings.TrimPrefix(arg, "/")
					}
					line := verb + " " + arg
					h.send(strings.TrimRight(line, " ") + "\r\nNOOP")
					h.raw.SetReadDeadline(time.Now().Add(replyTimeout))
					first := readRawReply(t, r, line)
					if first == 0 {
						break
					}
					// Whatever the command did, NOOP's reply follows.
					if code := readRawReply(t, r, "NOOP after "+line); code != 200 && code != 530 && code != 0 {
						t.Errorf("%q: the reply after it is %d, not NOOP's: the stream is out of step", line, code)
						break
					}
					if verb == "REIN" && loggedIn && first == 220 {
						h.login()
					}
				}
			}
		})
	}
}

// readRawReply reads one reply from the raw stream and checks its form
// (RFC 959 4.2): a single line "ddd text", or "ddd-text" lines up to a
// line "ddd text" with the same code, every middle line starting with a
// space so it cannot be taken for the end. It returns the code, or 0 if
// the session ended.
func readRawReply(t *testing.T, r *bufio.Reader, what string) int {
	t.Helper()
	line, err := r.ReadString('\n')
	if err == io.EOF || (err != nil && line == "") {
		return 0
	}
	code, multi, ok := replyStart(line)
	if !ok {
		t.Fatalf("%q: reply line %q is not a reply", what, line)
	}
	for multi {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: multi-line reply cut off: %v", what, err)
		}
		checkReplyLine(t, what, l)
		if strings.HasPrefix(l, line[:3]+" ") {
			break
		}
		if !strings.HasPrefix(l, " ") {
			t.Fatalf("%q: middle line %q could be read as a reply", what, l)
		}
	}
	checkReplyLine(t, what, line)
	return code
}

func replyStart(line string) (code int, multi, ok bool) {
	if len(line) < 4 || line[0] < '1' || line[0] > '5' {
		return 0, false, false
	}
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		code = code*10 + int(c-'0')
	}
	return code, line[3] == '-', line[3] == ' ' || line[3] == '-'
}

// checkReplyLine: the only CR, LF or NUL in a line is its CR LF end.
func checkReplyLine(t *testing.T, what, l string) {
	t.Helper()
	body, ok := strings.CutSuffix(l, "\r\n")
	if !ok || strings.ContainsAny(body, "\r\n\x00") {
		t.Fatalf("%q: reply line %q carries a raw CR, LF or NUL", what, l)
	}
}
