package ftp

import (
	"slices"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// TestInfoCommands covers SYST, NOOP, OPTS and HELP, all allowed before
// login.
func TestInfoCommands(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "SYST", user: "-", steps: []step{
			{"SYST", 215, "UNIX Type: L8"},
			{"SYST x", 501, ""},
		}},
		{name: "NOOP", user: "-", steps: []step{
			{"NOOP", 200, "NOOP ok."},
			{"NOOP anything", 200, ""},
		}},
		{name: "OPTS", user: "-", steps: []step{
			{"OPTS UTF8 ON", 200, "UTF8 mode enabled."},
			{"OPTS utf8", 200, "enabled"},
			{"OPTS UTF-8 ON", 200, "enabled"},
			{"OPTS UTF8 OFF", 200, "disabled"},
			{"OPTS UTF8 MAYBE", 501, "ON or OFF"},
			{"OPTS MLST type;size;", 200, "MLST OPTS type;size;"},
			{"OPTS MLST Modify;bogus;UNIQUE", 200, "MLST OPTS modify;unique;"},
			{"OPTS MODE Z", 501, "Unknown option."},
		}},
		{name: "HELP", user: "-", steps: []step{
			{"HELP", 214, "The following commands are recognized:"},
			{"HELP user", 214, "Syntax: USER <name>"},
			{"HELP MLSD", 214, "Syntax: MLSD [<dir>]"},
			{"HELP XYZZY", 502, "Unknown command XYZZY."},
		}},
	})
}

// TestHELPListsEveryCommand: the HELP list is the command table, ten verbs
// a line, ending with "Help OK.".
func TestHELPListsEveryCommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	lines := strings.Split(h.expect(214, "HELP"), "\n")
	if lines[len(lines)-1] != "Help OK." {
		t.Errorf("HELP ends with %q", lines[len(lines)-1])
	}
	var listed []string
	for _, l := range lines[1 : len(lines)-1] {
		f := strings.Fields(l)
		if len(f) > 10 {
			t.Errorf("HELP line with %d verbs: %q", len(f), l)
		}
		listed = append(listed, f...)
	}
	if want := sortedVerbs(); !slices.Equal(listed, want) {
		t.Errorf("HELP lists %v, want %v", listed, want)
	}
}

// TestFEAT covers FEAT (RFC 2389): one feature a line, each starting with
// a space; the FTPS ones only when TLS is configured; the MLST line marks
// the facts OPTS MLST chose.
func TestFEAT(t *testing.T) {
	t.Parallel()
	plain := []string{"Features:", " EPRT", " EPSV", " HASH SHA-256*;SHA-1;MD5;CRC32", " MDTM", " MFMT", " MLST type*;size*;modify*;perm*;unique*;",
		" PASV", " REST STREAM", " SIZE", " TVFS", " UTF8", "End"}
	withTLS := slices.Insert(slices.Clone(plain), 1, " AUTH TLS", " AUTH SSL", " PBSZ", " PROT")
	withCCC := slices.Insert(slices.Clone(withTLS), 5, " CCC")
	for _, tc := range []struct {
		name  string
		opts  harnessOpts
		opts2 string // OPTS MLST before FEAT, when set
		want  []string
	}{
		{"plain", harnessOpts{}, "", plain},
		{"TLS", harnessOpts{tls: func(*TLSPolicy) {}}, "", withTLS},
		{"TLS with CCC", harnessOpts{tls: func(p *TLSPolicy) { p.AllowCCC = true }}, "", withCCC},
		{"after OPTS MLST", harnessOpts{}, "type;", slices.Concat(plain[:6], []string{" MLST type*;size;modify;perm;unique;"}, plain[7:])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.opts)
			if tc.opts2 != "" {
				h.expect(200, "OPTS MLST "+tc.opts2)
			}
			if got := strings.Split(h.expect(211, "FEAT"), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("FEAT:\n%q\nwant\n%q", got, tc.want)
			}
			h.expect(501, "FEAT x")
		})
	}
}

// TestSTAT covers STAT without an argument (the session's state, 211) and
// with a path (an ls -l listing on the control connection, 213).
func TestSTAT(t *testing.T) {
	t.Parallel()
	files := map[string]string{"alice/f": "hello", "alice/d/x": ""}
	dated := setWhen("alice/f", "alice/d", "alice/d/x")
	runScripts(t, []scriptCase{
		{name: "before login", user: "-", steps: []step{
			{"STAT", 211, "cloudftpd status:\n Connected from 127.0.0.1\n Not logged in\n TYPE: ASCII, STRUcture: File, MODE: Stream\n No data connection\nEnd of status"},
			{"STAT /", 530, ""},
		}},
		{name: "logged in", files: files, steps: []step{
			{"TYPE I", 200, ""},
			{"STAT", 211, " Logged in as alice\n TYPE: BINARY,"},
		}},
		{name: "directory", files: files, setup: dated, steps: []step{
			{"STAT /", 213, "Status of /:\n drwxr-xr-x    1 ftp      ftp             0 Feb 03  2021 d\n -rw-r--r--    1 ftp      ftp             5 Feb 03  2021 f\nEnd of status."},
			{"STAT -la d", 213, "Status of /d:\n -rw-r--r--    1 ftp      ftp             0 Feb 03  2021 x\nEnd of status."},
		}},
		{name: "file", files: files, setup: dated, steps: []step{
			{"STAT f", 213, "Status of /f:\n -rw-r--r--    1 ftp      ftp             5 Feb 03  2021 f\nEnd of status."},
		}},
		{name: "refusals", files: files, steps: []step{
			{"STAT nope", 550, "No such file or directory."},
			{"STAT a\x00", 553, ""},
		}},
		{name: "without the list permission", user: "drop", files: files, steps: []step{
			{"STAT /", 550, "you may not list directories"},
			{"STAT", 211, "Logged in as drop"},
		}},
	})
}

// TestSTATNamesCannotForgeReplies: a file name holding CR LF must not end
// the STAT reply early with a line of its own (the 213 listing is on the
// control connection, so such a line would be read as the reply).
func TestSTATNamesCannotForgeReplies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.put("alice/d/x\r\n213 forged", "")
	h.login()
	code, msg := h.cmd("STAT d")
	if code != 213 || !strings.HasSuffix(msg, "End of status.") {
		t.Errorf("STAT d: %d %q", code, msg)
	}
	h.expect(200, "NOOP")
}

// TestListingReadDirError: a directory that cannot be read gets the error
// table's reply before anything else, not an empty 213 listing or a 150
// followed by a failure.
func TestListingReadDirError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.put("alice/d/x", "")
	h.login()
	for _, line := range []string{"STAT d", "LIST d", "NLST d", "MLSD d"} {
		h.fs.FailNext(memstore.OpReadDir, "/d", storage.ErrPermission)
		if code, msg := h.cmd(line); code != 550 {
			t.Errorf("%s with ReadDir failing: %d %q, want 550", line, code, msg)
		}
	}
}
