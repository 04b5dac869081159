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
)

// TestServeDemo runs the README's first command in-process: serve with no
// config, read the printed password, log in, list.
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

func TestInitAndCheckConfig(t *testing.T) {
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
	// A bad key is reported by name.
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[listener]]\naddress = \":21\"\npassive_ports = \"900-800\"\n[storage]\nroot = \"x\"\n"), 0o644)
	errb.Reset()
	if code := run([]string{"check-config", "--config", bad}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "listener[0].passive_ports") {
		t.Fatalf("bad config: %d %s", code, errb.String())
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
