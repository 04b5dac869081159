package nattest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

const (
	ftpPort      = "2121"
	passivePorts = "50000-50009"
	user         = "alice"
	password     = "alice-nat-secret"
)

// buildTimeout bounds "go build". It is longer than execTimeout: in CI the
// build cache may hold only the race-enabled packages of the test run.
const buildTimeout = 90 * time.Second

// buildServer builds cmd/cloudftpd into dir, with -race when the test
// binary has it, so both share the build cache.
func buildServer(t *testing.T, dir string) string {
	t.Helper()
	goProg := clienttest.Need(t, "go")
	bin := filepath.Join(dir, "cloudftpd")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	args = append(args, "github.com/cloudftpd/cloudftpd/cmd/cloudftpd")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goProg, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// ftpServer is one cloudftpd process running in the srv namespace.
type ftpServer struct {
	home   string                // alice's home on the server's disk
	log    *clienttest.LogBuffer // stdout and stderr
	config string                // the config file
}

// metricsPort serves the server's /metrics on 127.0.0.1 inside its
// namespace.
const metricsPort = "9121"

// metric scrapes the server's /metrics from inside its namespace and
// returns the value of one series ("" when it is missing).
func (s *ftpServer) metric(t *testing.T, tp *topology, series string) string {
	t.Helper()
	prog := clienttest.Need(t, "curl")
	r := tp.run(tp.srv, t.TempDir(), "", prog, "-sS", "--max-time", "5", "http://127.0.0.1:"+metricsPort+"/metrics")
	if !r.OK() {
		t.Fatalf("scraping /metrics: %s", r)
	}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// logLines returns the log lines containing every one of subs.
func (s *ftpServer) logLines(subs ...string) []string {
	var out []string
	for _, l := range strings.Split(s.log.String(), "\n") {
		match := true
		for _, sub := range subs {
			if !strings.Contains(l, sub) {
				match = false
				break
			}
		}
		if match && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// startServer runs bin in tp's srv namespace on 0.0.0.0:2121 with the
// given [[listener.passive]] rules (TOML text, may be empty) and a user
// alice, and waits until it accepts connections. The process gets SIGTERM
// when the test ends; its log is printed if the test failed.
func startServer(t *testing.T, tp *topology, bin, rules string) *ftpServer {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "data")
	s := &ftpServer{home: filepath.Join(root, user), log: &clienttest.LogBuffer{}}
	if err := os.MkdirAll(s.home, 0o755); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.toml")
	if r := runCmd(dir, password+"\n", bin, "user", "add", user, "--users", users, "--password-stdin"); !r.OK() {
		t.Fatalf("creating the user: %s", r)
	}
	cfg := fmt.Sprintf(`# written by internal/nattest
[server]
idle_timeout = "30s"
data_timeout = "10s"
stall_timeout = "20s"
login_failure_delay = "10ms"
shutdown_grace = "2s"

[[listener]]
address = "0.0.0.0:%s"
passive_ports = %q
%s
[storage]
backend = "local"
root = %q

[auth]
users_file = %q

[log]
level = "debug"

[metrics]
address = "127.0.0.1:%s"
`, ftpPort, passivePorts, rules, root, users, metricsPort)
	cfgFile := filepath.Join(dir, "cloudftpd.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.config = cfgFile
	runServer(t, tp, bin, s, srvAddr+":"+ftpPort)
	return s
}

// runServer starts cloudftpd with s.config in the srv namespace, stops it
// with SIGTERM when the test ends, and waits until it accepts on listen.
func runServer(t *testing.T, tp *topology, bin string, s *ftpServer, listen string) {
	t.Helper()
	cfgFile, dir := s.config, filepath.Dir(s.config)
	ctx, cancel := context.WithCancel(context.Background())
	// "ip netns exec" execs the program in place, so the signal reaches
	// cloudftpd itself.
	cmd := exec.CommandContext(ctx, tp.ip, "netns", "exec", tp.srv, bin, "serve", "--config", cfgFile)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second // then SIGKILL
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting cloudftpd: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
			// Wait reports the cancelled context even after a clean
			// exit; the exit status is what counts.
			if code := cmd.ProcessState.ExitCode(); code != 0 && !t.Failed() {
				t.Errorf("cloudftpd did not stop cleanly after SIGTERM: exit %d (%v)", code, waitErr)
			}
		case <-time.After(execTimeout):
			t.Errorf("cloudftpd did not exit %v after SIGTERM", execTimeout)
		}
		if t.Failed() {
			cfg, _ := os.ReadFile(cfgFile)
			t.Logf("cloudftpd config:\n%s\ncloudftpd log:\n%s", cfg, s.log)
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("cloudftpd exited at start-up (%v):\n%s", waitErr, s.log)
		default:
		}
		ok, r := tp.dialFrom(t, tp.srv, listen, time.Second)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cloudftpd does not accept connections on %s:\n%s\nlog:\n%s", listen, r, s.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// putFile writes a file into alice's home on the server's disk.
func (s *ftpServer) putFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.home, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readFile reads a file of alice's home from the server's disk.
func (s *ftpServer) readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.home, name))
	if err != nil {
		t.Fatalf("on the server: %v", err)
	}
	return b
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
