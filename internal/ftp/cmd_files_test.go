package ftp

import (
	"io/fs"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// tree is the files most cases start from.
var tree = map[string]string{
	"alice/f":       "hello",
	"alice/d/":      "",
	"alice/full/g":  "x",
	"alice/a/b/c":   "deep",
	"drop/":         "",
	"alice/we\"ird": "q",
}

func noCaps(c storage.Capabilities) *storage.Capabilities { return &c }

// wantGone and wantFile check the backend after a script.
func wantGone(paths ...string) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) {
		for _, p := range paths {
			if h.exists(p) {
				t.Errorf("%s still exists", p)
			}
		}
	}
}

func wantFile(path, data string) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) {
		if got := h.file(path); got != data {
			t.Errorf("%s = %q, want %q", path, got, data)
		}
	}
}

// TestNavigation covers PWD/XPWD, CWD/XCWD and CDUP/XCUP: 257 replies
// quote the path (doubling quotes), ".." never climbs above the home, and
// only directories can be entered.
func TestNavigation(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "PWD at home", files: tree, steps: []step{
			{"PWD", 257, `"/" is the current directory.`},
			{"XPWD", 257, `"/"`},
		}},
		{name: "CWD then PWD", files: tree, steps: []step{
			{"CWD a", 250, `Directory changed to "/a".`},
			{"PWD", 257, `"/a"`},
			{"XCWD b", 250, `"/a/b"`},
			{"CDUP", 250, `"/a"`},
			{"PWD", 257, `"/a"`},
			{"XCUP", 250, `"/"`},
			{"CDUP", 250, `"/"`}, // the home is the top
			{"CWD /a/b", 250, `"/a/b"`},
			{"CWD ../../../..", 250, `"/"`},
			{"CWD a/./b/", 250, `"/a/b"`},
		}},
		{name: "PWD doubles quotes", files: tree, steps: []step{
			{`MKD q"d`, 257, `"/q""d" created.`},
			{`CWD q"d`, 250, ""},
			{"PWD", 257, `"/q""d" is the current directory.`},
		}},
		{name: "CWD refusals", files: tree, steps: []step{
			{"CWD missing", 550, "No such file or directory."},
			{"CWD f", 550, "Not a directory."},
			{"CWD f/x", 550, "Not a directory."},
			{"CWD a\x00b", 553, "File name not allowed."},
			{"PWD", 257, `"/"`},
		}},
		// perms.go lists "CWD into dirs" under the list permission, but
		// CWD checks none: a dropbox user must reach the directory it
		// uploads into. This is the current behaviour.
		{name: "CWD without the list permission", user: "drop", files: map[string]string{"drop/in/": ""}, steps: []step{
			{"CWD in", 250, `"/in"`},
		}},
		{name: "CDUP takes no argument", files: tree, steps: []step{
			{"CWD a", 250, ""},
			{"CDUP x", 501, ""},
			{"PWD", 257, `"/a"`},
		}},
	})
}

// TestMKD covers MKD/XMKD: 257 with the quoted new path, and the refusals.
func TestMKD(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "create", files: tree, steps: []step{
			{"MKD n", 257, `"/n" created.`},
			{"XMKD n/m", 257, `"/n/m" created.`},
			{"CWD n", 250, ""},
			{"MKD o", 257, `"/n/o" created.`},
		}, check: func(t *testing.T, h *harness) {
			if !h.stat("alice/n/m").IsDir() {
				t.Error("/n/m is not a directory")
			}
		}},
		{name: "refusals", files: tree, steps: []step{
			{"MKD d", 550, "File exists."},
			{"MKD f", 550, "File exists."},
			{"MKD x/y", 550, "No such file or directory."},
			{"MKD a\x00", 553, ""},
		}},
		{name: "without the mkdir permission", user: "limited", files: tree, steps: []step{
			{"MKD n", 550, "Permission denied: you may not create directories."},
		}, check: wantGone("alice/n")},
	})
}

// TestRMD covers RMD/XRMD.
func TestRMD(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "remove", files: tree, steps: []step{
			{"RMD d", 250, "Directory removed."},
			{"XRMD /a/b/../b", 550, "Directory not empty."},
		}, check: wantGone("alice/d")},
		{name: "the working directory moves up", files: tree, steps: []step{
			{"CWD d", 250, ""},
			{"XRMD /d", 250, ""},
			{"PWD", 257, `"/"`},
		}},
		{name: "refusals", files: tree, steps: []step{
			{"RMD full", 550, "Directory not empty."},
			{"RMD f", 550, "Not a directory."},
			{"RMD missing", 550, "No such file or directory."},
			{"RMD /", 550, "Cannot remove the home directory."},
			{"XRMD ..", 550, "Cannot remove the home directory."},
		}},
		{name: "without the delete permission", user: "limited", files: tree, steps: []step{
			{"RMD d", 550, "Permission denied: you may not remove directories."},
		}, check: func(t *testing.T, h *harness) {
			if !h.exists("alice/d") {
				t.Error("refused RMD removed the directory")
			}
		}},
	})
}

// TestDELE covers DELE.
func TestDELE(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "delete", files: tree, steps: []step{
			{"DELE f", 250, "File deleted."},
			{"DELE /a/b/c", 250, ""},
			{"DELE f", 550, "No such file or directory."},
		}, check: wantGone("alice/f", "alice/a/b/c")},
		{name: "refusals", files: tree, steps: []step{
			{"DELE d", 550, "Is a directory."},
			{"DELE missing/f", 550, "No such file or directory."},
			{"DELE f\x00", 553, ""},
		}},
		{name: "without the delete permission", user: "limited", files: tree, steps: []step{
			{"DELE f", 550, "Permission denied: you may not delete files."},
		}, check: wantFile("alice/f", "hello")},
	})
}

// TestRename covers RNFR and RNTO: 350 then 250, RNTO only immediately
// after RNFR (503 otherwise, RFC 959), and the refusals of each.
func TestRename(t *testing.T) {
	t.Parallel()
	allButRenameDir := storage.Capabilities{Append: true, WriteOffset: true, SetModTime: true, Chmod: true}
	runScripts(t, []scriptCase{
		{name: "file", files: tree, steps: []step{
			{"RNFR f", 350, "Ready for RNTO."},
			{"RNTO d/g", 250, "Rename successful."},
		}, check: func(t *testing.T, h *harness) {
			wantGone("alice/f")(t, h)
			wantFile("alice/d/g", "hello")(t, h)
		}},
		{name: "over a file", files: tree, steps: []step{
			{"RNFR f", 350, ""},
			{"RNTO full/g", 250, ""},
		}, check: wantFile("alice/full/g", "hello")},
		{name: "directory", files: tree, steps: []step{
			{"RNFR a", 350, ""},
			{"RNTO d/a2", 250, ""},
			{"CWD /d/a2/b", 250, ""},
		}, check: wantFile("alice/d/a2/b/c", "deep")},
		{name: "directory without RenameDir", opts: harnessOpts{caps: &allButRenameDir}, files: tree, steps: []step{
			{"RNFR a", 550, "not supported by this server's storage"},
			{"RNTO z", 503, ""},
			{"RNFR f", 350, ""}, // files still can
			{"RNTO z", 250, ""},
		}},
		{name: "RNTO without RNFR", files: tree, steps: []step{
			{"RNTO g", 503, "Send RNFR first."},
		}},
		{name: "a command in between cancels", files: tree, steps: []step{
			{"RNFR f", 350, ""},
			{"NOOP", 200, ""},
			{"RNTO g", 503, ""},
		}, check: wantFile("alice/f", "hello")},
		{name: "RNTO is used up", files: tree, steps: []step{
			{"RNFR f", 350, ""},
			{"RNTO g", 250, ""},
			{"RNTO h", 503, ""},
		}},
		{name: "RNFR refusals", files: tree, steps: []step{
			{"RNFR missing", 550, "No such file or directory."},
			{"RNTO g", 503, ""},
			{"RNFR /", 550, "Cannot rename the home directory."},
			{"RNFR x\x00", 553, ""},
		}},
		{name: "RNTO refusals", files: tree, steps: []step{
			{"RNFR a", 350, ""},
			{"RNTO a/b/x", 553, "Cannot move a directory into itself."},
			{"RNFR f", 350, ""},
			{"RNTO /", 553, ""},
			{"RNFR f", 350, ""},
			{"RNTO d", 550, "File exists."},
			{"RNFR f", 350, ""},
			{"RNTO nodir/g", 550, "No such file or directory."},
			{"RNFR f", 350, ""},
			{"RNTO g\x00", 553, ""},
		}, check: wantFile("alice/f", "hello")},
		{name: "without the rename permission", user: "limited", files: tree, steps: []step{
			{"RNFR f", 550, "Permission denied: you may not rename."},
			{"RNTO g", 503, ""},
		}},
		{name: "without the overwrite permission", user: "mover", files: tree, steps: []step{
			{"RNFR f", 350, ""},
			{"RNTO full/g", 550, "you may not overwrite files"},
			{"RNFR f", 350, ""},
			{"RNTO new", 250, ""}, // a new name is fine
		}, check: wantFile("alice/full/g", "x")},
	})
}

// TestRenameCancelledByRefusedCommand: RNTO must immediately follow RNFR
// (RFC 959 4.1.3, "the immediately preceding RNFR"). A command refused
// for its syntax or an unknown verb is still a command in between.
func TestRenameCancelledByRefusedCommand(t *testing.T) {
	t.Parallel()
	for _, between := range []string{"MKD", "XYZZY", "CDUP x"} {
		t.Run(between, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.put("alice/f", "x")
			h.login()
			h.expect(350, "RNFR f")
			h.cmd(between)
			code, msg := h.cmd("RNTO g")
			if code != 503 {
				t.Errorf("RNFR f, %s, RNTO g: %d %q, want 503", between, code, msg)
			}
		})
	}
}

// TestSIZE covers SIZE: the byte size of a file, refused for directories
// and for users who may neither list nor download.
func TestSIZE(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "file", files: tree, steps: []step{
			{"SIZE f", 213, "5"},
			{"SIZE /a/b/c", 213, "4"},
			{"TYPE A", 200, ""},
			{"SIZE f", 213, "5"},
		}},
		{name: "download-only user", user: "reader", files: tree, steps: []step{
			{"SIZE f", 213, "5"},
		}},
		{name: "refusals", files: tree, steps: []step{
			{"SIZE d", 550, "Not a regular file."},
			{"SIZE missing", 550, "No such file or directory."},
			{"SIZE f\x00", 553, ""},
		}},
		{name: "user who can neither list nor download", user: "drop", files: tree, steps: []step{
			{"SIZE f", 550, "Permission denied."},
		}},
	})
}

var when = time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)

func setWhen(paths ...string) func(*harness) {
	return func(h *harness) {
		for _, p := range paths {
			if err := h.fs.Chtimes(p, when); err != nil {
				h.t.Fatal(err)
			}
		}
	}
}

func wantModTime(path string, t0 time.Time) func(*testing.T, *harness) {
	return func(t *testing.T, h *harness) {
		if got := h.stat(path).ModTime; !got.Equal(t0) {
			t.Errorf("%s modified %v, want %v", path, got, t0)
		}
	}
}

// TestMDTM covers MDTM (RFC 3659): the UTC time-val of a file, and the
// setter form "MDTM time path" that older clients use for MFMT.
func TestMDTM(t *testing.T) {
	t.Parallel()
	set := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	withDigits := map[string]string{"alice/2020 report.txt": "r"}
	runScripts(t, []scriptCase{
		{name: "get", files: tree, setup: setWhen("alice/f"), steps: []step{
			{"MDTM f", 213, "20210203040506"},
		}},
		{name: "set", files: tree, steps: []step{
			{"MDTM 20200102030405 f", 213, "Modify=20200102030405; /f"},
			{"MDTM f", 213, "20200102030405"},
		}, check: wantModTime("alice/f", set)},
		// A name that starts with digits and a space is a name, not a
		// time-val.
		{name: "name starting with digits", files: withDigits, setup: setWhen("alice/2020 report.txt"), steps: []step{
			{"MDTM 2020 report.txt", 213, "20210203040506"},
		}},
		{name: "refusals", files: tree, steps: []step{
			{"MDTM d", 550, "Not a regular file."},
			{"MDTM missing", 550, "No such file or directory."},
		}},
		{name: "user who can neither list nor download", user: "drop", files: tree, steps: []step{
			{"MDTM f", 550, "Permission denied."},
		}},
		{name: "set without the chmod permission", user: "limited", files: tree, setup: setWhen("alice/f"), steps: []step{
			{"MDTM 20200102030405 f", 550, "you may not change file times"},
		}, check: wantModTime("alice/f", when)},
	})
}

// TestMFMT covers MFMT (draft-somers-ftp-mfxx): 213 "Modify=...; path".
func TestMFMT(t *testing.T) {
	t.Parallel()
	set := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	runScripts(t, []scriptCase{
		{name: "set", files: tree, steps: []step{
			{"MFMT 20200102030405 f", 213, "Modify=20200102030405; /f"},
		}, check: wantModTime("alice/f", set)},
		{name: "with a fraction", files: tree, steps: []step{
			{"MFMT 20200102030405.5 d", 213, "Modify=20200102030405; /d"},
		}, check: wantModTime("alice/d", set.Add(500*time.Millisecond))},
		{name: "syntax", files: tree, steps: []step{
			{"MFMT 20200102030405", 501, "Usage"},
			{"MFMT 2020010203040 f", 501, "Bad time value"},
			{"MFMT 2020010203040x f", 501, "Bad time value"},
			{"MFMT 20201302030405 f", 501, "Bad time value"}, // month 13
			{"MFMT 20200102030405. f", 501, "Bad time value"},
		}},
		{name: "refusals", files: tree, setup: setWhen("alice/f"), steps: []step{
			{"MFMT 20200102030405 missing", 550, "No such file or directory."},
			{"MFMT 20200102030405 f\x00", 553, ""},
		}, check: wantModTime("alice/f", when)},
		{name: "without the chmod permission", user: "limited", files: tree, setup: setWhen("alice/f"), steps: []step{
			{"MFMT 20200102030405 f", 550, "you may not change file times"},
		}, check: wantModTime("alice/f", when)},
		{name: "storage cannot set times", opts: harnessOpts{caps: noCaps(storage.Capabilities{})}, files: tree, steps: []step{
			{"MFMT 20200102030405 f", 502, "cannot set modification times"},
		}},
	})
}

// TestSITE covers SITE HELP and SITE CHMOD.
func TestSITE(t *testing.T) {
	t.Parallel()
	wantMode := func(path string, mode fs.FileMode) func(*testing.T, *harness) {
		return func(t *testing.T, h *harness) {
			if got := h.stat(path).Mode.Perm(); got != mode {
				t.Errorf("%s mode %v, want %v", path, got, mode)
			}
		}
	}
	runScripts(t, []scriptCase{
		{name: "HELP", files: tree, steps: []step{
			{"SITE HELP", 214, "CHMOD <octal mode> <path>"},
			{"site help", 214, "End of SITE help."},
		}},
		{name: "CHMOD", files: tree, steps: []step{
			{"SITE CHMOD 600 f", 200, "SITE CHMOD command ok."},
			{"SITE chmod 0750 d", 200, ""},
		}, check: func(t *testing.T, h *harness) {
			wantMode("alice/f", 0o600)(t, h)
			wantMode("alice/d", 0o750)(t, h)
		}},
		{name: "CHMOD syntax", files: tree, steps: []step{
			{"SITE CHMOD 600", 501, "Usage"},
			{"SITE CHMOD", 501, "Usage"},
			{"SITE CHMOD 800 f", 501, "Mode must be octal"},
			{"SITE CHMOD 1777 f", 501, "Mode must be octal"},
			{"SITE CHMOD rw f", 501, "Mode must be octal"},
		}, check: wantMode("alice/f", 0o644)},
		{name: "CHMOD refusals", files: tree, steps: []step{
			{"SITE CHMOD 600 missing", 550, "No such file or directory."},
			{"SITE CHMOD 000 /", 550, "Permission denied."}, // would lock the user out
			{"SITE CHMOD 600 f\x00", 553, ""},
		}},
		{name: "CHMOD without the chmod permission", user: "limited", files: tree, steps: []step{
			{"SITE CHMOD 600 f", 550, "you may not change permissions"},
		}, check: wantMode("alice/f", 0o644)},
		{name: "CHMOD on storage without permissions", opts: harnessOpts{caps: noCaps(storage.Capabilities{})}, files: tree, steps: []step{
			{"SITE CHMOD 600 f", 502, "no Unix permissions"},
		}},
		{name: "unknown", files: tree, steps: []step{
			{"SITE EXEC ls", 500, "Unknown SITE command; try SITE HELP."},
		}},
	})
}
