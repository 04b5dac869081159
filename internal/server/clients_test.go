package server_test

// Integration tests that drive a running server with real command-line FTP
// clients written elsewhere: curl, lftp, Python's ftplib and inetutils-ftp.
// Each test checks what the client did to the stored files, byte for byte,
// and what it printed, so a reply the client misreads shows up as a failure
// here. Every test runs once per storage backend (local disk, S3 on
// gofakes3, S3 on versitygw); where S3 cannot do what a client asks (MFMT),
// the test checks the refusal instead.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// toolTimeout bounds every run of a client program.
const toolTimeout = 30 * time.Second

// runTool runs a client program in dir with stdin as input, a timeout, a
// private HOME (no rc files of the machine's user) and no proxy settings.
func runTool(t *testing.T, dir, stdin, prog string, args ...string) clienttest.Result {
	t.Helper()
	return clienttest.Run(context.Background(), clienttest.Cmd{Prog: prog, Args: args, Stdin: stdin, Dir: dir, Timeout: toolTimeout})
}

// mustRun runs a client program and fails the test unless it exits 0.
// The server's log is in the test output already (testLogWriter).
func mustRun(t *testing.T, dir, stdin, prog string, args ...string) clienttest.Result {
	t.Helper()
	r := runTool(t, dir, stdin, prog, args...)
	if !r.OK() {
		t.Fatalf("client failed:\n%s", r)
	}
	return r
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// sameFile fails the test when the file at path does not hold want.
func sameFile(t *testing.T, what, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, sha256 %s; want %d bytes, sha256 %s", what,
			len(got), shortHash(got), len(want), shortHash(want))
	}
}

func shortHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// treeOf maps every regular file under dir (slash-separated, relative) to
// its content; directories map to "<dir>".
func treeOf(t testing.TB, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			tree[rel] = "<dir>"
			return nil
		}
		b, err := os.ReadFile(p)
		tree[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, "missing "+k)
		} else if g != v {
			diffs = append(diffs, fmt.Sprintf("%s: %d bytes, want %d", k, len(g), len(v)))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s: trees differ:\n%s", what, strings.Join(diffs, "\n"))
	}
}

// lines splits text output into lines, dropping CRs and the final newline.
func lines(s string) []string {
	s = strings.TrimRight(strings.ReplaceAll(s, "\r", ""), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// notExist fails the test when a file or directory rel exists in the
// server's storage.
func (ts *testServer) notExist(rel string) {
	ts.t.Helper()
	if ts.store.exists(ts.t, rel) {
		ts.t.Fatalf("%s still exists", rel)
	}
}

// ---- curl ----

func TestCurl(t *testing.T) {
	curl := clienttest.Need(t, "curl")
	forBackends(t, allBackends, func(t *testing.T, b backend) { testCurl(t, b, curl) })
}

func testCurl(t *testing.T, b backend, curl string) {
	// Every subtest has its own server, so its failures land on its own t.
	setup := func(t *testing.T) (ts *testServer, url, local string) {
		ts = startServerOn(t, b, nil)
		return ts, "ftp://alice:alice-secret@127.0.0.1:" + ts.Port() + "/", t.TempDir()
	}
	// -q first: ignore any .curlrc.
	curlArgs := func(extra ...string) []string {
		return append([]string{"-q", "-s", "-S", "--max-time", "20"}, extra...)
	}

	t.Run("modes", func(t *testing.T) {
		for _, m := range []struct {
			name string
			args []string
			verb string // data-connection command curl must have sent
		}{
			{"epsv", nil, "EPSV"},
			{"pasv", []string{"--ftp-pasv", "--disable-epsv"}, "PASV"},
			{"eprt", []string{"-P", "127.0.0.1"}, "EPRT |1|127.0.0.1|"},
			{"port", []string{"--ftp-port", "-", "--disable-eprt"}, "PORT 127,0,0,1,"},
		} {
			t.Run(m.name, func(t *testing.T) {
				ts, url, local := setup(t)
				payload := randomBytes(1<<20 + 333)
				up := filepath.Join(local, m.name+".up")
				down := filepath.Join(local, m.name+".down")
				if err := os.WriteFile(up, payload, 0o644); err != nil {
					t.Fatal(err)
				}
				r := mustRun(t, local, "", curl, curlArgs(append(m.args, "-v", "-T", up, url+m.name+".bin")...)...)
				if !strings.Contains(r.Stderr, "> "+m.verb) {
					t.Errorf("upload did not use %s:\n%s", m.verb, r.Stderr)
				}
				if !bytes.Equal(ts.read("alice/"+m.name+".bin"), payload) {
					t.Fatal("uploaded file differs")
				}
				r = mustRun(t, local, "", curl, curlArgs(append(m.args, "-v", "-o", down, url+m.name+".bin")...)...)
				if !strings.Contains(r.Stderr, "> "+m.verb) {
					t.Errorf("download did not use %s:\n%s", m.verb, r.Stderr)
				}
				sameFile(t, "downloaded file", down, payload)
			})
		}
	})

	t.Run("resume", func(t *testing.T) {
		ts, url, local := setup(t)
		payload := randomBytes(3<<20 + 7)
		ts.write("alice/resume.bin", payload)
		part := filepath.Join(local, "resume.part")
		const have = 1<<20 + 5
		if err := os.WriteFile(part, payload[:have], 0o644); err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, local, "", curl, curlArgs("-v", "-C", "-", "-o", part, url+"resume.bin")...)
		if !strings.Contains(r.Stderr, fmt.Sprintf("> REST %d", have)) {
			t.Errorf("curl did not resume at %d:\n%s", have, r.Stderr)
		}
		sameFile(t, "resumed download", part, payload)
	})

	// curl -C - -T resumes an upload with SIZE then APPE. On S3 that is a
	// new object: the part already stored copied inside S3 (7 MiB, above
	// the 5 MiB minimum part) or read back (300 KB), then the rest. The
	// result is checked with sha256sum after a download, and HASH (no
	// value stored for a resumed file: computed on request) agrees.
	t.Run("upload-resume", func(t *testing.T) {
		for _, have := range []int{300_001, 7<<20 + 5} {
			t.Run(fmt.Sprint(have), func(t *testing.T) {
				ts, url, local := setup(t)
				whole := filepath.Join(local, "whole.bin")
				payload := randomBytes(13<<20 + 9)
				os.WriteFile(whole, payload, 0o644)
				ts.write("alice/up.bin", payload[:have]) // what a cut upload left
				r := mustRun(t, local, "", curl, curlArgs("-v", "-C", "-", "-T", whole, url+"up.bin")...)
				if !strings.Contains(r.Stderr, "> APPE up.bin") {
					t.Errorf("curl did not resume with APPE:\n%s", r.Stderr)
				}
				down := filepath.Join(local, "down.bin")
				r = mustRun(t, local, "", curl, curlArgs("-v", "-Q", "HASH up.bin", "-o", down, url+"up.bin")...)
				want := sumOf(t, "sha256sum", whole)
				if got := sumOf(t, "sha256sum", down); got != want {
					t.Fatalf("resumed upload: sha256 %s, want %s", got, want)
				}
				if line := fmt.Sprintf("< 213 SHA-256 0-%d %s up.bin", len(payload), want); !strings.Contains(r.Stderr, line) {
					t.Errorf("HASH after the resume: no %q in\n%s", line, r.Stderr)
				}
				if ts.backend.isS3() {
					if p := ts.bucket().srv.PendingUploads(t); len(p) > 0 {
						t.Errorf("multipart uploads left open: %v", p)
					}
				}
			})
		}
	})

	t.Run("listings", func(t *testing.T) {
		ts, url, local := setup(t)
		ts.write("alice/lst/one.txt", []byte("1"))
		ts.write("alice/lst/two.dat", []byte("22222"))
		ts.write("alice/lst/sub/x", nil)
		r := mustRun(t, local, "", curl, curlArgs("-l", url+"lst/")...)
		// curl turns the listing's CRLF into LF (listings are ASCII).
		names := lines(r.Stdout)
		sort.Strings(names)
		if got := strings.Join(names, ","); got != "one.txt,sub,two.dat" {
			t.Errorf("curl -l (NLST): %q", r.Stdout)
		}
		r = mustRun(t, local, "", curl, curlArgs(url+"lst/")...)
		ls := lines(r.Stdout)
		if len(ls) != 3 {
			t.Fatalf("LIST: want 3 lines:\n%s", r.Stdout)
		}
		seen := map[string]string{}
		for _, l := range ls {
			f := strings.Fields(l)
			if len(f) < 9 {
				t.Fatalf("LIST line not ls -l shaped: %q", l)
			}
			seen[f[8]] = f[0][:1] + f[4]
		}
		for name, want := range map[string]string{"one.txt": "-1", "two.dat": "-5", "sub": "d"} {
			if !strings.HasPrefix(seen[name], want) {
				t.Errorf("LIST entry %s: type+size %q, want %q...\n%s", name, seen[name], want, r.Stdout)
			}
		}
	})

	t.Run("quote", func(t *testing.T) {
		ts, url, local := setup(t)
		ts.write("alice/q/gone.txt", []byte("x"))
		ts.write("alice/q/a.txt", []byte("renamed"))
		// Commands before the transfer (DELE, from /) and after it
		// (-RNFR/-RNTO, in the URL's directory).
		r := mustRun(t, local, "", curl, curlArgs("-Q", "DELE q/gone.txt", "-Q", "-RNFR a.txt", "-Q", "-RNTO b.txt", "-l", url+"q/")...)
		if strings.Contains(r.Stdout, "gone.txt") {
			t.Errorf("listing after DELE still shows the file: %q", r.Stdout)
		}
		ts.notExist("alice/q/gone.txt")
		ts.notExist("alice/q/a.txt")
		if got := string(ts.read("alice/q/b.txt")); got != "renamed" {
			t.Errorf("renamed file holds %q", got)
		}
		// A quote command the server refuses fails the run.
		r = runTool(t, local, "", curl, curlArgs("-Q", "DELE q/nope", url+"q/")...)
		if r.Code != 21 { // CURLE_QUOTE_ERROR
			t.Errorf("DELE of a missing file: want curl exit 21\n%s", r)
		}
	})

	t.Run("create-dirs", func(t *testing.T) {
		ts, url, local := setup(t)
		src := filepath.Join(local, "deep.txt")
		os.WriteFile(src, []byte("deep"), 0o644)
		mustRun(t, local, "", curl, curlArgs("--ftp-create-dirs", "-T", src, url+"new/deeper/deep.txt")...)
		if got := string(ts.read("alice/new/deeper/deep.txt")); got != "deep" {
			t.Errorf("upload into new dirs: %q", got)
		}
	})

	t.Run("ascii", func(t *testing.T) {
		ts, url, local := setup(t)
		ts.write("alice/text.txt", []byte("one\ntwo\n\nthree"))
		dst := filepath.Join(local, "text.txt")
		trace := filepath.Join(local, "trace")
		mustRun(t, local, "", curl, curlArgs("--trace", trace, "-B", "-o", dst, url+"text.txt")...)
		tr, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(tr), "TYPE A") {
			t.Errorf("curl -B did not send TYPE A:\n%s", tr)
		}
		// On the wire the lines end in CRLF: the trace's hex dump of the
		// received data shows "one\r\ntwo\r\n\r\nthre".
		if !strings.Contains(string(tr), "6f 6e 65 0d 0a 74 77 6f 0d 0a 0d 0a 74 68 72 65") {
			t.Errorf("TYPE A data on the wire is not CRLF-terminated:\n%s", tr)
		}
		// curl (7.88, Linux) turns CRLF back into LF when it writes the
		// file, so the round trip gives the original bytes.
		sameFile(t, "ASCII download", dst, []byte("one\ntwo\n\nthree"))
	})

	// binary_only: curl -B sends TYPE A, and files still travel as they
	// are, both ways: LF on the wire for the download, the CRLFs of the
	// upload stored as sent.
	t.Run("ascii-binary-only", func(t *testing.T) {
		ts := startServerOn(t, b, func(c *config.Config) { c.Listeners[0].BinaryOnly = true })
		url, local := "ftp://alice:alice-secret@127.0.0.1:"+ts.Port()+"/", t.TempDir()
		ts.write("alice/text.txt", []byte("one\ntwo\n\nthree"))
		trace := filepath.Join(local, "trace")
		mustRun(t, local, "", curl, curlArgs("--trace", trace, "-B", "-o", filepath.Join(local, "text.txt"), url+"text.txt")...)
		tr, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(tr), "TYPE A") {
			t.Errorf("curl -B did not send TYPE A:\n%s", tr)
		}
		if !strings.Contains(string(tr), "6f 6e 65 0a 74 77 6f 0a 0a 74 68 72 65 65") {
			t.Errorf("binary-only TYPE A download was converted on the wire:\n%s", tr)
		}
		// curl -B turns each LF of the file into CRLF on the wire; a
		// converting server would store LF again, this one keeps what
		// was sent.
		up := filepath.Join(local, "lf.txt")
		if err := os.WriteFile(up, []byte("x\ny\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, local, "", curl, curlArgs("-B", "-T", up, url+"sent.txt")...)
		if got, sent := ts.read("alice/sent.txt"), []byte("x\r\ny\r\n"); !bytes.Equal(got, sent) {
			t.Errorf("binary-only TYPE A upload stored %q, want %q as sent", got, sent)
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		ts, _, local := setup(t)
		r := runTool(t, local, "", curl, curlArgs("ftp://alice:wrong@127.0.0.1:"+ts.Port()+"/")...)
		if r.Code != 67 { // CURLE_LOGIN_DENIED
			t.Errorf("wrong password: want curl exit 67\n%s", r)
		} else if !strings.Contains(ts.logs.String(), "login failed") {
			t.Error("the server did not log the failed login")
		}
	})
}

// ---- lftp ----

// lftp runs one lftp command line against ts as alice, with debug output
// (the commands lftp sent, "---> VERB ...") on stderr.
func lftp(t *testing.T, ts *testServer, dir, cmds string) clienttest.Result {
	t.Helper()
	prog := clienttest.Need(t, "lftp")
	script := "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; " +
		"set ftp:ssl-allow no; set cmd:fail-exit yes; set xfer:clobber yes; debug 5; " +
		"open -u alice,alice-secret -p " + ts.Port() + " 127.0.0.1; " + cmds
	return mustRun(t, dir, "", prog, "--norc", "-c", script)
}

// sentVerb reports whether a client's debug output shows it sent a command
// starting with verb ("---> EPSV").
func sentVerb(out, verb string) bool {
	return strings.Contains(out, "---> "+verb)
}

func TestLFTP(t *testing.T) {
	clienttest.Need(t, "lftp")
	forBackends(t, allBackends, testLFTP)
}

func testLFTP(t *testing.T, b backend) {
	t.Run("put-get-ls", func(t *testing.T) {
		ts := startServerOn(t, b, nil)
		local := t.TempDir()
		payload := randomBytes(2<<20 + 99)
		os.WriteFile(filepath.Join(local, "up.bin"), payload, 0o644)
		old := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
		os.Chtimes(filepath.Join(local, "up.bin"), old, old)
		ts.write("alice/listed.txt", []byte("twelve bytes"))
		ts.write("alice/dir/inner", nil)
		r := lftp(t, ts, local, "put up.bin -o remote.bin; get remote.bin -o down.bin; ls; cls -1")
		if !bytes.Equal(ts.read("alice/remote.bin"), payload) {
			t.Fatal("lftp put: uploaded file differs")
		}
		sameFile(t, "lftp get", filepath.Join(local, "down.bin"), payload)
		// lftp copies modification times: MFMT after put, MDTM after get.
		// S3 sets an object's time when it is written, so there MFMT is
		// refused and the download gets the time MDTM reported.
		fi, err := os.Stat(filepath.Join(local, "down.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if !b.isS3() {
			want := old.Unix()
			if server, down := ts.store.listTime(t, "alice/remote.bin").Unix(), fi.ModTime().Unix(); server != want || down != want {
				t.Errorf("modification times: want %d, server %d, downloaded %d\n%s", want, server, down, r.Stderr)
			}
		} else {
			if !sentVerb(r.Stderr, "MFMT") || !strings.Contains(r.Stderr, "<--- 502 ") {
				t.Errorf("lftp's MFMT on S3: want it sent and refused with 502\n%s", r.Stderr)
			}
			// MDTM reports HeadObject's time. (gofakes3 dates a multipart
			// object from the start of the upload there, and from its end in
			// listings, so the listing is not the reference.)
			want := ts.bucket().headTime(t, "alice/remote.bin").Truncate(time.Second)
			// lftp leaves a time alone that matches to the second.
			if down := fi.ModTime(); down.Unix() != want.Unix() {
				t.Errorf("modification time of the download: %s, want MDTM's %s\n%s", down.UTC(), want, r.Stderr)
			}
		}
		out := lines(r.Stdout)
		// ls prints our LIST lines as they are, then cls the names.
		var lsLines, names []string
		for _, l := range out {
			if len(strings.Fields(l)) >= 9 {
				lsLines = append(lsLines, l)
			} else {
				names = append(names, l)
			}
		}
		wantLS := map[string]string{"listed.txt": "-12", "remote.bin": fmt.Sprintf("-%d", len(payload)), "dir": "d"}
		for _, l := range lsLines {
			f := strings.Fields(l)
			if w, ok := wantLS[f[8]]; ok && strings.HasPrefix(f[0][:1]+f[4], w) {
				delete(wantLS, f[8])
			}
		}
		if len(wantLS) > 0 {
			t.Errorf("lftp ls lacks %v:\n%s", wantLS, r.Stdout)
		}
		sort.Strings(names)
		if got := strings.Join(names, ","); got != "dir/,listed.txt,remote.bin" {
			t.Errorf("lftp cls -1: %q\n%s", got, r.Stdout)
		}
	})

	t.Run("mirror", func(t *testing.T) {
		ts := startServerOn(t, b, nil)
		local := t.TempDir()
		ts.write("alice/tree/a.txt", []byte("alpha\n"))
		ts.write("alice/tree/sub/b.bin", randomBytes(300<<10))
		ts.write("alice/tree/sub/deep/c", []byte("c"))
		ts.write("alice/tree/empty.txt", nil)
		ts.store.mkdir(t, "alice/tree/emptydir")
		want := ts.store.tree(t, "alice/tree")

		lftp(t, ts, local, "mirror tree got")
		sameTree(t, "mirror (download)", treeOf(t, filepath.Join(local, "got")), want)

		up := filepath.Join(local, "up")
		os.MkdirAll(filepath.Join(up, "x/y"), 0o755)
		os.MkdirAll(filepath.Join(up, "void"), 0o755)
		os.WriteFile(filepath.Join(up, "top.txt"), []byte("top"), 0o644)
		os.WriteFile(filepath.Join(up, "x/y/z.bin"), randomBytes(200<<10), 0o644)
		lftp(t, ts, local, "mirror -R up uploaded")
		sameTree(t, "mirror -R (upload)", ts.store.tree(t, "alice/uploaded"), treeOf(t, up))
	})

	t.Run("rm-mv-mkdir", func(t *testing.T) {
		ts := startServerOn(t, b, nil)
		ts.write("alice/gone.txt", []byte("x"))
		ts.write("alice/moved.txt", []byte("moved"))
		ts.write("alice/olddir/f/g", []byte("g"))
		lftp(t, ts, t.TempDir(), "mkdir -p a/b/c; mv moved.txt a/b/c/here.txt; rm gone.txt; rm -r olddir")
		ts.notExist("alice/gone.txt")
		ts.notExist("alice/moved.txt")
		ts.notExist("alice/olddir")
		if got := string(ts.read("alice/a/b/c/here.txt")); got != "moved" {
			t.Errorf("mv: %q", got)
		}
		// A failing command makes lftp exit non-zero (cmd:fail-exit).
		r := runTool(t, t.TempDir(), "", clienttest.Need(t, "lftp"), "--norc", "-c",
			"set net:max-retries 1; set ftp:ssl-allow no; set cmd:fail-exit yes; open -u alice,alice-secret -p "+ts.Port()+" 127.0.0.1; rm nope.txt")
		if r.Code == 0 || !strings.Contains(r.Stderr, "550") {
			t.Errorf("rm of a missing file: want a failure with 550\n%s", r)
		}
	})

	t.Run("modes", func(t *testing.T) {
		for _, m := range []struct {
			name, settings string
			verbs          []string // one of these must have been sent
		}{
			{"epsv", "set ftp:prefer-epsv yes;", []string{"EPSV"}},
			{"pasv", "set ftp:prefer-epsv no;", []string{"PASV"}},
			{"active", "set ftp:passive-mode off;", []string{"PORT ", "EPRT "}},
		} {
			t.Run(m.name, func(t *testing.T) {
				ts := startServerOn(t, b, nil)
				local := t.TempDir()
				payload := randomBytes(1<<20 + 1)
				os.WriteFile(filepath.Join(local, "up.bin"), payload, 0o644)
				r := lftp(t, ts, local, m.settings+" put up.bin -o m.bin; get m.bin -o down.bin")
				if !bytes.Equal(ts.read("alice/m.bin"), payload) {
					t.Fatal("upload differs")
				}
				sameFile(t, "download", filepath.Join(local, "down.bin"), payload)
				used := false
				for _, v := range m.verbs {
					used = used || sentVerb(r.Stderr, v)
				}
				if !used {
					t.Errorf("lftp did not send %v:\n%s", m.verbs, r.Stderr)
				}
			})
		}
	})

	t.Run("resume", func(t *testing.T) {
		ts := startServerOn(t, b, nil)
		local := t.TempDir()
		payload := randomBytes(2<<20 + 3)
		ts.write("alice/big.bin", payload)
		const have = 700001
		os.WriteFile(filepath.Join(local, "big.bin"), payload[:have], 0o644)
		r := lftp(t, ts, local, "get -c big.bin")
		if !sentVerb(r.Stderr, fmt.Sprintf("REST %d", have)) {
			t.Errorf("get -c did not resume at %d:\n%s", have, r.Stderr)
		}
		sameFile(t, "get -c", filepath.Join(local, "big.bin"), payload)
	})

	// put -c resumes an upload with SIZE then REST + STOR; on S3 the part
	// already stored is copied inside S3 (at least 5 MiB) or read back.
	t.Run("put-resume", func(t *testing.T) {
		for _, have := range []int{123_457, 5 << 20, 9<<20 + 1} {
			t.Run(fmt.Sprint(have), func(t *testing.T) {
				ts := startServerOn(t, b, nil)
				local := t.TempDir()
				payload := randomBytes(11<<20 + 3)
				os.WriteFile(filepath.Join(local, "big.bin"), payload, 0o644)
				ts.write("alice/big.bin", payload[:have])
				r := lftp(t, ts, local, "put -c big.bin; get big.bin -o check.bin")
				if !sentVerb(r.Stderr, fmt.Sprintf("REST %d", have)) || !sentVerb(r.Stderr, "STOR big.bin") {
					t.Errorf("put -c did not resume at %d:\n%s", have, r.Stderr)
				}
				if got, want := sumOf(t, "sha256sum", filepath.Join(local, "check.bin")), sumOf(t, "sha256sum", filepath.Join(local, "big.bin")); got != want {
					t.Fatalf("put -c: sha256 %s, want %s", got, want)
				}
			})
		}
	})
}

// ---- Python ftplib ----

// ftplibPrelude is shared by the ftplib scripts: they print what they saw
// as JSON and the Go test checks it against the files on disk. Every step
// records its result or its exception, so one failure does not hide the
// rest.
const ftplibPrelude = `
import ftplib, hashlib, json, os, socket, sys

host, port, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {}

def step(name, fn, out=res):
    try:
        out[name] = fn()
    except Exception as e:
        out[name] = {"error": "%s: %s" % (type(e).__name__, e)}

def sha(ftp, cmd):
    h = hashlib.sha256()
    ftp.retrbinary(cmd, h.update)
    return h.hexdigest()

def login():
    ftp = ftplib.FTP()
    ftp.connect(host, port, timeout=10)
    ftp.login("alice", "alice-secret")
    return ftp
`

// ftplibScript uses most of ftplib's FTP class.
const ftplibScript = ftplibPrelude + `
def stor(name, local):
    with open(os.path.join(work, local), "rb") as f:
        return ftp.storbinary("STOR " + name, f)

def storlines(name, local):
    with open(os.path.join(work, local), "rb") as f:
        return ftp.storlines("STOR " + name, f)

def retrlines(name):
    out = []
    ftp.retrlines("RETR " + name, out.append)
    return out

ftp = ftplib.FTP()
ftp.connect(host, port, timeout=10)
step("welcome", ftp.getwelcome)
step("login", lambda: ftp.login("alice", "alice-secret"))
step("mkd", lambda: ftp.mkd("py"))
step("cwd", lambda: ftp.cwd("py"))
step("pwd", ftp.pwd)
step("stor", lambda: stor("up.bin", "up.bin"))
step("retr_sha256", lambda: sha(ftp, "RETR up.bin"))
step("storlines", lambda: storlines("text.txt", "text.txt"))
step("retrlines", lambda: retrlines("text.txt"))
step("nlst", lambda: sorted(ftp.nlst()))
step("mlsd", lambda: {n: f for n, f in ftp.mlsd()})
step("size", lambda: ftp.size("up.bin"))
step("rename", lambda: ftp.rename("text.txt", "renamed.txt"))
step("delete", lambda: ftp.delete("up.bin"))
step("mkd2", lambda: ftp.mkd("gone"))
step("rmd", lambda: ftp.rmd("gone"))
step("noop", lambda: ftp.voidcmd("NOOP"))
ftp.set_pasv(False)
step("active_stor", lambda: stor("active.bin", "up.bin"))
step("active_retr_sha256", lambda: sha(ftp, "RETR active.bin"))
ftp.set_pasv(True)
step("quit", ftp.quit)
print(json.dumps(res))
`

// ftplibAbortScript interrupts a large download two ways, each on a
// session of its own: as RFC 959 says (Telnet IP, then Synch: IAC DM as
// urgent data, then ABOR), and with ftplib's own abort(), which sends the
// whole "ABOR\r\n" with MSG_OOB. Either way the RETR must get 426, the
// ABOR 226, and the session must go on.
const ftplibAbortScript = ftplibPrelude + `
def rfc_abort(ftp):
    ftp.sock.sendall(b"\xff\xf4\xff")
    ftp.sock.send(b"\xf2", socket.MSG_OOB)
    ftp.sock.sendall(b"ABOR\r\n")
    resp = ftp.getmultiline()
    if resp[:3] not in {"426", "225", "226"}:
        raise ftplib.error_proto(resp)
    return resp

def run(how):
    ftp = login()
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    out = {"received": len(conn.recv(65536))}
    ftp.sock.settimeout(3)
    step("abort", lambda: how(ftp), out)            # 426 for the RETR
    conn.close()
    step("after", ftp.getresp, out)                 # 226 for the ABOR
    step("noop", lambda: ftp.voidcmd("NOOP"), out)
    step("sha_after", lambda: sha(ftp, "RETR small.txt"), out)
    try:
        ftp.quit()
    except Exception:
        pass
    return out

step("telnet", lambda: run(rfc_abort))
step("ftplib", lambda: run(lambda ftp: ftp.abort()))
print(json.dumps(res))
`

// runFTPLib runs one of the scripts above in work and returns its JSON.
func runFTPLib(t *testing.T, ts *testServer, work, script string) map[string]any {
	t.Helper()
	python := clienttest.Need(t, "python3")
	path := filepath.Join(work, "drive.py")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, work, "", python, path, "127.0.0.1", ts.Port(), work)
	var res map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("script output: %v\n%s", err, r)
	}
	return res
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPythonFTPLib(t *testing.T) {
	clienttest.Need(t, "python3")
	forBackends(t, allBackends, testPythonFTPLib)
}

func testPythonFTPLib(t *testing.T, b backend) {
	ts := startServerOn(t, b, nil)
	work := t.TempDir()
	payload := randomBytes(3<<20 + 11)
	os.WriteFile(filepath.Join(work, "up.bin"), payload, 0o644)
	text := "first line\nsecond line\n\nlast line\n"
	os.WriteFile(filepath.Join(work, "text.txt"), []byte(text), 0o644)

	res := runFTPLib(t, ts, work, ftplibScript)
	for _, tc := range []struct {
		step string
		want string // JSON of the expected value, or a prefix of a reply
	}{
		{"welcome", `"220 `},
		{"login", `"230 `},
		{"mkd", `"/py"`},
		{"cwd", `"250 `},
		{"pwd", `"/py"`},
		{"stor", `"226 `},
		{"retr_sha256", js(hex.EncodeToString(sha256Of(payload)))},
		{"storlines", `"226 `},
		{"retrlines", js(strings.Split(strings.TrimSuffix(text, "\n"), "\n"))},
		{"nlst", `["text.txt","up.bin"]`},
		{"size", js(len(payload))},
		{"rename", `"250 `},
		{"delete", `"250 `},
		{"mkd2", `"/py/gone"`},
		{"rmd", `"250 `},
		{"noop", `"200 `},
		{"active_stor", `"226 `},
		{"active_retr_sha256", js(hex.EncodeToString(sha256Of(payload)))},
		{"quit", `"221 `},
	} {
		if got := js(res[tc.step]); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: got %s, want %s", tc.step, got, tc.want)
		}
	}
	if mlsd, ok := res["mlsd"].(map[string]any); !ok {
		t.Errorf("mlsd: %s", js(res["mlsd"]))
	} else {
		up, _ := mlsd["up.bin"].(map[string]any)
		txt, _ := mlsd["text.txt"].(map[string]any)
		if up["type"] != "file" || up["size"] != fmt.Sprint(len(payload)) || len(fmt.Sprint(up["modify"])) != 14 ||
			txt["type"] != "file" || txt["size"] != fmt.Sprint(len(text)) || len(mlsd) != 2 {
			t.Errorf("mlsd: %s", js(mlsd))
		}
	}
	// storlines sent CRLF lines in TYPE A: the server stored LF.
	if got := string(ts.read("alice/py/renamed.txt")); got != text {
		t.Errorf("storlines stored %q, want %q", got, text)
	}
	ts.notExist("alice/py/up.bin")
	ts.notExist("alice/py/text.txt")
	ts.notExist("alice/py/gone")
	if !bytes.Equal(ts.read("alice/py/active.bin"), payload) {
		t.Error("active-mode upload differs")
	}
}

// TestPythonFTPLibAbort: ftplib's abort() sends "ABOR\r\n" in one send()
// with MSG_OOB. TCP marks only the last byte ("\n") urgent and Linux takes
// it out of the stream unless the receiver set SO_OOBINLINE, so a server
// reading the control connection normally sees "ABOR\r" and no line end.
func TestPythonFTPLibAbort(t *testing.T) {
	clienttest.Need(t, "python3")
	forBackends(t, allBackends, testPythonFTPLibAbort)
}

func testPythonFTPLibAbort(t *testing.T, b backend) {
	ts := startServerOn(t, b, nil)
	// Large enough that the download is still running when ABOR comes:
	// loopback buffers hold a few MiB at most.
	ts.write("alice/big.bin", bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16))
	ts.write("alice/small.txt", []byte("still working"))
	res := runFTPLib(t, ts, t.TempDir(), ftplibAbortScript)
	for _, how := range []string{"telnet", "ftplib"} {
		ab, _ := res[how].(map[string]any)
		if !strings.HasPrefix(fmt.Sprint(ab["abort"]), "426") || !strings.HasPrefix(fmt.Sprint(ab["after"]), "226") ||
			!strings.HasPrefix(fmt.Sprint(ab["noop"]), "200") || ab["sha_after"] != hex.EncodeToString(sha256Of([]byte("still working"))) {
			t.Errorf("%s abort: got %s; want abort 426, after 226, noop 200 and a working download "+
				"(the ftplib way needs SO_OOBINLINE on the control connection)", how, js(ab))
		}
	}
}

func sha256Of(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

// ---- inetutils-ftp ----

func TestInetutilsFTP(t *testing.T) {
	ftp := clienttest.InetutilsFTP(t)
	forBackends(t, allBackends, func(t *testing.T, b backend) { testInetutilsFTP(t, b, ftp) })
}

func testInetutilsFTP(t *testing.T, b backend, ftp string) {
	for _, m := range []struct {
		name string
		flag string // -p passive, -A active
		verb string
	}{
		{"passive", "-p", "PASV"},
		{"active", "-A", "PORT"},
	} {
		t.Run(m.name, func(t *testing.T) {
			ts := startServerOn(t, b, nil)
			local := t.TempDir()
			payload := randomBytes(1<<20 + 17)
			os.WriteFile(filepath.Join(local, "up.bin"), payload, 0o644)
			download := randomBytes(600<<10 + 1)
			ts.write("alice/down.bin", download)
			script := strings.Join([]string{
				"open 127.0.0.1 " + ts.Port(),
				"user alice alice-secret",
				"binary",
				"put up.bin remote.bin",
				"get down.bin got.bin",
				"ls",
				"bye",
			}, "\n") + "\n"
			// -d prints the commands sent ("---> PASV").
			r := mustRun(t, local, script, ftp, "-n", "-v", "-d", m.flag)
			if !bytes.Equal(ts.read("alice/remote.bin"), payload) {
				t.Fatalf("put: uploaded file differs\n%s", r)
			}
			sameFile(t, "get", filepath.Join(local, "got.bin"), download)
			if !sentVerb(r.Stdout, m.verb) {
				t.Errorf("no %s sent:\n%s", m.verb, r)
			}
			for _, want := range []string{"230 ", "226 ", "221 "} {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, r)
				}
			}
			// ls prints the LIST lines among the verbose replies.
			found := map[string]bool{}
			for _, l := range lines(r.Stdout) {
				if f := strings.Fields(l); len(f) == 9 && f[0][0] == '-' {
					found[f[8]+" "+f[4]] = true
				}
			}
			for _, want := range []string{fmt.Sprintf("remote.bin %d", len(payload)), fmt.Sprintf("down.bin %d", len(download))} {
				if !found[want] {
					t.Errorf("ls lacks %q:\n%s", want, r.Stdout)
				}
			}
		})
	}
}
