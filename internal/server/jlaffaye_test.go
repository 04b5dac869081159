package server_test

// Integration tests with github.com/jlaffaye/ftp, a Go FTP client written
// elsewhere: what it parses out of our replies and listings must match the
// stored files, on every storage backend.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// dialJlaffaye logs in to ts with jlaffaye/ftp. Every connection it makes,
// control and data, has a deadline, so a server that hangs fails the test
// instead of stalling it. The conversation is copied to the returned
// buffer.
func dialJlaffaye(t *testing.T, ts *testServer, user, pass string, opts ...ftp.DialOption) (*ftp.ServerConn, *clienttest.LogBuffer) {
	t.Helper()
	conv := &clienttest.LogBuffer{}
	dial := func(network, addr string) (net.Conn, error) {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(toolTimeout))
		}
		return c, err
	}
	opts = append([]ftp.DialOption{ftp.DialWithDialFunc(dial), ftp.DialWithDebugOutput(conv)}, opts...)
	c, err := ftp.Dial(ts.Addr, opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Quit() })
	if err := c.Login(user, pass); err != nil {
		t.Fatalf("login %s: %v\n%s", user, err, conv)
	}
	return c, conv
}

// retr downloads a whole file with RETR (REST offset first if > 0).
func retr(t *testing.T, c *ftp.ServerConn, name string, offset uint64) []byte {
	t.Helper()
	r, err := c.RetrFrom(name, offset)
	if err != nil {
		t.Fatalf("RETR %s: %v", name, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("RETR %s: read: %v", name, err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("RETR %s: final reply: %v", name, err)
	}
	return b
}

// check fails the test at once on an error from the client.
func check(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestJlaffaye(t *testing.T) {
	forBackends(t, allBackends, testJlaffaye)
}

func testJlaffaye(t *testing.T, b backend) {
	for _, m := range []struct {
		name string
		opts []ftp.DialOption
		verb string // the passive command the client must use
	}{
		{"epsv", nil, "EPSV"},
		{"pasv", []ftp.DialOption{ftp.DialWithDisabledEPSV(true)}, "PASV"},
	} {
		t.Run(m.name, func(t *testing.T) {
			ts := startServerOn(t, b, nil)
			c, conv := dialJlaffaye(t, ts, "alice", "alice-secret", m.opts...)
			testJlaffayeSession(t, ts, c)
			// Commands sent start a line; FEAT lines start with a space.
			if !strings.Contains(conv.String(), "\n"+m.verb+"\r\n") {
				t.Errorf("the client never sent %s", m.verb)
			}
			if m.verb == "PASV" && strings.Contains(conv.String(), "\nEPSV\r\n") {
				t.Errorf("EPSV sent although disabled")
			}
		})
	}
}

// testJlaffayeSession runs every operation jlaffaye/ftp offers against a
// logged-in alice and checks the stored result. On S3, MFMT must be
// refused with 502.
func testJlaffayeSession(t *testing.T, ts *testServer, c *ftp.ServerConn) {
	dir, err := c.CurrentDir()
	if err != nil || dir != "/" {
		t.Fatalf("CurrentDir: %q, %v", dir, err)
	}
	check(t, "MakeDir", c.MakeDir("work"))
	check(t, "ChangeDir", c.ChangeDir("work"))
	if dir, err := c.CurrentDir(); err != nil || dir != "/work" {
		t.Fatalf("CurrentDir after CWD: %q, %v", dir, err)
	}

	// Binary round trip.
	payload := randomBytes(5<<20 + 123)
	check(t, "Stor", c.Stor("big.bin", bytes.NewReader(payload)))
	if !bytes.Equal(ts.read("alice/work/big.bin"), payload) {
		t.Fatal("Stor: stored file differs")
	}
	if got := retr(t, c, "big.bin", 0); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("Retr: %d bytes, sha256 differs", len(got))
	}
	const off = 1<<20 + 7
	if got := retr(t, c, "big.bin", off); !bytes.Equal(got, payload[off:]) {
		t.Fatalf("RetrFrom(%d): %d bytes, want %d", off, len(got), len(payload)-off)
	}
	if n, err := c.FileSize("big.bin"); err != nil || n != int64(len(payload)) {
		t.Errorf("FileSize: %d, %v", n, err)
	}

	// Resumed upload, then APPE.
	half := len(payload) / 3
	check(t, "Stor first part", c.Stor("part.bin", bytes.NewReader(payload[:half])))
	// On S3 the resume writes a new object: the first part copied inside
	// S3 (at least 5 MiB) or read (below), then the new bytes.
	check(t, "StorFrom", c.StorFrom("part.bin", bytes.NewReader(payload[half:]), uint64(half)))
	check(t, "Append", c.Append("log.txt", strings.NewReader("one\n")))
	check(t, "Append", c.Append("log.txt", strings.NewReader("two\n")))
	if !bytes.Equal(ts.read("alice/work/part.bin"), payload) {
		t.Fatal("StorFrom: resumed file differs")
	}
	if got := string(ts.read("alice/work/log.txt")); got != "one\ntwo\n" {
		t.Fatalf("Append: %q", got)
	}

	// Times: MFMT, MDTM and the stored time agree. S3 sets an object's
	// time when it is written, and MDTM reports it.
	when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if ts.backend.isS3() {
		unsupportedOnS3(t, "SetTime", c.SetTime("big.bin", when), 502, "modification times")
		when = ts.bucket().headTime(t, "alice/work/big.bin").Truncate(time.Second)
	} else {
		check(t, "SetTime", c.SetTime("big.bin", when))
		if got := ts.store.listTime(t, "alice/work/big.bin"); !got.Equal(when) {
			t.Errorf("mtime on disk after SetTime: %v, want %v", got, when)
		}
	}
	if got, err := c.GetTime("big.bin"); err != nil || !got.Equal(when) {
		t.Errorf("GetTime: %v, %v; want %v", got, err, when)
	}

	// MLSD listing: names, sizes, types and exact times.
	check(t, "MakeDir sub", c.MakeDir("sub"))
	entries, err := c.List("")
	check(t, "List", err)
	got := map[string]*ftp.Entry{}
	for _, e := range entries {
		got[e.Name] = e
	}
	for name, want := range map[string]struct {
		typ  ftp.EntryType
		size uint64
	}{
		"big.bin":  {ftp.EntryTypeFile, uint64(len(payload))},
		"part.bin": {ftp.EntryTypeFile, uint64(len(payload))},
		"log.txt":  {ftp.EntryTypeFile, 8},
		"sub":      {ftp.EntryTypeFolder, 0},
	} {
		e := got[name]
		if e == nil {
			t.Errorf("List lacks %s", name)
			continue
		}
		if e.Type != want.typ || (want.typ == ftp.EntryTypeFile && e.Size != want.size) {
			t.Errorf("List %s: type %v size %d, want %v %d", name, e.Type, e.Size, want.typ, want.size)
		}
		if stored := ts.store.listTime(t, "alice/work/"+name).Truncate(time.Second); !e.Time.Equal(stored) {
			t.Errorf("List %s: time %v, stored %v", name, e.Time, stored)
		}
	}
	if len(entries) != 4 {
		t.Errorf("List: %d entries, want 4", len(entries))
	}
	names, err := c.NameList("")
	check(t, "NameList", err)
	sort.Strings(names)
	if strings.Join(names, ",") != "big.bin,log.txt,part.bin,sub" {
		t.Errorf("NameList: %q", names)
	}

	// TYPE A: CRLF on the wire, LF stored.
	check(t, "Type A", c.Type(ftp.TransferTypeASCII))
	check(t, "Stor text", c.Stor("text.txt", strings.NewReader("alpha\r\nbeta\r\n\r\ngamma")))
	if got := string(ts.read("alice/work/text.txt")); got != "alpha\nbeta\n\ngamma" {
		t.Errorf("ASCII upload stored %q", got)
	}
	if got := string(retr(t, c, "text.txt", 0)); got != "alpha\r\nbeta\r\n\r\ngamma" {
		t.Errorf("ASCII download %q", got)
	}
	check(t, "Type I", c.Type(ftp.TransferTypeBinary))
	if got := string(retr(t, c, "text.txt", 0)); got != "alpha\nbeta\n\ngamma" {
		t.Errorf("binary download of the text file %q", got)
	}

	// Rename, Delete, RemoveDir, RemoveDirRecur.
	check(t, "Rename", c.Rename("log.txt", "sub/log2.txt"))
	ts.notExist("alice/work/log.txt")
	if got := string(ts.read("alice/work/sub/log2.txt")); got != "one\ntwo\n" {
		t.Errorf("renamed file holds %q", got)
	}
	check(t, "Delete", c.Delete("part.bin"))
	ts.notExist("alice/work/part.bin")
	check(t, "MakeDir empty", c.MakeDir("empty"))
	check(t, "RemoveDir", c.RemoveDir("empty"))
	ts.notExist("alice/work/empty")
	check(t, "MakeDir sub/deeper", c.MakeDir("sub/deeper"))
	check(t, "Stor deep", c.Stor("sub/deeper/f", strings.NewReader("f")))
	check(t, "RemoveDirRecur", c.RemoveDirRecur("/work/sub"))
	ts.notExist("alice/work/sub")
	if dir, err := c.CurrentDir(); err != nil || dir != "/work" {
		t.Errorf("CurrentDir after RemoveDirRecur: %q, %v", dir, err)
	}

	// Errors come back as *textproto.Error with the reply code.
	var te *textproto.Error
	if err := c.Delete("nope"); !errors.As(err, &te) || te.Code != 550 {
		t.Errorf("Delete of a missing file: %v, want a 550 textproto.Error", err)
	}
	if _, err := c.Retr("nope"); !errors.As(err, &te) || te.Code != 550 {
		t.Errorf("Retr of a missing file: %v, want a 550 textproto.Error", err)
	}
	check(t, "NoOp", c.NoOp()) // the session survived the errors
}

// TestJlaffayeDropbox checks that a drop-box user's refusals reach the
// client as 550 errors and that what it may do still works.
func TestJlaffayeDropbox(t *testing.T) {
	forBackends(t, allBackends, testJlaffayeDropbox)
}

func testJlaffayeDropbox(t *testing.T, b backend) {
	ts := startServerOn(t, b, nil)
	c, _ := dialJlaffaye(t, ts, "drop", "drop-secret")
	check(t, "Stor", c.Stor("report.csv", strings.NewReader("1,2,3")))
	if got := string(ts.read("dropbox/report.csv")); got != "1,2,3" {
		t.Fatalf("drop-box upload: %q", got)
	}
	for name, op := range map[string]func() error{
		"List":     func() error { _, err := c.List(""); return err },
		"NameList": func() error { _, err := c.NameList(""); return err },
		"Retr":     func() error { _, err := c.Retr("report.csv"); return err },
		"Stor over": func() error {
			return c.Stor("report.csv", strings.NewReader("evil"))
		},
		"Delete": func() error { return c.Delete("report.csv") },
	} {
		var te *textproto.Error
		if err := op(); !errors.As(err, &te) || te.Code != 550 {
			t.Errorf("drop box %s: %v, want a 550 textproto.Error", name, err)
		}
	}
	check(t, "NoOp", c.NoOp())
	if got := string(ts.read("dropbox/report.csv")); got != "1,2,3" {
		t.Errorf("drop-box file changed: %q", got)
	}
}

// TestJlaffayeLIST makes the client parse our "ls -l" LIST format instead
// of MLSD: names (with spaces and non-ASCII), sizes, directory flags and
// dates must come out right.
func TestJlaffayeLIST(t *testing.T) {
	forBackends(t, allBackends, testJlaffayeLIST)
}

func testJlaffayeLIST(t *testing.T, b backend) {
	ts := startServerOn(t, b, nil)
	c, conv := dialJlaffaye(t, ts, "alice", "alice-secret", ftp.DialWithDisabledMLSD(true))

	payload := randomBytes(5<<20 + 1)
	check(t, "Stor", c.Stor("big.bin", bytes.NewReader(payload)))
	if got := retr(t, c, "big.bin", 0); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("Retr: %d bytes, sha256 differs", len(got))
	}
	ts.write("alice/with space.txt", []byte("spaced"))
	ts.write("alice/ünï ☃.txt", []byte("u"))
	ts.write("alice/dir/inner", nil)
	ts.write("alice/empty", nil)
	// A file older than six months is listed with its year instead of
	// its time. S3 objects cannot be given an old time.
	oldTime := time.Time{}
	if !b.isS3() {
		old := time.Date(2019, 7, 8, 9, 10, 11, 0, time.UTC)
		os.Chtimes(filepath.Join(ts.Root, "alice/with space.txt"), old, old)
		oldTime = time.Date(2019, 7, 8, 0, 0, 0, 0, time.UTC)
	}

	entries, err := c.List("")
	check(t, "List", err)
	if strings.Contains(conv.String(), "\nMLSD") || !strings.Contains(conv.String(), "\nLIST\r\n") {
		t.Errorf("the client did not list with LIST:\n%s", conv)
	}
	got := map[string]*ftp.Entry{}
	for _, e := range entries {
		got[e.Name] = e
	}
	now := time.Now().UTC()
	for name, want := range map[string]struct {
		typ  ftp.EntryType
		size uint64
		time time.Time // zero: recent, within the minute of the stored time
	}{
		"big.bin":        {ftp.EntryTypeFile, uint64(len(payload)), time.Time{}},
		"with space.txt": {ftp.EntryTypeFile, 6, oldTime},
		"ünï ☃.txt":      {ftp.EntryTypeFile, 1, time.Time{}},
		"empty":          {ftp.EntryTypeFile, 0, time.Time{}},
		"dir":            {ftp.EntryTypeFolder, 0, time.Time{}},
	} {
		e := got[name]
		if e == nil {
			t.Errorf("LIST parse lacks %q (got %v)", name, keys(got))
			continue
		}
		if e.Type != want.typ || (want.typ == ftp.EntryTypeFile && e.Size != want.size) {
			t.Errorf("LIST %q: type %v size %d, want %v %d", name, e.Type, e.Size, want.typ, want.size)
		}
		wt := want.time
		if wt.IsZero() {
			wt = ts.store.listTime(t, "alice/"+name).Truncate(time.Minute)
		}
		if wt.IsZero() {
			// Stored without a time (an S3 directory): LIST shows the
			// time of the listing.
			wt = now.Truncate(time.Minute)
			if e.Time.Before(wt.Add(-time.Minute)) || e.Time.After(wt) {
				t.Errorf("LIST %q without a stored time: %v, want the listing's minute %v", name, e.Time, wt)
			}
			continue
		}
		if !e.Time.Equal(wt) {
			t.Errorf("LIST %q: time %v, want %v (now %v)", name, e.Time, wt, now)
		}
	}
	if len(entries) != 5 {
		t.Errorf("LIST: %d entries, want 5: %v", len(entries), keys(got))
	}
}

func keys(m map[string]*ftp.Entry) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
