package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/probe"
)

// TestServeDemo runs the README's first command in-process: serve with no
// config, read the printed password, log in, list; then probes it.
func TestServeDemo(t *testing.T) {
	if l, err := net.Listen("tcp", ":2121"); err != nil {
		t.Skipf("port 2121 busy: %v", err)
	} else {
		l.Close()
	}
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	exit := make(chan int, 1)
	go func() {
		exit <- runServe(ctx, nil, pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	password := ""
	re := regexp.MustCompile(`^\s+password\s+(\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			password = m[1]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if password == "" {
		t.Fatal("serve printed no demo password")
	}
	c, err := textproto.Dial("tcp", "127.0.0.1:2121")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, step := range []struct {
		cmd  string
		code int
	}{{"", 220}, {"USER demo", 331}, {"PASS " + password, 230}, {"PWD", 257}, {"QUIT", 221}} {
		if step.cmd != "" {
			c.PrintfLine("%s", step.cmd)
		}
		if _, msg, err := c.ReadResponse(step.code); err != nil {
			t.Fatalf("%q: %v %s", step.cmd, err, msg)
		}
	}
	if fi, err := os.Stat(filepath.Join("cloudftpd-data", "demo")); err != nil || !fi.IsDir() {
		t.Errorf("demo home not created: %v", err)
	}
	checkProbeCommand(t, "127.0.0.1:2121", password)
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("serve exited %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestInitCheckConfigDoctor(t *testing.T) {
	dir := t.TempDir()
	var out, errb strings.Builder
	if code := run([]string{"init", "--dir", dir}, nil, &out, &errb); code != 0 {
		t.Fatalf("init: %d %s", code, errb.String())
	}
	if code := run([]string{"init", "--dir", dir}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "exists") {
		t.Fatalf("second init did not refuse to overwrite: %d %s", code, errb.String())
	}
	cfg := filepath.Join(dir, "cloudftpd.toml")
	errb.Reset()
	if code := run([]string{"user", "add", "carol", "--config", cfg, "--password-stdin"}, strings.NewReader("pw\n"), &out, &errb); code != 0 {
		t.Fatalf("user add: %d %s", code, errb.String())
	}
	out.Reset()
	if code := run([]string{"check-config", "--config", cfg}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "1 user") {
		t.Fatalf("check-config: %d %q %s", code, out.String(), errb.String())
	}
	// doctor: the same config checked against this machine. Nothing in it
	// can fail here (a high port, a writable root); warnings depend on
	// the machine's addresses.
	out.Reset()
	if code := run([]string{"doctor", "--config", cfg}, nil, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "1 in "+filepath.Join(dir, "users.toml")) ||
		!strings.Contains(out.String(), "listener[0] PASV") || !strings.Contains(out.String(), "result: ok") {
		t.Fatalf("doctor: %d\n%s%s", code, out.String(), errb.String())
	}
	// A bad key is reported by name.
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[listener]]\naddress = \":21\"\npassive_ports = \"900-800\"\n[storage]\nroot = \"x\"\n"), 0o644)
	errb.Reset()
	if code := run([]string{"check-config", "--config", bad}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "listener[0].passive_ports") {
		t.Fatalf("bad config: %d %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"doctor", "--config", bad}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "listener[0].passive_ports") {
		t.Fatalf("doctor, bad config: %d %s", code, errb.String())
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out, errb strings.Builder
	if code := run([]string{"version"}, nil, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "cloudftpd ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	if code := run([]string{"frobnicate"}, nil, &out, &errb); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
	if code := run(nil, nil, &out, &errb); code != 2 {
		t.Errorf("no command exit %d", code)
	}
}

func TestProbeTarget(t *testing.T) {
	tests := []struct {
		arg      string
		addr     string
		tls      probe.TLSMode
		user     string
		password string // "-" for none given
		err      bool
	}{
		{"ftp.example.com", "ftp.example.com", probe.TLSOff, "", "-", false},
		{"10.0.0.1:2121", "10.0.0.1:2121", probe.TLSOff, "", "-", false},
		{"ftp://alice@ftp.example.com:2121/", "ftp.example.com:2121", probe.TLSOff, "alice", "-", false},
		{"ftp://alice:s3cret@[2001:db8::1]:21", "[2001:db8::1]:21", probe.TLSOff, "alice", "s3cret", false},
		{"ftp://alice:@h", "h", probe.TLSOff, "alice", "", false},
		{"ftpes://h", "h", probe.TLSExplicit, "", "-", false},
		{"ftps://h:990", "h:990", probe.TLSImplicit, "", "-", false},
		{"sftp://h", "", probe.TLSOff, "", "-", true},
		{"ftp://", "", probe.TLSOff, "", "-", true},
	}
	for _, tt := range tests {
		opts, pw, err := probeTarget(tt.arg)
		if (err != nil) != tt.err {
			t.Errorf("probeTarget(%q): error %v, want error %v", tt.arg, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		gotPW := "-"
		if pw != nil {
			gotPW = *pw
		}
		if opts.Addr != tt.addr || opts.TLS != tt.tls || opts.User != tt.user || gotPW != tt.password {
			t.Errorf("probeTarget(%q) = %+v, password %q; want addr %q tls %v user %q password %q",
				tt.arg, opts, gotPW, tt.addr, tt.tls, tt.user, tt.password)
		}
	}
}

// checkProbeCommand runs the probe command against the demo server: exit 0
// when everything passed, 1 with a wrong password, 2 for bad usage.
func checkProbeCommand(t *testing.T, addr, pw string) {
	t.Helper()
	var out, errOut strings.Builder
	if code := run([]string{"probe", "--user", "demo", "--password-stdin", addr}, strings.NewReader(pw+"\n"), &out, &errOut); code != 0 {
		t.Errorf("probe of the demo server: exit %d, want 0\n%s%s", code, out.String(), errOut.String())
	}
	for _, w := range []string{"ok    login", "ok    PASV", "ok    EPSV", "result: ok"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("probe output lacks %q:\n%s", w, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"probe", "ftp://demo:wrong@" + addr}, strings.NewReader(""), &out, &errOut); code != 1 {
		t.Errorf("probe with a wrong password: exit %d, want 1\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "FAIL  login") {
		t.Errorf("probe with a wrong password:\n%s", out.String())
	}
	for _, args := range [][]string{{"probe"}, {"probe", "--tls", "maybe", addr}, {"probe", "a", "b"}} {
		if code := run(args, strings.NewReader(""), &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestInitSystem: the packages' config (packaging/mkpkg writes it with
// "init --system") points at the paths the systemd unit may write.
func TestInitSystem(t *testing.T) {
	dir := t.TempDir()
	var out, errb strings.Builder
	if code := run([]string{"init", "--system", "--dir", dir}, nil, &out, &errb); code != 0 {
		t.Fatalf("init --system: %d %s", code, errb.String())
	}
	cfg, err := config.Load(filepath.Join(dir, "cloudftpd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Root != "/srv/ftp" || cfg.Server.StateDir != "/var/lib/cloudftpd" || cfg.Listeners[0].Address != "0.0.0.0:21" {
		t.Errorf("system layout: root %q, state_dir %q, address %q", cfg.Storage.Root, cfg.Server.StateDir, cfg.Listeners[0].Address)
	}
	if got := cfg.ControlSocket(); !strings.HasPrefix(got, "/var/lib/cloudftpd/") {
		t.Errorf("control socket %q is outside the state directory", got)
	}
}
