package ftp

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// sampleArg is an argument each verb accepts syntactically, so that the
// tables below reach the check they are about and not the argument policy.
var sampleArg = map[string]string{
	"PORT": "127,0,0,1,4,1",
	"EPRT": "|1|127.0.0.1|1025|",
	"TYPE": "I",
	"STRU": "F",
	"MODE": "S",
	"REST": "0",
	"SITE": "HELP",
	"AUTH": "TLS",
	"PBSZ": "0",
	"PROT": "P",
	"OPTS": "UTF8 ON",
	"MFMT": "20200102030405 f",
	"MDTM": "f",
}

func sortedVerbs() []string {
	verbs := make([]string, 0, len(commands))
	for v := range commands {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	return verbs
}

// commandLine is verb with an argument when its policy allows one.
func commandLine(verb string) string {
	c := commands[verb]
	if c.argument == argNone {
		return verb
	}
	if a, ok := sampleArg[verb]; ok {
		return verb + " " + a
	}
	return verb + " x"
}

// TestLoginRequired walks the command table: every command not marked
// beforeLogin answers 530 before USER/PASS, whatever its argument.
func TestLoginRequired(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	for _, verb := range sortedVerbs() {
		if commands[verb].beforeLogin {
			continue
		}
		if code, msg := h.cmd(commandLine(verb)); code != 530 {
			t.Errorf("%s before login: %d %q, want 530", verb, code, msg)
		}
	}
	// After a failed login too.
	h.expect(331, "USER alice")
	h.expect(530, "PASS wrong")
	h.expect(530, "CWD /")
}

// TestArgumentPolicy walks the command table: commands that need an
// argument answer 501 without one, commands that take none answer 501 with
// one, and neither reaches its handler.
func TestArgumentPolicy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.login()
	for _, verb := range sortedVerbs() {
		var line, want string
		switch commands[verb].argument {
		case argRequired:
			line, want = verb, "needs an argument"
		case argNone:
			line, want = verb+" extra", "takes no argument"
		default:
			continue
		}
		if verb == "USER" {
			continue // refused for being logged in; see TestLogin
		}
		if code, msg := h.cmd(line); code != 501 || !strings.Contains(msg, want) {
			t.Errorf("%q: %d %q, want 501 %q", line, code, msg, want)
		}
	}
	h.expect(257, "PWD") // the session is still usable
}

// TestCommandParsing: verbs are case-insensitive, unknown and empty
// commands get 500, and the session goes on.
func TestCommandParsing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.script(
		step{"noop", 200, ""},
		step{"NoOp", 200, ""},
		step{"XYZZY", 500, `Unknown command "XYZZY"`},
		step{"", 500, "Empty command."},
		step{"   ", 500, "Empty command."},
		step{strings.Repeat("A", 40), 500, `"AAAAAAAAAAAAAAAA..."`},
		step{"NOOP", 200, ""},
	)
}

// TestLongLines: a line over the limit gets 500 and the session goes on;
// MaxBadLines of them in a row close it.
func TestLongLines(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{config: func(c *Config) { c.MaxLineLength = 64; c.MaxBadLines = 3 }})
	long := "NOOP " + strings.Repeat("x", 100)
	h.script(
		step{long, 500, "too long (limit 64 bytes)"},
		step{"NOOP", 200, ""}, // resets the count
		step{long, 500, ""},
		step{long, 500, ""},
		step{long, 421, "Too many invalid command lines"},
	)
	h.closed()
}

// TestTimeouts: an idle session and one that does not log in in time are
// told why (421) and closed.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		config func(*Config)
		login  bool
		want   string
	}{
		{"idle", func(c *Config) { c.IdleTimeout = 30 * time.Millisecond }, true, "Idle timeout"},
		{"login", func(c *Config) { c.LoginTimeout = 30 * time.Millisecond }, false, "Login timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{config: tc.config})
			if tc.login {
				h.login()
			}
			if msg := h.expectReply(421); !strings.Contains(msg, tc.want) {
				t.Errorf("timeout reply %q, want %q", msg, tc.want)
			}
			h.closed()
		})
	}
}

// TestPanicEndsOnlyTheSession: a panic in a handler is answered 421
// without its text, logged, and the session's storage is released.
func TestPanicEndsOnlyTheSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.login()
	h.fs.SetHook(func(op memstore.Op, name string) error {
		if op == memstore.OpMkdir {
			panic("secret internal detail")
		}
		return nil
	})
	if msg := h.expect(421, "MKD d"); strings.Contains(msg, "secret") {
		t.Errorf("panic text on the wire: %q", msg)
	}
	h.closed()
	if !strings.Contains(h.logs.String(), "secret internal detail") {
		t.Error("the panic is not in the log")
	}
}

// TestShutdown: an idle session is closed at once with 421.
func TestShutdown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.login()
	h.sess.Shutdown()
	if msg := h.expectReply(421); !strings.Contains(msg, "shutting down") {
		t.Errorf("shutdown reply %q", msg)
	}
	h.closed()
}

// TestPipelining: commands sent without waiting for replies are answered
// in order.
func TestPipelining(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	for _, l := range []string{"USER alice", "PASS alice-pw", "MKD d", "CWD d", "PWD"} {
		h.send(l)
	}
	for _, want := range []int{331, 230, 257, 250, 257} {
		h.expectReply(want)
	}
}
