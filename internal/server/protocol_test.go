package server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

func TestReplyCodes(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("alice/file.txt", []byte("hello\n"))
	ts.write("alice/dir/inner.txt", []byte("x"))

	// Before login.
	rc := dialRaw(t, ts.Addr)
	for _, tc := range []struct {
		cmd  string
		code int
	}{
		{"SYST", 215},
		{"NOOP", 200},
		{"FEAT", 211},
		{"HELP", 214},
		{"HELP RETR", 214},
		{"STAT", 211},
		{"PWD", 530},
		{"LIST", 530},
		{"RETR file.txt", 530},
		{"PASV", 530},
		{"PASS x", 503}, // PASS without USER
		{"BOGUS", 500},
		{"", 500},
		{"TYPE I", 200},
		{"OPTS UTF8 ON", 200},
	} {
		if code, msg := rc.cmd("%s", tc.cmd); code != tc.code {
			t.Errorf("%q before login: got %d %q, want %d", tc.cmd, code, msg, tc.code)
		}
	}
	rc.login("alice", "alice-secret")
	for _, tc := range []struct {
		cmd  string
		code int
		text string // substring of the reply, if set
	}{
		{"PWD", 257, `"/"`},
		{"XPWD", 257, `"/"`},
		{"CWD dir", 250, ""},
		{"PWD", 257, `"/dir"`},
		{"CDUP", 250, ""},
		{"XCWD /dir", 250, ""},
		{"XCUP", 250, ""},
		{"CWD nope", 550, ""},
		{"CWD file.txt", 550, ""},
		{"CWD", 501, ""},
		{"CWD ../../../../etc", 550, ""},
		{"PWD", 257, `"/"`},
		{"MKD new", 257, `"/new"`},
		{`MKD say "hi"`, 257, `"/say ""hi"""`},
		{"XMKD x2", 257, `"/x2"`},
		{"MKD new", 550, ""},
		{"RMD new", 250, ""},
		{"XRMD x2", 250, ""},
		{"RMD dir", 550, "not empty"},
		{"RMD nope", 550, ""},
		{"DELE nope", 550, ""},
		{"DELE dir", 550, ""},
		{"SIZE file.txt", 213, "6"},
		{"SIZE dir", 550, ""},
		{"SIZE nope", 550, ""},
		{"MDTM file.txt", 213, ""},
		{"MFMT 20200102030405 file.txt", 213, "Modify=20200102030405"},
		{"MDTM file.txt", 213, "20200102030405"},
		{"MFMT 2020 file.txt", 501, ""},
		{"RNTO x", 503, ""},
		{"RNFR nope", 550, ""},
		{"RNFR file.txt", 350, ""},
		{"RNTO renamed.txt", 250, ""},
		{"RNFR renamed.txt", 350, ""},
		{"NOOP", 200, ""},
		{"RNTO file.txt", 503, ""}, // RNTO must follow RNFR at once
		{"RNFR renamed.txt", 350, ""},
		{"RNTO file.txt", 250, ""},
		{"TYPE A", 200, ""},
		{"TYPE A N", 200, ""},
		{"TYPE L 8", 200, ""},
		{"TYPE E", 504, ""},
		{"TYPE X", 501, ""},
		{"TYPE I", 200, ""},
		{"MODE S", 200, ""},
		{"MODE B", 504, ""},
		{"STRU F", 200, ""},
		{"STRU R", 504, ""},
		{"ALLO 1000", 202, ""},
		{"REST abc", 501, ""},
		{"REST -1", 501, ""},
		{"REST 0", 350, ""},
		{"PORT 1,2,3", 501, ""},
		{"PORT 10,0,0,1,200,10", 501, "own address"}, // bounce to another host
		{"PORT 127,0,0,1,0,21", 501, ""},             // privileged port
		{"EPRT |3|x|1|", 522, ""},
		{"EPRT |1|10.1.1.1|4000|", 501, ""},
		{"EPRT garbage", 501, ""},
		{"EPSV 3", 501, ""},
		{"SITE HELP", 214, ""},
		{"SITE CHMOD 600 file.txt", 200, ""},
		{"SITE CHMOD 999 file.txt", 501, ""},
		{"SITE BOGUS", 500, ""},
		{"OPTS MLST type;size;", 200, "type;size;"},
		{"MLST file.txt", 250, "type=file;size=6;"},
		{"OPTS MLST type;size;modify;perm;unique;", 200, ""},
		{"STAT file.txt", 213, "file.txt"},
		{"STAT", 211, "alice"},
		{"USER bob", 530, ""},
		{"ABOR", 225, ""},
		{"RETR", 501, ""},
		{"RETR nope", 550, ""},
		{"RETR dir", 550, ""},
		{"STOR dir", 550, ""},
		{"RETR file.txt", 425, "PASV"}, // no data connection set up
		{"ACCT x", 202, ""},
	} {
		code, msg := rc.cmd("%s", tc.cmd)
		if code != tc.code || !strings.Contains(msg, tc.text) {
			t.Errorf("%q: got %d %q, want %d containing %q", tc.cmd, code, msg, tc.code, tc.text)
		}
	}
	fi, err := os.Stat(filepath.Join(ts.Root, "alice/file.txt"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("SITE CHMOD did not set 0600: %v %v", fi.Mode(), err)
	}
	if got := fi.ModTime().UTC().Format("20060102150405"); got != "20200102030405" {
		t.Errorf("MFMT: mtime %s", got)
	}
	rc.must(221, "QUIT")
}

func TestLoginFailures(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts.Addr)
	rc.must(331, "USER alice")
	rc.must(530, "PASS wrong")
	rc.must(331, "USER nobody")
	rc.must(530, "PASS whatever")
	rc.must(331, "USER alice")
	rc.must(421, "PASS wrong-again") // third failure closes the session
	if _, err := rc.tp.ReadLine(); err == nil {
		t.Error("connection still open after too many failures")
	}
	if !strings.Contains(ts.logs.String(), "login failed") {
		t.Error("failed logins were not logged")
	}
	if strings.Contains(ts.logs.String(), "wrong-again") {
		t.Error("password in the log")
	}
}

func TestAnonymous(t *testing.T) {
	off := startServer(t, nil)
	rc := dialRaw(t, off.Addr)
	rc.must(331, "USER anonymous")
	rc.must(530, "PASS guest@example.com")

	on := startServer(t, func(c *config.Config) { c.Auth.Anonymous = true })
	on.write("pub/readme.txt", []byte("public"))
	rc = dialRaw(t, on.Addr)
	rc.login("anonymous", "guest@example.com")
	dc := rc.pasv()
	rc.must(150, "RETR readme.txt")
	if got := readAll(t, dc); string(got) != "public" {
		t.Errorf("anonymous download: %q", got)
	}
	rc.expect(226)
	rc.must(550, "STOR x.txt")
	rc.must(550, "MKD d")
	rc.must(550, "DELE readme.txt")
}

func TestTransfersRaw(t *testing.T) {
	ts := startServer(t, nil)
	payload := make([]byte, 3<<20+17)
	rand.Read(payload)
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	rc.must(200, "TYPE I")

	// Upload over EPSV, download over PASV.
	dc := rc.epsv()
	rc.must(150, "STOR big.bin")
	if _, err := dc.Write(payload); err != nil {
		t.Fatal(err)
	}
	dc.Close()
	rc.expect(226)
	if !bytes.Equal(ts.read("alice/big.bin"), payload) {
		t.Fatal("uploaded file differs")
	}
	dc = rc.pasv()
	rc.must(150, "RETR big.bin")
	if got := readAll(t, dc); sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("download differs: %d bytes", len(got))
	}
	rc.expect(226)

	// Resume a download.
	rc.must(350, "REST 1000")
	dc = rc.pasv()
	rc.must(150, "RETR big.bin")
	if got := readAll(t, dc); !bytes.Equal(got, payload[1000:]) {
		t.Fatalf("resumed download differs: %d bytes", len(got))
	}
	rc.expect(226)
	rc.must(350, "REST 99999999")
	dc = rc.pasv()
	rc.must(554, "RETR big.bin")
	dc.Close()

	// Resume an upload: first half, then REST + STOR the rest.
	half := len(payload) / 2
	dc = rc.pasv()
	rc.must(150, "STOR part.bin")
	dc.Write(payload[:half])
	dc.Close()
	rc.expect(226)
	rc.must(350, "REST %d", half)
	dc = rc.pasv()
	rc.must(150, "STOR part.bin")
	dc.Write(payload[half:])
	dc.Close()
	rc.expect(226)
	if !bytes.Equal(ts.read("alice/part.bin"), payload) {
		t.Fatal("resumed upload differs")
	}

	// APPE.
	dc = rc.pasv()
	rc.must(150, "APPE log.txt")
	dc.Write([]byte("one\n"))
	dc.Close()
	rc.expect(226)
	dc = rc.pasv()
	rc.must(150, "APPE log.txt")
	dc.Write([]byte("two\n"))
	dc.Close()
	rc.expect(226)
	if got := string(ts.read("alice/log.txt")); got != "one\ntwo\n" {
		t.Fatalf("APPE result %q", got)
	}

	// STOU reports the unique name it chose.
	dc = rc.pasv()
	msg := rc.must(150, "STOU")
	dc.Write([]byte("unique"))
	dc.Close()
	name := strings.TrimPrefix(msg, "FILE: ")
	rc.expect(226)
	if got := string(ts.read("alice/" + name)); got != "unique" {
		t.Fatalf("STOU file %q has %q", name, got)
	}
}

func TestASCIIMode(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("alice/unix.txt", []byte("a\nb\n\nc"))
	ts.write("alice/dos.txt", []byte("a\r\nb\r\n"))
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	rc.must(200, "TYPE A")
	for file, want := range map[string]string{"unix.txt": "a\r\nb\r\n\r\nc", "dos.txt": "a\r\nb\r\n"} {
		dc := rc.pasv()
		rc.must(150, "RETR %s", file)
		if got := string(readAll(t, dc)); got != want {
			t.Errorf("ASCII RETR %s: %q, want %q", file, got, want)
		}
		rc.expect(226)
	}
	rc.stor(rc.pasv(), "up.txt", []byte("x\r\ny\r\nbare\rcr\r\n"))
	if got := string(ts.read("alice/up.txt")); got != "x\ny\nbare\rcr\n" {
		t.Errorf("ASCII STOR stored %q", got)
	}
}

func TestListings(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("alice/a.txt", []byte("12345"))
	ts.write("alice/sub/b.txt", nil)
	ts.write("alice/ünïcødé ☃.txt", []byte("u"))
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")

	list := func(cmd string) string {
		dc := rc.pasv()
		rc.must(150, "%s", cmd)
		out := string(readAll(t, dc))
		rc.expect(226)
		return out
	}
	ls := list("LIST -la")
	for _, want := range []string{"-rw-r--r--", "a.txt", "drwx", "sub", "ünïcødé ☃.txt", "\r\n"} {
		if !strings.Contains(ls, want) {
			t.Errorf("LIST -la lacks %q:\n%s", want, ls)
		}
	}
	if fields := strings.Fields(strings.Split(ls, "\r\n")[0]); len(fields) < 9 {
		t.Errorf("LIST line is not ls -l shaped: %q", fields)
	}
	if got := list("NLST"); !strings.Contains(got, "a.txt\r\n") || strings.Contains(got, "rw") {
		t.Errorf("NLST: %q", got)
	}
	mlsd := list("MLSD")
	if !strings.Contains(mlsd, "type=file;size=5;") || !strings.Contains(mlsd, "type=dir;") || !strings.Contains(mlsd, "perm=") || !strings.Contains(mlsd, "unique=") {
		t.Errorf("MLSD: %q", mlsd)
	}
	if got := list("LIST sub"); !strings.Contains(got, "b.txt") {
		t.Errorf("LIST sub: %q", got)
	}
	if got := list("LIST a.txt"); !strings.Contains(got, " a.txt\r\n") {
		t.Errorf("LIST of a file: %q", got)
	}
	rc.pasv().Close()
	rc.must(550, "LIST nope")
	rc.must(501, "MLSD a.txt")
	msg := rc.must(213, "STAT sub")
	if !strings.Contains(msg, "b.txt") {
		t.Errorf("STAT sub: %q", msg)
	}
}

func TestPermissions(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("alice/f.txt", []byte("data"))

	reader := dialRaw(t, ts.Addr)
	reader.login("reader", "reader-secret")
	dc := reader.pasv()
	reader.must(150, "RETR f.txt")
	readAll(t, dc)
	reader.expect(226)
	for _, c := range []string{"STOR g.txt", "APPE f.txt", "DELE f.txt", "MKD d", "RMD d", "RNFR f.txt", "SITE CHMOD 600 f.txt", "MFMT 20200101000000 f.txt"} {
		if code, msg := reader.cmd("%s", c); code != 550 {
			t.Errorf("read-only %q: %d %q", c, code, msg)
		}
	}

	drop := dialRaw(t, ts.Addr)
	drop.login("drop", "drop-secret")
	dc = drop.pasv()
	drop.must(150, "STOR report.csv")
	dc.Write([]byte("1,2,3"))
	dc.Close()
	drop.expect(226)
	if string(ts.read("dropbox/report.csv")) != "1,2,3" {
		t.Error("drop box upload missing")
	}
	for _, c := range []string{"LIST", "NLST", "MLSD", "RETR report.csv", "STOR report.csv", "SIZE report.csv", "DELE report.csv"} {
		if code, msg := drop.cmd("%s", c); code != 550 {
			t.Errorf("drop box %q: %d %q", c, code, msg)
		}
	}
	if string(ts.read("dropbox/report.csv")) != "1,2,3" {
		t.Error("drop box user overwrote a file")
	}
}

func TestJail(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("bob/secret.txt", []byte("bob's"))
	outside := filepath.Join(filepath.Dir(ts.Root), "outside-"+filepath.Base(ts.Root))
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "passwd"), []byte("root:x"), 0o644)
	t.Cleanup(func() { os.RemoveAll(outside) })
	ts.write("alice/keep", nil)
	if err := os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(ts.Root, "alice/link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ts.Root, "alice/dirlink")); err != nil {
		t.Fatal(err)
	}

	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	for _, p := range []string{"../bob/secret.txt", "/../bob/secret.txt", "../../../../../../etc/passwd", "link", "dirlink/passwd", "/dirlink/passwd"} {
		rc.jailRefuses(rc.pasv(), "RETR "+p)
	}
	for _, c := range []string{"CWD ../bob", "CWD dirlink", "SIZE link", "DELE ../bob/secret.txt", "MKD dirlink/x", "RNFR ../bob/secret.txt"} {
		code, msg := rc.cmd("%s", c)
		if c == "CWD ../bob" {
			// ".." cannot climb above the home: this is /bob inside it.
			if code != 550 {
				t.Errorf("%s: %d %q", c, code, msg)
			}
			continue
		}
		if code < 500 {
			t.Errorf("%s: %d %q, want a refusal", c, code, msg)
		}
	}
	dc := rc.pasv()
	if code, _ := rc.cmd("STOR dirlink/planted"); code == 150 {
		dc.Write([]byte("x"))
		dc.Close()
		rc.read()
	} else {
		dc.Close()
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("STOR through a symlink wrote outside the home")
	}
	if got, _ := os.ReadFile(filepath.Join(outside, "passwd")); string(got) != "root:x" {
		t.Error("outside file changed")
	}
	if string(ts.read("bob/secret.txt")) != "bob's" {
		t.Error("another user's file changed")
	}
}

// TestAbortedUploadKeepsOldFile interrupts uploads (ABOR, a vanished
// client) once the server is writing them: on S3 after the multipart upload
// has started, which must then be aborted, not completed or left pending.
func TestAbortedUploadKeepsOldFile(t *testing.T) {
	forBackends(t, allBackends, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, nil)
		old := []byte("precious original content")
		ts.write("alice/keep.txt", old)
		// More than one 5 MiB part, so S3 uploads go multipart.
		partial := bytes.Repeat([]byte("new"), 2<<20)

		for _, tc := range []struct {
			name      string
			interrupt func(rc *rawClient, dc net.Conn)
		}{
			{"ABOR", func(rc *rawClient, dc net.Conn) {
				rc.tp.PrintfLine("ABOR")
				rc.expect(426)
				rc.expect(226)
				dc.Close()
				rc.must(200, "NOOP") // the session carries on
				rc.must(221, "QUIT")
			}},
			{"vanished client", func(rc *rawClient, dc net.Conn) {
				rc.conn.Close() // control first
				time.Sleep(100 * time.Millisecond)
				dc.Close()
				waitFor(t, func() bool { return ts.srv.SessionCount() == 0 })
			}},
		} {
			rc := dialRaw(t, ts.Addr)
			rc.login("alice", "alice-secret")
			dc := rc.pasv()
			rc.must(150, "STOR keep.txt")
			if _, err := dc.Write(partial); err != nil {
				t.Fatal(err)
			}
			if b.isS3() {
				// Interrupt only once a part is on its way.
				waitFor(t, func() bool { return len(ts.bucket().srv.PendingUploads(t)) > 0 })
			}
			tc.interrupt(rc, dc)
			if got := ts.read("alice/keep.txt"); !bytes.Equal(got, old) {
				t.Fatalf("%s: the upload replaced the file: %q", tc.name, got[:min(len(got), 40)])
			}
			if b.isS3() {
				// A part cancelled in flight may still be stored after
				// the abort and revive the upload; the backend then
				// aborts it again a second later.
				srv := ts.bucket().srv
				deadline := time.Now().Add(10 * time.Second)
				for len(srv.PendingUploads(t)) > 0 && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if p := srv.PendingUploads(t); len(p) > 0 {
					t.Errorf("%s: multipart uploads left pending: %v", tc.name, p)
				}
				continue
			}
			entries, _ := os.ReadDir(filepath.Join(ts.Root, "alice"))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".cloudftpd-upload") {
					t.Errorf("%s: temporary upload left behind: %s", tc.name, e.Name())
				}
			}
		}
	})
}

func TestAbortDownload(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("alice/big", bytes.Repeat([]byte("z"), 64<<20))
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	dc := rc.pasv()
	rc.must(150, "RETR big")
	buf := make([]byte, 1000)
	io.ReadFull(dc, buf) // started, then stop reading
	start := time.Now()
	rc.tp.PrintfLine("ABOR")
	rc.expect(426)
	rc.expect(226)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("ABOR took %v", d)
	}
	dc.Close()
	rc.must(200, "NOOP") // the session carries on
	// ABOR sent the way old clients do: Telnet IP and Synch first.
	dc = rc.pasv()
	rc.must(150, "RETR big")
	io.ReadFull(dc, buf)
	rc.conn.Write([]byte{255, 244, 255})
	rc.conn.(*net.TCPConn).Write([]byte{242})
	rc.conn.Write([]byte("ABOR\r\n"))
	rc.expect(426)
	rc.expect(226)
	dc.Close()
	rc.must(221, "QUIT")
}

func TestLongLinesAndFlood(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts.Addr)
	rc.must(500, "NOOP %s", strings.Repeat("x", 5000))
	rc.must(200, "NOOP") // the session survives one
	for i := 0; i < 9; i++ {
		rc.must(500, "%s", strings.Repeat("y", 8000))
	}
	rc.must(421, "%s", strings.Repeat("y", 8000))
	if _, err := rc.tp.ReadLine(); err == nil {
		t.Error("flooding session still open")
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Server.IdleTimeout = config.Duration(300 * time.Millisecond)
	})
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	start := time.Now()
	rc.expect(421)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("idle timeout took %v", d)
	}
}

func TestDataConnectionTimeoutAndPortRelease(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Server.DataTimeout = config.Duration(200 * time.Millisecond)
		c.Listeners[0].PassivePorts = clienttest.FreeRange(t, 3)
	})
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	ts.write("alice/f", []byte("x"))
	// The client never connects: 425 after the data timeout.
	rc.must(227, "PASV")
	rc.must(150, "RETR f")
	rc.expect(425)
	// Repeated PASV without transfers must not exhaust three ports.
	for i := 0; i < 50; i++ {
		rc.must(227, "PASV")
	}
	for i := 0; i < 20; i++ {
		dc := rc.pasv()
		rc.must(150, "RETR f")
		readAll(t, dc)
		rc.expect(226)
	}
}

func TestPanicsAndGarbageDoNotKillServer(t *testing.T) {
	ts := startServer(t, nil)
	garbage := [][]byte{
		{0, 0, 0, '\r', '\n'},
		[]byte("\xff\xfb\x01\xff\xfa\x18\x01\xff\xf0USER alice\r\n"),
		[]byte("RETR \x00evil\r\n"),
		[]byte("PORT 999,1,1,1,1,1\r\n"),
		[]byte("EPRT ||||\r\n"),
		[]byte("MDTM 20201301000000 x\r\n"),
		bytes.Repeat([]byte{0xff}, 100),
	}
	for _, g := range garbage {
		c, err := net.Dial("tcp", ts.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(g)
		c.Close()
	}
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	rc.must(553, "RETR a\x00b")
	rc.must(200, "NOOP")
}

func TestRenameAndDelete(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("alice/d1/f", []byte("f"))
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	rc.must(350, "RNFR d1")
	rc.must(553, "RNTO d1/inside")
	rc.must(350, "RNFR d1")
	rc.must(250, "RNTO d2")
	if string(ts.read("alice/d2/f")) != "f" {
		t.Error("directory rename lost the file")
	}
	rc.must(250, "DELE d2/f")
	rc.must(250, "RMD d2")
	rc.must(550, "RMD /")
}

func TestMaxSessions(t *testing.T) {
	ts := startServer(t, func(c *config.Config) { c.Server.MaxSessionsPerIP = 2 })
	dialRaw(t, ts.Addr)
	dialRaw(t, ts.Addr)
	c, err := net.Dial("tcp", ts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(line), "421 ") {
		t.Errorf("third session got %q, want 421", line)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
