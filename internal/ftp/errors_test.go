package ftp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// storageKinds is every kind of storage failure and the reply it must
// give. The codes are written out here rather than read from storageErrors
// so that this test checks the table instead of repeating it. Each error
// is wrapped with backend detail naming a server path, which must never
// reach the client.
var storageKinds = []struct {
	name string
	err  error
	code int
	text string
}{
	{"ErrNotExist", storage.ErrNotExist, 550, "No such file or directory."},
	{"ErrPermission", storage.ErrPermission, 550, "Permission denied."},
	{"ErrExist", storage.ErrExist, 550, "File exists."},
	{"ErrNotEmpty", storage.ErrNotEmpty, 550, "Directory not empty."},
	{"ErrIsDir", storage.ErrIsDir, 550, "Is a directory."},
	{"ErrNotDir", storage.ErrNotDir, 550, "Not a directory."},
	{"ErrInvalidName", storage.ErrInvalidName, 553, "File name not allowed."},
	{"ErrNoSpace", storage.ErrNoSpace, 452, "Insufficient storage space."},
	{"ErrQuota", storage.ErrQuota, 552, "Storage quota exceeded."},
	{"ErrUnsupported", storage.ErrUnsupported, 502, "Not supported by this server's storage."},
	{"Canceled", context.Canceled, 426, "Operation cancelled."},
	{"DeadlineExceeded", context.DeadlineExceeded, 451, "Storage did not answer in time."},
	{"unexpected", errors.New("disk on fire"), 451, "Local error in processing."},
}

// secret is in every injected error; replies must not carry it.
const secret = "/srv/secret/root"

func wrapped(err error) error { return fmt.Errorf("backend: %s: %w", secret, err) }

// TestStorageErrorReplies makes each command's storage operation fail
// with every kind of error and checks the reply against the one error
// table (errors.go): the code, the generic text, nothing of the error's
// own text.
func TestStorageErrorReplies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line   string
		before string // sent before line, each time (RNFR for RNTO)
		op     memstore.Op
		path   string // "" for any path
	}{
		{"CWD d", "", memstore.OpStat, "/d"},
		{"XCWD d", "", memstore.OpStat, "/d"},
		{"CDUP", "CWD d", memstore.OpStat, "/"},
		{"MKD n", "", memstore.OpMkdir, "/n"},
		{"RMD d", "", memstore.OpRemoveDir, "/d"},
		{"DELE f", "", memstore.OpRemove, "/f"},
		{"RNFR f", "", memstore.OpStat, "/f"},
		{"RNTO g", "RNFR f", memstore.OpRename, "/f"},
		{"SIZE f", "", memstore.OpStat, "/f"},
		{"MDTM f", "", memstore.OpStat, "/f"},
		{"MFMT 20200102030405 f", "", memstore.OpSetModTime, "/f"},
		{"SITE CHMOD 600 f", "", memstore.OpChmod, "/f"},
		{"MLST f", "", memstore.OpStat, "/f"},
		{"STAT f", "", memstore.OpStat, "/f"},
		{"LIST d", "", memstore.OpStat, "/d"},
		{"NLST d", "", memstore.OpStat, "/d"},
		{"MLSD d", "", memstore.OpStat, "/d"},
		{"RETR f", "", memstore.OpStat, "/f"},
		{"RETR f", "", memstore.OpOpen, "/f"},
		{"STOR f", "", memstore.OpCreate, "/f"},
		{"APPE f", "", memstore.OpCreate, "/f"},
		{"STOU", "", memstore.OpCreate, ""},
	} {
		t.Run(tc.line+" "+string(tc.op), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.put("alice/f", "old")
			h.put("alice/d/x", "")
			h.login()
			for _, k := range storageKinds {
				if tc.before != "" {
					h.cmd(tc.before)
				}
				h.fs.FailNext(tc.op, tc.path, wrapped(k.err))
				code, msg := h.cmd(tc.line)
				if code != k.code || msg != k.text {
					t.Errorf("%s with %s failing (%s): %d %q, want %d %q", tc.line, tc.op, k.name, code, msg, k.code, k.text)
				}
				if strings.Contains(msg, "secret") {
					t.Errorf("%s: the reply carries the storage error's text: %q", tc.line, msg)
				}
				h.fs.ClearFaults()
				if tc.line == "CDUP" {
					h.cmd("CWD /d") // a failed CDUP stays; make sure of it
				}
			}
			if got := h.file("alice/f"); got != "old" {
				t.Errorf("refused operations changed /f to %q", got)
			}
			if !strings.Contains(h.logs.String(), "disk on fire") {
				t.Error("the unexpected error is not in the log")
			}
		})
	}
}

// TestUploadCommitFails: when storage cannot publish a finished upload,
// the final reply says why (through the error table) and that the upload
// was discarded, and the old file stays.
func TestUploadCommitFails(t *testing.T) {
	t.Parallel()
	for _, verb := range []string{"STOR", "APPE"} {
		t.Run(verb, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.put("alice/f", "old")
			h.login()
			for _, k := range storageKinds {
				h.fs.FailNext(memstore.OpCommit, "/f", wrapped(k.err))
				r := h.xfer(verb+" f", ptr("new content"))
				want := k.text + " Upload discarded."
				if r.first != 150 || r.code != k.code || r.msg != want {
					t.Errorf("%s with Commit failing (%s): %d then %d %q, want 150 then %d %q", verb, k.name, r.first, r.code, r.msg, k.code, want)
				}
				if got := h.file("alice/f"); got != "old" {
					t.Fatalf("after a failed Commit (%s) /f is %q, want the old content", k.name, got)
				}
			}
		})
	}
}

// TestDataPhaseStorageErrors: storage failing in the middle of a
// transfer. The data connection is fine, so the reply must not be 426
// "connection closed" (RFC 959: the data connection failed); the same
// error the table gives a failed Commit is the consistent answer (451 for
// a local error, 452/552 for space). An upload that fails keeps the old
// file.
func TestDataPhaseStorageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		line   string
		upload *string
		op     memstore.Op
		path   string
		// correct lists the kinds checked on their own too.
		correct []string
		suffix  string
	}{
		{"upload Write", "STOR f", ptr("new"), memstore.OpWrite, "/f", []string{"ErrNoSpace", "ErrQuota", "Canceled"}, " Upload discarded."},
		{"download Read", "RETR f", nil, memstore.OpRead, "/f", []string{"Canceled"}, ""},
		{"listing Next", "MLSD d", nil, memstore.OpNext, "/d", []string{"Canceled"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.put("alice/f", "old")
			h.put("alice/d/x", "")
			h.login()
			var wrong []string
			for _, k := range storageKinds {
				h.fs.FailNext(tc.op, tc.path, wrapped(k.err))
				r := h.xfer(tc.line, tc.upload)
				if r.first != 150 {
					t.Fatalf("%s: %d %q, want 150", tc.line, r.first, r.msg)
				}
				if strings.Contains(r.msg, "secret") {
					t.Errorf("%s: the reply carries the storage error's text: %q", tc.line, r.msg)
				}
				if got := h.file("alice/f"); got != "old" {
					t.Fatalf("after a failed %s (%s) /f is %q", tc.line, k.name, got)
				}
				if contains(tc.correct, k.name) && r.code != k.code {
					t.Errorf("%s with %s failing (%s): %d %q, want %d", tc.line, tc.op, k.name, r.code, r.msg, k.code)
				}
				if r.code != k.code || r.msg != k.text+tc.suffix {
					wrong = append(wrong, fmt.Sprintf("%s: %d %q, want %d %q", k.name, r.code, r.msg, k.code, k.text+tc.suffix))
				}
			}
			if len(wrong) > 0 {
				t.Errorf("storage errors during %s are not answered with the error table's reply: %s", tc.line, strings.Join(wrong, "; "))
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}
