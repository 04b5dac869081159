package ftp

import (
	"context"

	"fmt"
	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

func ptr(s string) *string { return &s }

// xferCase is one data command on a fresh session.
type xferCase struct {
	name   string
	user   string // "" for alice
	opts   harnessOpts
	files  map[string]string
	before []step           // commands before the transfer
	line   string           // the data command
	upload *string          // nil for downloads and listings
	first  int              // reply to the command (150 when accepted)
	code   int              // final reply
	msg    string           // the final reply contains it
	data   string           // what a download must receive (when first is 150)
	setup  func(h *harness) // after the files are written
	check  func(*testing.T, *harness)
}

func runXfers(t *testing.T, cases []xferCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.opts)
			for p, d := range tc.files {
				h.put(p, d)
			}
			if tc.setup != nil {
				tc.setup(h)
			}
			if tc.user == "" {
				h.login()
			} else {
				h.loginAs(tc.user)
			}
			h.script(tc.before...)
			r := h.xfer(tc.line, tc.upload)
			if r.first != tc.first || r.code != tc.code || !strings.Contains(r.msg, tc.msg) {
				t.Errorf("%s: replies %d then %d %q, want %d then %d containing %q", tc.line, r.first, r.code, r.msg, tc.first, tc.code, tc.msg)
			}
			if tc.first == 150 && tc.upload == nil && r.data != tc.data {
				t.Errorf("%s received %q, want %q", tc.line, r.data, tc.data)
			}
			if tc.check != nil {
				tc.check(t, h)
			}
			h.expect(200, "NOOP") // the session goes on
		})
	}
}

var bigFile = strings.Repeat("0123456789abcdef", 3<<16) // 3 MiB: several copy chunks

// TestRETR covers RETR: binary and ASCII downloads, REST, and refusals.
func TestRETR(t *testing.T) {
	t.Parallel()
	files := map[string]string{"alice/f": "hello", "alice/t": "a\nb\r\nc\n", "alice/big": bigFile, "alice/d/x": "", "drop/f": "x"}
	runXfers(t, []xferCase{
		{name: "binary", files: files, before: []step{{"TYPE I", 200, ""}},
			line: "RETR f", first: 150, code: 226, msg: "Transfer complete.", data: "hello"},
		{name: "large", files: files, before: []step{{"TYPE I", 200, ""}},
			line: "RETR big", first: 150, code: 226, data: bigFile},
		{name: "ASCII adds CR, not twice", files: files,
			line: "RETR t", first: 150, code: 226, data: "a\r\nb\r\nc\r\n"},
		{name: "REST", files: files, before: []step{{"TYPE I", 200, ""}, {"REST 2", 350, "Restarting at 2."}},
			line: "RETR f", first: 150, code: 226, data: "llo"},
		{name: "REST survives other commands", files: files, before: []step{{"REST 3", 350, ""}, {"TYPE I", 200, ""}, {"SIZE f", 213, ""}},
			line: "RETR f", first: 150, code: 226, data: "lo"},
		{name: "REST at the end", files: files, before: []step{{"REST 5", 350, ""}},
			line: "RETR f", first: 150, code: 226, data: ""},
		{name: "REST beyond the end", files: files, before: []step{{"REST 6", 350, ""}},
			line: "RETR f", first: 554, code: 554, msg: "beyond the end of the file (5 bytes)"},
		{name: "missing", files: files, line: "RETR nope", first: 550, code: 550, msg: "No such file or directory."},
		{name: "directory", files: files, line: "RETR d", first: 550, code: 550, msg: "Not a regular file."},
		{name: "bad name", files: files, line: "RETR f\x00", first: 553, code: 553},
		{name: "without the download permission", user: "drop", files: files,
			line: "RETR f", first: 550, code: 550, msg: "you may not download files"},
	})
}

// TestRESTIsUsedOnce: a REST applies to the next transfer only, and a
// listing drops it.
func TestRESTIsUsedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.put("alice/f", "hello")
	h.login()
	h.script(step{"REST 1", 350, ""})
	if got := h.retr("f"); got != "ello" {
		t.Errorf("RETR after REST 1: %q", got)
	}
	if got := h.retr("f"); got != "hello" {
		t.Errorf("second RETR: %q, want the whole file", got)
	}
	h.script(step{"REST 1", 350, ""})
	h.list("NLST")
	if got := h.retr("f"); got != "hello" {
		t.Errorf("RETR after REST, NLST: %q, want the whole file", got)
	}
	h.script(
		step{"REST x", 501, "non-negative byte offset"},
		step{"REST -1", 501, ""},
		step{"REST 1.5", 501, ""},
		step{"REST 99999999999999999999", 501, ""},
		step{"REST  7 ", 350, "Restarting at 7."},
	)
}

// TestSTOR covers STOR and its refusals; a refused upload changes nothing.
func TestSTOR(t *testing.T) {
	t.Parallel()
	files := map[string]string{"alice/f": "hello", "alice/d/x": ""}
	runXfers(t, []xferCase{
		{name: "new file", files: files, line: "STOR g", upload: ptr("data"), first: 150, code: 226, msg: "Transfer complete.",
			check: wantFile("alice/g", "data")},
		{name: "replace", files: files, line: "STOR f", upload: ptr("new"), first: 150, code: 226,
			check: wantFile("alice/f", "new")},
		{name: "large", files: files, before: []step{{"TYPE I", 200, ""}}, line: "STOR d/big", upload: &bigFile, first: 150, code: 226,
			check: wantFile("alice/d/big", bigFile)},
		{name: "empty", files: files, line: "STOR f", upload: ptr(""), first: 150, code: 226,
			check: wantFile("alice/f", "")},
		{name: "ASCII drops CR before LF", files: files, line: "STOR t", upload: ptr("a\r\nb\rc\r\n"), first: 150, code: 226,
			check: wantFile("alice/t", "a\nb\rc\n")},
		{name: "binary keeps CR", files: files, before: []step{{"TYPE I", 200, ""}}, line: "STOR t", upload: ptr("a\r\n"), first: 150, code: 226,
			check: wantFile("alice/t", "a\r\n")},
		{name: "REST resumes", files: files, before: []step{{"TYPE I", 200, ""}, {"REST 3", 350, ""}}, line: "STOR f", upload: ptr("XY!"), first: 150, code: 226,
			check: wantFile("alice/f", "helXY!")},
		{name: "REST without the capability", opts: harnessOpts{caps: noCaps(storage.Capabilities{})}, files: files,
			before: []step{{"REST 3", 350, ""}}, line: "STOR f", upload: ptr("x"), first: 502, code: 502, msg: "Resuming uploads",
			check: wantFile("alice/f", "hello")},
		{name: "over a directory", files: files, line: "STOR d", upload: ptr("x"), first: 550, code: 550, msg: "Is a directory."},
		{name: "over the home", files: files, line: "STOR /", upload: ptr("x"), first: 550, code: 550, msg: "Is a directory."},
		{name: "missing directory", files: files, line: "STOR nodir/g", upload: ptr("x"), first: 550, code: 550, msg: "No such file or directory."},
		{name: "bad name", files: files, line: "STOR g\x00", upload: ptr("x"), first: 553, code: 553},
		{name: "without the upload permission", user: "reader", files: files, line: "STOR g", upload: ptr("x"), first: 550, code: 550,
			msg: "you may not upload files", check: wantGone("alice/g")},
		{name: "new file without the overwrite permission", user: "limited", files: files, line: "STOR g", upload: ptr("x"), first: 150, code: 226,
			check: wantFile("alice/g", "x")},
		{name: "existing file without the overwrite permission", user: "limited", files: files, line: "STOR f", upload: ptr("x"), first: 550, code: 550,
			msg: "the file exists and you may not overwrite files", check: wantFile("alice/f", "hello")},
		{name: "REST without the overwrite permission", user: "limited", files: files, before: []step{{"REST 5", 350, ""}},
			line: "STOR f", upload: ptr("x"), first: 550, code: 550, check: wantFile("alice/f", "hello")},
	})
}

// TestSTORRestBeyondEnd: REST past the end of the file, then STOR, is an
// invalid restart marker: 554 (RFC 3659 section 5.5, as RETR answers), not
// "not supported by this server's storage".
func TestSTORRestBeyondEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.put("alice/f", "hello")
	h.login()
	h.expect(350, "REST 9")
	r := h.xfer("STOR f", ptr("x"))
	if got := h.file("alice/f"); got != "hello" {
		t.Errorf("refused resume changed the file: %q", got)
	}
	if r.first != 554 {
		t.Errorf("reply %d %q", r.first, r.msg)
	}
}

// TestAPPE covers APPE.
func TestAPPE(t *testing.T) {
	t.Parallel()
	files := map[string]string{"alice/f": "hello", "alice/d/x": ""}
	runXfers(t, []xferCase{
		{name: "append", files: files, line: "APPE f", upload: ptr(" world"), first: 150, code: 226,
			check: wantFile("alice/f", "hello world")},
		{name: "creates", files: files, line: "APPE g", upload: ptr("new"), first: 150, code: 226,
			check: wantFile("alice/g", "new")},
		{name: "without the capability", opts: harnessOpts{caps: noCaps(storage.Capabilities{})}, files: files,
			line: "APPE f", upload: ptr("x"), first: 502, code: 502, msg: "APPE is not supported", check: wantFile("alice/f", "hello")},
		{name: "to a directory", files: files, line: "APPE d", upload: ptr("x"), first: 550, code: 550, msg: "Is a directory."},
		{name: "without the overwrite permission", user: "limited", files: files, line: "APPE f", upload: ptr("x"), first: 550, code: 550,
			check: wantFile("alice/f", "hello")},
		{name: "without the upload permission", user: "reader", files: files, line: "APPE f", upload: ptr("x"), first: 550, code: 550,
			msg: "you may not upload files"},
	})
}

var uniqueName = regexp.MustCompile(`FILE: (\S+)`)

// TestSTOU covers STOU: the 150 names the new file (RFC 1123 4.1.2.9), and
// the file is created next to the name given, never over an existing one.
func TestSTOU(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg, dir, prefix string
	}{
		{"", "alice", "ftp."},
		{"report", "alice", "report."},
		{"d/report", "alice/d", "report."},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.put("alice/d/x", "")
			h.login()
			h.expect(350, "REST 4") // ignored: a new file has nothing to resume
			addr := h.epsv()
			line := strings.TrimSpace("STOU " + tc.arg)
			msg := h.expect(150, line)
			m := uniqueName.FindStringSubmatch(msg)
			if m == nil || !strings.HasPrefix(m[1], tc.prefix) {
				t.Fatalf("150 reply %q, want FILE: %s...", msg, tc.prefix)
			}
			c := h.dial(addr)
			io.WriteString(c, "unique")
			c.Close()
			if msg := h.expectReply(226); !strings.Contains(msg, m[1]) {
				t.Errorf("226 reply %q does not name %s", msg, m[1])
			}
			record(line, 226)
			if got := h.file(tc.dir + "/" + m[1]); got != "unique" {
				t.Errorf("%s/%s = %q", tc.dir, m[1], got)
			}
		})
	}
	runXfers(t, []xferCase{
		{name: "without the upload permission", user: "reader", line: "STOU", upload: ptr("x"), first: 550, code: 550},
		{name: "bad name", line: "STOU a\x00", upload: ptr("x"), first: 553, code: 553},
	})
}

// TestALLO: ALLO is accepted and not needed (202), with or without a size.
func TestALLO(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{{name: "ALLO", steps: []step{
		{"ALLO 1000", 202, "not needed"},
		{"ALLO", 202, ""},
	}}})
}

// TestListings covers LIST, NLST and MLSD over the data connection.
func TestListings(t *testing.T) {
	t.Parallel()
	files := map[string]string{"alice/f": "hello", "alice/d/x": "", "alice/-dash": ""}
	dated := setWhen("alice/f", "alice/d", "alice/d/x", "alice/-dash")
	runXfers(t, []xferCase{
		{name: "LIST", files: files, setup: dated, line: "LIST", first: 150, code: 226, msg: "Directory send OK.",
			data: lsLine("-dash", "-rw-r--r--", 0) + lsLine("d", "drwxr-xr-x", 0) + lsLine("f", "-rw-r--r--", 5)},
		{name: "LIST with options", files: files, setup: dated, line: "LIST -la d", first: 150, code: 226,
			data: lsLine("x", "-rw-r--r--", 0)},
		{name: "LIST a file", files: files, setup: dated, line: "LIST f", first: 150, code: 226,
			data: lsLine("f", "-rw-r--r--", 5)},
		// A leading dash is an option (ignored) unless the word holds a
		// "/" or "."; "./-dash" names the file.
		{name: "LIST a name starting with a dash", files: files, setup: dated, line: "LIST ./-dash", first: 150, code: 226,
			data: lsLine("-dash", "-rw-r--r--", 0)},
		{name: "LIST a dash word is an option", files: files, setup: dated, line: "LIST -dash", first: 150, code: 226,
			data: lsLine("-dash", "-rw-r--r--", 0) + lsLine("d", "drwxr-xr-x", 0) + lsLine("f", "-rw-r--r--", 5)},
		{name: "NLST", files: files, line: "NLST", first: 150, code: 226, data: "-dash\r\nd\r\nf\r\n"},
		{name: "NLST a directory", files: files, line: "NLST -l d", first: 150, code: 226, data: "x\r\n"},
		{name: "LIST missing", files: files, line: "LIST nope", first: 550, code: 550, msg: "No such file or directory."},
		{name: "NLST bad name", files: files, line: "NLST a\x00", first: 553, code: 553},
		{name: "LIST without the list permission", user: "drop", files: files, line: "LIST", first: 550, code: 550,
			msg: "you may not list directories"},
		{name: "NLST without the list permission", user: "drop", files: files, line: "NLST", first: 550, code: 550},
		{name: "MLSD", files: files, before: []step{{"OPTS MLST type;size;", 200, ""}}, line: "MLSD", first: 150, code: 226,
			data: "type=file;size=0; -dash\r\ntype=dir; d\r\ntype=file;size=5; f\r\n"},
		{name: "MLSD perm facts", user: "reader", files: files, before: []step{{"OPTS MLST type;perm;", 200, ""}}, line: "MLSD", first: 150, code: 226,
			data: "type=file;perm=r; -dash\r\ntype=dir;perm=el; d\r\ntype=file;perm=r; f\r\n"},
		{name: "MLSD a directory", files: files, before: []step{{"OPTS MLST type;", 200, ""}}, line: "MLSD d", first: 150, code: 226,
			data: "type=file; x\r\n"},
		{name: "MLSD a file", files: files, line: "MLSD f", first: 501, code: 501, msg: "MLSD needs a directory"},
		{name: "MLSD takes no options", files: files, line: "MLSD -la", first: 550, code: 550},
		{name: "MLSD missing", files: files, line: "MLSD nope", first: 550, code: 550},
		{name: "MLSD without the list permission", user: "drop", files: files, line: "MLSD", first: 550, code: 550},
	})
}

// lsLine is the "ls -l" line LIST sends for an entry dated when (more
// than six months ago, so with the year).
func lsLine(name, mode string, size int) string {
	return fmt.Sprintf("%s    1 ftp      ftp      %8d Feb 03  2021 %s\r\n", mode, size, name)
}

// TestMLST covers MLST (RFC 3659 7): one entry on the control connection,
// its line starting with a space, with the facts OPTS MLST chose.
func TestMLST(t *testing.T) {
	t.Parallel()
	files := map[string]string{"alice/f": "hello", "alice/d/x": ""}
	runScripts(t, []scriptCase{
		{name: "file", files: files, setup: setWhen("alice/f"), steps: []step{
			{"MLST f", 250, "Listing /f\n type=file;size=5;modify=20210203040506;perm=adfrw;unique="},
			{"MLST /f", 250, "; /f\nEnd"},
		}},
		{name: "directory and default", files: files, steps: []step{
			{"OPTS MLST type;perm;", 200, "MLST OPTS type;perm;"},
			{"MLST d", 250, " type=dir;perm=cdeflm; /d\nEnd"},
			{"MLST", 250, " type=dir;perm=cdeflm; /\nEnd"},
			{"OPTS MLST", 200, "MLST OPTS "},
			{"MLST f", 250, "Listing /f\n  /f\nEnd"},
		}},
		{name: "download-only user", user: "reader", files: files, steps: []step{
			{"OPTS MLST perm;", 200, ""},
			{"MLST f", 250, " perm=r; /f"},
		}},
		{name: "refusals", files: files, steps: []step{
			{"MLST nope", 550, "No such file or directory."},
			{"MLST a\x00", 553, ""},
		}},
		{name: "without list or download permission", user: "drop", files: files, steps: []step{
			{"MLST f", 550, "Permission denied."},
		}},
	})
}

// TestABOR covers ABOR without a transfer (225, RFC 959) and during an
// upload: 426 for the transfer, then 226 for the ABOR, and the old file
// stays (uploads are atomic).
func TestABOR(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{})
		h.put("alice/f", "x")
		h.login()
		h.expect(225, "ABOR")
		h.epsv()
		h.expect(225, "ABOR")     // also gives the passive port back
		h.expect(425, "RETR f")   // so there is no data connection
		h.expect(501, "ABOR now") // takes no argument
		h.expect(200, "NOOP")
	})
	// Clients send ABOR plain or behind Telnet IP and Synch (RFC 959
	// 4.1.3), which the line reader strips.
	for _, abor := range []string{"ABOR", "\xff\xf4\xff\xf2ABOR"} {
		t.Run(fmt.Sprintf("upload %q", abor), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.put("alice/f", "old")
			h.login()
			// The hook tells when the upload's first Write reached storage:
			// the transfer is then surely running on its data connection.
			writing := make(chan struct{})
			var once sync.Once
			h.fs.SetHook(func(op memstore.Op, _ string) error {
				if op == memstore.OpWrite {
					once.Do(func() { close(writing) })
				}
				return nil
			})
			addr := h.epsv()
			h.expect(150, "STOR f")
			c := h.dial(addr)
			// More than the server's copy buffer, so that it writes.
			go io.WriteString(c, strings.Repeat("partial new content\n", 20_000))
			<-writing
			h.send(abor)
			if msg := h.expectReply(426); !strings.Contains(msg, "upload discarded") {
				t.Errorf("aborted upload: %q", msg)
			}
			h.expectReply(226)
			record("ABOR", 226)
			if got := h.file("alice/f"); got != "old" {
				t.Errorf("after ABOR the file is %q, want the old content", got)
			}
			if u := h.fs.InUse(); u.Uploads != 0 {
				t.Errorf("%d uploads still open after ABOR", u.Uploads)
			}
		})
	}
	t.Run("download", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{})
		h.put("alice/f", bigFile)
		h.login()
		reading, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		h.fs.SetHook(func(op memstore.Op, _ string) error {
			if op == memstore.OpRead {
				once.Do(func() { close(reading) })
				<-release // a download that does not move until ABOR
			}
			return nil
		})
		addr := h.epsv()
		h.expect(150, "RETR f")
		c := h.dial(addr)
		<-reading
		h.send("ABOR")
		// ABOR closes the data connection; only then may the download
		// move again, or it could finish before the ABOR is read.
		if got, _ := io.ReadAll(c); len(got) != 0 {
			t.Errorf("received %d bytes of a download stuck in its first read", len(got))
		}
		close(release)
		h.expectReply(426)
		h.expectReply(226)
	})
}

// binaryOnlyAuth makes every user it authenticates binary-only, as
// binary_only = true in the users file does.
type binaryOnlyAuth struct{ auth.Authenticator }

func (a binaryOnlyAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	u, err := a.Authenticator.Authenticate(ctx, name, password)
	if u != nil {
		u.BinaryOnly = true
	}
	return u, err
}

// TestBinaryOnly: on a binary-only listener, or for a binary-only user,
// TYPE A is accepted and files still travel unchanged both ways; without
// the switch, TYPE A converts line endings as before.
func TestBinaryOnly(t *testing.T) {
	t.Parallel()
	const text = "line one\nline two\r\nbinary \x00\xff\n"
	for _, tc := range []struct {
		name       string
		config     func(*Config)
		unchanged  bool
		typeAReply string
	}{
		{"default converts", nil, false, "Switching to ASCII mode."},
		{"listener", func(c *Config) { c.BinaryOnly = true }, true, "binary only"},
		{"user", func(c *Config) { c.Auth = binaryOnlyAuth{c.Auth} }, true, "binary only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{config: tc.config})
			h.login()
			if msg := h.expect(200, "TYPE A"); !strings.Contains(msg, tc.typeAReply) {
				t.Errorf("TYPE A: %q, want it to say %q", msg, tc.typeAReply)
			}
			h.stor("/up.txt", text)
			stored := h.file("alice/up.txt")
			h.put("alice/down.txt", text)
			got := h.retr("/down.txt")
			if tc.unchanged {
				if stored != text || got != text {
					t.Errorf("binary-only TYPE A changed the data: stored %q, downloaded %q, want %q both", stored, got, text)
				}
				return
			}
			if stored == text || got == text {
				t.Errorf("TYPE A converted nothing: stored %q, downloaded %q", stored, got)
			}
		})
	}
}

// abortUploadAfterWrite starts STOR path, sends more than the copy buffer
// of payload, and sends ABOR once storage saw the first write: 426 then
// 226. It returns the 426 text.
func abortUploadAfterWrite(t *testing.T, h *harness, path, payload string) string {
	t.Helper()
	writing := make(chan struct{})
	var once sync.Once
	h.fs.SetHook(func(op memstore.Op, _ string) error {
		if op == memstore.OpWrite {
			once.Do(func() { close(writing) })
		}
		return nil
	})
	defer h.fs.SetHook(nil)
	addr := h.epsv()
	h.expect(150, "STOR "+path)
	c := h.dial(addr)
	go io.WriteString(c, payload)
	<-writing
	h.send("ABOR")
	msg := h.expectReply(426)
	h.expectReply(226)
	c.Close()
	return msg
}

// TestKeepPartialUploads: with Config.KeepPartial an aborted upload of a
// new file keeps what arrived, with an upload.partial event, and REST +
// STOR completes it; an aborted upload that would replace a file leaves
// the file as it was; without the switch nothing of a new file stays.
func TestKeepPartialUploads(t *testing.T) {
	t.Parallel()
	payload := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB, more than one copy buffer
	t.Run("new file kept and resumed", func(t *testing.T) {
		t.Parallel()
		evs := &eventLog{}
		h := newHarness(t, harnessOpts{config: func(c *Config) { c.KeepPartial = true; c.Events = evs }})
		h.login()
		msg := abortUploadAfterWrite(t, h, "new.bin", payload)
		kept := h.file("alice/new.bin")
		if len(kept) == 0 || !strings.HasPrefix(payload, kept) || !strings.Contains(msg, fmt.Sprintf("the %d bytes received are kept", len(kept))) {
			t.Fatalf("426 %q; kept %d bytes (a prefix: %v)", msg, len(kept), strings.HasPrefix(payload, kept))
		}
		var partial int
		for _, e := range evs.evs {
			if e.Type == events.UploadPartial && e.Path == "/new.bin" && e.Size == int64(len(kept)) && e.SHA256 == "" {
				partial++
			}
			if e.Type == events.UploadCommitted {
				t.Errorf("a committed event for an aborted upload: %+v", e)
			}
		}
		if partial != 1 {
			t.Errorf("%d upload.partial events, want 1: %+v", partial, evs.evs)
		}
		h.expect(350, fmt.Sprintf("REST %d", len(kept)))
		rest := payload[len(kept):]
		if r := h.xfer("STOR new.bin", &rest); r.code != 226 {
			t.Fatalf("resumed STOR: %d %q", r.code, r.msg)
		}
		if got := h.file("alice/new.bin"); got != payload {
			t.Errorf("after the resume the file has %d bytes, want the whole %d", len(got), len(payload))
		}
	})
	t.Run("replacement keeps the old file", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{config: func(c *Config) { c.KeepPartial = true }})
		h.put("alice/f", "old")
		h.login()
		if msg := abortUploadAfterWrite(t, h, "f", payload); !strings.Contains(msg, "upload discarded") {
			t.Errorf("426 %q, want the upload discarded", msg)
		}
		if got := h.file("alice/f"); got != "old" {
			t.Errorf("the file is %q after an aborted replacement, want the old content", got)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{})
		h.login()
		abortUploadAfterWrite(t, h, "new.bin", payload)
		if h.exists("alice/new.bin") {
			t.Error("an aborted new upload left a file without keep_partial_uploads")
		}
	})
}
