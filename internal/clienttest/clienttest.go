// Package clienttest holds helpers for tests that drive real FTP client
// programs (curl, lftp, Python's ftplib, inetutils-ftp, haproxy in front of
// a server):
//
//   - Need finds a program (InetutilsFTP: GNU inetutils' ftp), skipping
//     the test when it is missing, or failing it under CI=true, where
//     .ci/run must have installed it; Unavailable does the same for any
//     other missing requirement (root, a kernel feature).
//   - Run runs a program with a timeout, a private HOME, no proxy
//     settings and, optionally, behind a wrapper such as
//     "ip netns exec NS", and returns what it printed and how it exited.
//   - LogBuffer collects the output of a server or a helper process while
//     the test reads it.
//
// It is imported only by _test.go files.
package clienttest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultTimeout bounds a run whose Cmd sets no Timeout.
const DefaultTimeout = 30 * time.Second

// waitDelay is how long Run waits for a program's output pipes to close
// after it exited or was killed (children may hold them open).
const waitDelay = 5 * time.Second

// Unavailable skips the test because a requirement (a program, root, a
// kernel feature) is missing, or fails it when CI=true: CI must run every
// test.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: .ci/run must provide it)", msg)
	}
	t.Skip(msg)
}

// Need returns the path of the first of names found on PATH (several
// names are alternatives, such as "inetutils-ftp", "ftp"). When none is
// installed it calls Unavailable.
func Need(t testing.TB, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Unavailable(t, "%s not installed", strings.Join(names, " or "))
	return ""
}

// InetutilsFTP returns the path of GNU inetutils' ftp client. Debian
// installs it as inetutils-ftp; a plain "ftp" (which may be tnftp or
// another client) is used only when its --version names GNU inetutils.
// Otherwise it calls Unavailable.
func InetutilsFTP(t testing.TB) string {
	t.Helper()
	p := Need(t, "inetutils-ftp", "ftp")
	if filepath.Base(p) == "inetutils-ftp" {
		return p
	}
	if r := Run(context.Background(), Cmd{Prog: p, Args: []string{"--version"}}); !strings.Contains(r.Stdout, "GNU inetutils") {
		Unavailable(t, "%s is not GNU inetutils ftp (install inetutils-ftp)\n%s", p, r)
	}
	return p
}

// Cmd describes one run of a program.
type Cmd struct {
	Prog  string   // the program: a name looked up in PATH, or a path
	Args  []string // its arguments
	Stdin string   // its standard input
	Dir   string   // its working directory; "" is the test's
	// Env holds extra "KEY=value" entries, added after the inherited
	// environment has been filtered, so they override it.
	Env []string
	// Unset names more inherited variables to remove (case-insensitive),
	// beyond HOME, LC_ALL, TERM and the proxy variables that Run always
	// replaces or removes.
	Unset   []string
	Timeout time.Duration // kills the program after this; 0 means DefaultTimeout
	// Wrap, when set, runs Prog through another program, as in
	// {"ip", "netns", "exec", "NS"}: Wrap[0] is executed with the rest of
	// Wrap, Prog and Args as its arguments.
	Wrap []string
}

// Result is the outcome of one run.
type Result struct {
	Cmdline        string // Env and the command line, shell-quoted, for messages
	Stdout, Stderr string
	Code           int   // exit code; -1 when it did not exit normally
	Err            error // from exec, or why it was killed
}

// OK reports whether the program ran and exited 0.
func (r Result) OK() bool { return r.Err == nil && r.Code == 0 }

// String shows the command and everything it printed, for failure
// messages.
func (r Result) String() string {
	return fmt.Sprintf("$ %s\nexit %d (%v)\n--- stdout:\n%s\n--- stderr:\n%s", r.Cmdline, r.Code, r.Err, r.Stdout, r.Stderr)
}

// dropped are the inherited variables Run never passes on: HOME, LC_ALL
// and TERM are replaced, the proxy settings would send FTP through a proxy.
var dropped = []string{"home", "lc_all", "term", "ftp_proxy", "all_proxy", "http_proxy", "https_proxy", "no_proxy"}

// Run runs c and waits for it, at most c.Timeout (and no longer than ctx
// allows). The program gets a private, empty HOME (no rc files of the
// machine's user: .netrc, .lftprc, .curlrc), LC_ALL=C, TERM=dumb and no
// proxy variables.
func Run(ctx context.Context, c Cmd) Result {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	argv := append(append(append([]string(nil), c.Wrap...), c.Prog), c.Args...)
	var line []string
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		line = append(line, k+"="+shellQuote([]string{v}))
	}
	r := Result{Cmdline: strings.Join(append(line, shellQuote(argv)), " "), Code: -1}

	home, err := os.MkdirTemp("", "clienttest-home-")
	if err != nil {
		r.Err = err
		return r
	}
	defer os.RemoveAll(home)

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, argv[0], argv[1:]...)
	cmd.Dir = c.Dir
	cmd.WaitDelay = waitDelay
	cmd.Stdin = strings.NewReader(c.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = environ(home, c.Unset, c.Env)
	r.Err = cmd.Run()
	r.Stdout, r.Stderr = stdout.String(), stderr.String()
	r.Code = cmd.ProcessState.ExitCode()
	switch {
	case ctx.Err() != nil:
		r.Err = fmt.Errorf("killed, the test's context ended: %w", ctx.Err())
	case runCtx.Err() != nil:
		r.Err = fmt.Errorf("killed after %v: %w", timeout, runCtx.Err())
	}
	return r
}

// environ returns the process environment without the dropped and unset
// variables, with a private HOME and extra appended.
func environ(home string, unset, extra []string) []string {
	env := []string{"HOME=" + home, "LC_ALL=C", "TERM=dumb"}
outer:
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		for _, d := range dropped {
			if strings.EqualFold(k, d) {
				continue outer
			}
		}
		for _, u := range unset {
			if strings.EqualFold(k, u) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// shellQuote joins args into a line a shell would split back into args.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\;|&$*?<>()!`#~{}[]") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// LogBuffer collects output written from several goroutines (a server's
// logger, a child process's stdout and stderr) while the test reads it.
// The zero value is ready to use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// FreeAddr is a 127.0.0.1 address whose port is free right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreeRange finds n consecutive ports free on 127.0.0.1 and returns them
// as "lo-hi", a passive_ports value.
func FreeRange(t testing.TB, n int) string {
	t.Helper()
	for base := 40000 + int(time.Now().UnixNano()%20000); base < 65000; base += n {
		ok := true
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return fmt.Sprintf("%d-%d", base, base+n-1)
		}
	}
	t.Fatal("no free port range")
	return ""
}
