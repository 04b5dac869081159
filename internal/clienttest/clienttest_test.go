package clienttest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunEnvironment(t *testing.T) {
	sh := Need(t, "sh")
	t.Setenv("HTTP_PROXY", "http://proxy.invalid:3128")
	t.Setenv("ftp_proxy", "http://proxy.invalid:3128")
	t.Setenv("CLIENTTEST_DROP", "1")
	t.Setenv("CLIENTTEST_KEEP", "kept")
	r := Run(context.Background(), Cmd{
		Prog:  sh,
		Args:  []string{"-c", `env | sort; cat; pwd`},
		Stdin: "from stdin\n",
		Dir:   t.TempDir(),
		Env:   []string{"CLIENTTEST_EXTRA=x y"},
		Unset: []string{"clienttest_drop"},
	})
	if !r.OK() {
		t.Fatalf("run failed:\n%s", r)
	}
	env := map[string]string{}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	for _, k := range []string{"HTTP_PROXY", "ftp_proxy", "CLIENTTEST_DROP"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s=%s passed on", k, v)
		}
	}
	for k, want := range map[string]string{"CLIENTTEST_KEEP": "kept", "CLIENTTEST_EXTRA": "x y", "LC_ALL": "C", "TERM": "dumb"} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	if home := env["HOME"]; home == os.Getenv("HOME") || !strings.Contains(home, "clienttest-home-") {
		t.Errorf("HOME=%q, want a private directory", home)
	} else if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("private HOME %s left behind (%v)", home, err)
	}
	if !strings.Contains(r.Stdout, "from stdin\n") {
		t.Errorf("stdin not passed:\n%s", r)
	}
	if want := `CLIENTTEST_EXTRA='x y' ` + sh + ` -c 'env | sort; cat; pwd'`; r.Cmdline != want {
		t.Errorf("Cmdline %q, want %q", r.Cmdline, want)
	}
}

func TestRunExitAndTimeout(t *testing.T) {
	sh := Need(t, "sh")
	r := Run(context.Background(), Cmd{Prog: sh, Args: []string{"-c", "echo out; echo err >&2; exit 3"}})
	if r.OK() || r.Code != 3 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("exit 3: got %+v", r)
	}
	start := time.Now()
	r = Run(context.Background(), Cmd{Prog: sh, Args: []string{"-c", "exec sleep 20"}, Timeout: 200 * time.Millisecond})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout of 200ms took %v", d)
	}
	if r.OK() || r.Code != -1 || r.Err == nil || !strings.Contains(r.Err.Error(), "killed after 200ms") {
		t.Errorf("timed out run: code %d, err %v", r.Code, r.Err)
	}
	r = Run(context.Background(), Cmd{Prog: "clienttest-no-such-program"})
	if r.OK() || r.Err == nil || r.Code != -1 {
		t.Errorf("missing program: code %d, err %v", r.Code, r.Err)
	}
}

func TestRunWrap(t *testing.T) {
	env := Need(t, "env")
	r := Run(context.Background(), Cmd{Wrap: []string{env, "WRAPPED=yes"}, Prog: "sh", Args: []string{"-c", "echo $WRAPPED"}})
	if !r.OK() || r.Stdout != "yes\n" {
		t.Errorf("wrapped run:\n%s", r)
	}
	if want := env + " WRAPPED=yes sh -c 'echo $WRAPPED'"; r.Cmdline != want {
		t.Errorf("Cmdline %q, want %q", r.Cmdline, want)
	}
}

func TestLogBuffer(t *testing.T) {
	var b LogBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				fmt.Fprintf(&b, "w%d-%d\n", i, j)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
}
