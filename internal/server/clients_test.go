package server_test

// Integration tests that drive a running server with real command-line FTP
// clients written elsewhere: curl, lftp, Python's ftplib and inetutils-ftp.
// Each test checks what the client did on disk, byte for byte, and what it
// printed, so a reply the client misreads shows up as a failure here.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// toolTimeout bounds every run of a client program.
const toolTimeout = 30 * time.Second

// needTool returns the path of a client program. A missing program skips
// the test on a developer's machine and fails it in CI, where .ci/run must
// install it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed; .ci/run must install it", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// toolRun is the outcome of one run of a client program.
type toolRun struct {
	cmdline        string
	stdout, stderr string
	code           int // exit code; -1 when it did not exit normally
	err            error
}

func (r toolRun) String() string {
	return fmt.Sprintf("$ %s\nexit %d (%v)\n--- stdout:\n%s\n--- stderr:\n%s", r.cmdline, r.code, r.err, r.stdout, r.stderr)
}

// runTool runs a client program in dir with stdin as input, a timeout, a
// private HOME (no rc files of the machine's user) and no proxy settings.
func runTool(t *testing.T, dir, stdin, prog string, args ...string) toolRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	home := t.TempDir()
	env := []string{"HOME=" + home, "LC_ALL=C", "TERM=dumb"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "home", "lc_all", "term", "ftp_proxy", "all_proxy", "http_proxy", "https_proxy", "no_proxy":
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	err := cmd.Run()
	r := toolRun{
		cmdline: prog + " " + shellQuote(args),
		stdout:  stdout.String(),
		stderr:  stderr.String(),
		code:    cmd.ProcessState.ExitCode(),
		err:     err,
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("killed after %v: %w", toolTimeout, ctx.Err())
	}
	return r
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\;|&$*?<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// mustRun runs a client program and fails the test unless it exits 0.
// The server's log is in the test output already (testLogWriter).
func mustRun(t *testing.T, dir, stdin, prog string, args ...string) toolRun {
	t.Helper()
	r := runTool(t, dir, stdin, prog, args...)
	if r.err != nil || r.code != 0 {
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
func treeOf(t *testing.T, dir string) map[string]string {
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

// notExist fails the test when rel exists under the storage root.
func (ts *testServer) notExist(rel string) {
	ts.t.Helper()
	if _, err := os.Stat(filepath.Join(ts.Root, filepath.FromSlash(rel))); !errors.Is(err, fs.ErrNotExist) {
		ts.t.Fatalf("%s still exists (%v)", rel, err)
	}
}

// ---- curl ----

func TestCurl(t *testing.T) {
	curl := needTool(t, "curl")
	// Every subtest has its own server, so its failures land on its own t.
	setup := func(t *testing.T) (ts *testServer, url, local string) {
		ts = startServer(t, nil)
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
				if !strings.Contains(r.stderr, "> "+m.verb) {
					t.Errorf("upload did not use %s:\n%s", m.verb, r.stderr)
				}
				if !bytes.Equal(ts.read("alice/"+m.name+".bin"), payload) {
					t.Fatal("uploaded file differs")
				}
				r = mustRun(t, local, "", curl, curlArgs(append(m.args, "-v", "-o", down, url+m.name+".bin")...)...)
				if !strings.Contains(r.stderr, "> "+m.verb) {
					t.Errorf("download did not use %s:\n%s", m.verb, r.stderr)
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
		if !strings.Contains(r.stderr, fmt.Sprintf("> REST %d", have)) {
			t.Errorf("curl did not resume at %d:\n%s", have, r.stderr)
		}
		sameFile(t, "resumed download", part, payload)
	})

	t.Run("listings", func(t *testing.T) {
		ts, url, local := setup(t)
		ts.write("alice/lst/one.txt", []byte("1"))
		ts.write("alice/lst/two.dat", []byte("22222"))
		ts.write("alice/lst/sub/x", nil)
		r := mustRun(t, local, "", curl, curlArgs("-l", url+"lst/")...)
		// curl turns the listing's CRLF into LF (listings are ASCII).
		names := lines(r.stdout)
		sort.Strings(names)
		if got := strings.Join(names, ","); got != "one.txt,sub,two.dat" {
			t.Errorf("curl -l (NLST): %q", r.stdout)
		}
		r = mustRun(t, local, "", curl, curlArgs(url+"lst/")...)
		ls := lines(r.stdout)
		if len(ls) != 3 {
			t.Fatalf("LIST: want 3 lines:\n%s", r.stdout)
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
				t.Errorf("LIST entry %s: type+size %q, want %q...\n%s", name, seen[name], want, r.stdout)
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
		if strings.Contains(r.stdout, "gone.txt") {
			t.Errorf("listing after DELE still shows the file: %q", r.stdout)
		}
		ts.notExist("alice/q/gone.txt")
		ts.notExist("alice/q/a.txt")
		if got := string(ts.read("alice/q/b.txt")); got != "renamed" {
			t.Errorf("renamed file holds %q", got)
		}
		// A quote command the server refuses fails the run.
		r = runTool(t, local, "", curl, curlArgs("-Q", "DELE q/nope", url+"q/")...)
		if r.code != 21 { // CURLE_QUOTE_ERROR
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
		r := mustRun(t, local, "", curl, curlArgs("-v", "--trace", trace, "-B", "-o", dst, url+"text.txt")...)
		if !strings.Contains(r.stderr, "> TYPE A") {
			t.Errorf("curl -B did not send TYPE A:\n%s", r.stderr)
		}
		// On the wire the lines end in CRLF: the trace's hex dump of the
		// received data shows "one\r\ntwo\r\n\r\nthre".
		tr, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(tr), "6f 6e 65 0d 0a 74 77 6f 0d 0a 0d 0a 74 68 72 65") {
			t.Errorf("TYPE A data on the wire is not CRLF-terminated:\n%s", tr)
		}
		// curl (7.88, Linux) turns CRLF back into LF when it writes the
		// file, so the round trip gives the original bytes.
		sameFile(t, "ASCII download", dst, []byte("one\ntwo\n\nthree"))
	})

	t.Run("wrong-password", func(t *testing.T) {
		ts, _, local := setup(t)
		r := runTool(t, local, "", curl, curlArgs("ftp://alice:wrong@127.0.0.1:"+ts.Port()+"/")...)
		if r.code == 67 && !strings.Contains(ts.logs.String(), "login failed") {
			t.Error("the server did not log the failed login")
		}
		if r.code != 67 { // CURLE_LOGIN_DENIED
			t.Errorf("wrong password: want curl exit 67\n%s", r)
		}
	})
}
