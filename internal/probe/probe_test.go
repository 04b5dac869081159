package probe

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/diag/diagtest"
)

func TestParse227(t *testing.T) {
	tests := []struct {
		msg  string
		want string // "" for no address
	}{
		{"Entering Passive Mode (127,0,0,1,195,80).", "127.0.0.1:50000"},
		{"Entering Passive Mode 10,0,1,5,4,1", "10.0.1.5:1025"},
		{"=198,51,100,10,255,255", "198.51.100.10:65535"},
		{"Entering Passive Mode (256,0,0,1,1,1).", ""},
		{"Entering Passive Mode (1,2,3,4,5).", ""},
		{"Entering Extended Passive Mode (|||50000|)", ""},
	}
	for _, tt := range tests {
		got, ok := parse227(tt.msg)
		if (tt.want == "") == ok || (ok && got.String() != tt.want) {
			t.Errorf("parse227(%q) = %v, %v; want %q", tt.msg, got, ok, tt.want)
		}
	}
}

func TestParse229(t *testing.T) {
	tests := []struct {
		msg  string
		want uint16 // 0 for no port
	}{
		{"Entering Extended Passive Mode (|||50000|)", 50000},
		{"Entering Extended Passive Mode (!!!2121!)", 2121},
		{"(|||1|)", 1},
		{"Entering Extended Passive Mode (|||0|)", 0},
		{"Entering Extended Passive Mode (|||70000|)", 0},
		{"Entering Extended Passive Mode (|1|127.0.0.1|50000|)", 0},
		{"Entering Extended Passive Mode (|||50000)", 0},
		{"Entering Extended Passive Mode", 0},
		{"(", 0},
	}
	for _, tt := range tests {
		got, ok := parse229(tt.msg)
		if (tt.want == 0) == ok || got != tt.want {
			t.Errorf("parse229(%q) = %d, %v; want %d", tt.msg, got, ok, tt.want)
		}
	}
}

// fakeServer answers one control connection from a script: the greeting,
// then a reply for each command verb. It never opens data connections, so
// passive replies name whatever port the test chooses.
func fakeServer(t *testing.T, greeting string, replies map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tp := textproto.NewConn(c)
		if greeting != "" {
			tp.PrintfLine("%s", greeting)
		}
		for {
			line, err := tp.ReadLine()
			if err != nil {
				return
			}
			verb, _, _ := strings.Cut(line, " ")
			r, ok := replies[verb]
			if !ok {
				r = "502 Not implemented."
			}
			tp.PrintfLine("%s", r)
		}
	}()
	return ln.Addr().String()
}

// closedPort returns a loopback port nothing listens on.
func closedLoopbackPort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return uint16(port)
}

func probeT(t *testing.T, opts Options) *Report {
	t.Helper()
	if opts.StepTimeout == 0 {
		opts.StepTimeout = 2 * time.Second
	}
	r := Run(context.Background(), opts)
	var b strings.Builder
	r.WriteTo(&b)
	t.Logf("report:\n%s", b.String())
	return r
}

func TestConnectionRefused(t *testing.T) {
	port := closedLoopbackPort(t)
	r := probeT(t, Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	diagtest.Want(t, r.Checks, "connect", Fail, "connection refused", "nothing listens there")
	diagtest.Want(t, r.Checks, "greeting", Skipped)
	diagtest.Want(t, r.Checks, "EPSV", Skipped)
	if !r.Failed() {
		t.Error("Failed() = false")
	}
}

// A server that accepts and stays silent: what a listener expecting a
// PROXY protocol header does to a direct client.
func TestSilentServer(t *testing.T) {
	addr := fakeServer(t, "", nil)
	start := time.Now()
	r := probeT(t, Options{Addr: addr, StepTimeout: 300 * time.Millisecond})
	diagtest.Want(t, r.Checks, "greeting", Fail, "no greeting within 300ms", "PROXY protocol")
	diagtest.Want(t, r.Checks, "login", Skipped)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the probe took %s with a 300ms step timeout", d)
	}
}

func TestRefusedGreeting(t *testing.T) {
	addr := fakeServer(t, "421 Too many connections from your address.", nil)
	r := probeT(t, Options{Addr: addr})
	diagtest.Want(t, r.Checks, "greeting", Fail, "421 Too many connections")
}

// Passive ports nobody listens on: both data checks fail and say that the
// passive range is not reaching the server; PASV names the control
// address, so it is not the NAT diagnosis.
func TestClosedPassivePorts(t *testing.T) {
	port := closedLoopbackPort(t)
	addr := fakeServer(t, "220 fake", map[string]string{
		"USER": "331 Password.",
		"PASS": "230 In.",
		"PASV": fmt.Sprintf("227 Entering Passive Mode (127,0,0,1,%d,%d).", port>>8, port&0xff),
		"EPSV": fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)", port),
		"QUIT": "221 Bye.",
	})
	r := probeT(t, Options{Addr: addr, User: "u", Password: "p"})
	diagtest.Want(t, r.Checks, "login", OK)
	diagtest.Want(t, r.Checks, "PASV", Fail, "the control connection's address", "connection refused",
		fmt.Sprintf("nothing accepted on port %d", port))
	diagtest.Want(t, r.Checks, "EPSV", Fail, fmt.Sprintf("port %d", port), "connection refused")
	if len(r.PassivePorts) != 1 || r.PassivePorts[0] != port {
		t.Errorf("PassivePorts = %v, want [%d]", r.PassivePorts, port)
	}
}

func TestEPSVUnsupported(t *testing.T) {
	port := closedLoopbackPort(t)
	addr := fakeServer(t, "220 fake", map[string]string{
		"USER": "230 In.",
		"PASV": fmt.Sprintf("227 Entering Passive Mode (127,0,0,2,%d,%d).", port>>8, port&0xff),
		"LIST": "150 Here it comes.",
	})
	r := probeT(t, Options{Addr: addr})
	diagtest.Want(t, r.Checks, "login", OK)
	diagtest.Want(t, r.Checks, "EPSV", Warn, "502", "does not support EPSV")
	// 127.0.0.2 is refused, and so is the port on the control address.
	diagtest.Want(t, r.Checks, "PASV", Fail, "reply names 127.0.0.2", "to 127.0.0.1:", "connection refused")
}

// The NAT diagnosis itself needs a public control address, which only a
// network namespace gives (nattest); its wording is chosen here.
func TestPASVFixNamesTheNAT(t *testing.T) {
	tests := []struct {
		server, adv string
		want        string
	}{
		{"198.51.100.10", "10.77.0.10", `address = "aws"`},
		{"198.51.100.10", "10.77.0.10", `pasv_address=198.51.100.10`},
		{"10.77.0.10", "192.168.1.5", `address = "control"`},
	}
	for _, tt := range tests {
		p := &prober{server: netip.MustParseAddr(tt.server)}
		fix := p.unreachablePASVFix(netip.MustParseAddr(tt.adv))
		if !strings.Contains(fix, tt.want) {
			t.Errorf("server %s, PASV %s: fix %q lacks %q", tt.server, tt.adv, fix, tt.want)
		}
	}
}

func TestReportText(t *testing.T) {
	r := &Report{Target: "ftp.example.com:21", User: "alice", PassivePorts: []uint16{8192, 8193},
		Checks: []Check{
			{Step: "connect", Status: OK, Detail: "fine"},
			{Step: "PASV", Status: Fail, Detail: "line one\nline two", Fix: "do this"},
		}}
	var b strings.Builder
	r.WriteTo(&b)
	want := "probe ftp.example.com:21 as alice\n" +
		"ok    connect   fine\n" +
		"FAIL  PASV      line one\n" +
		"                line two\n" +
		"                fix: do this\n" +
		"passive ports seen: 8192, 8193\n" +
		"result: FAILED\n"
	if b.String() != want {
		t.Errorf("report text:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A 530 that refuses a clear-text login points to FTPS, in the words of
// several servers; a plain 530 points to the credentials.
func TestLoginRefusalNamesFTPS(t *testing.T) {
	tests := []struct{ reply, fix string }{
		{"530 Non-anonymous sessions must use encryption.", "--tls explicit"},
		{"530 TLS required: send AUTH TLS before logging in.", "--tls explicit"},
		{"530 Login incorrect.", "check the user name and password"},
	}
	for _, tt := range tests {
		addr := fakeServer(t, "220 fake", map[string]string{"USER": "331 Password.", "PASS": tt.reply})
		r := probeT(t, Options{Addr: addr, User: "u", Password: "p"})
		diagtest.Want(t, r.Checks, "login", Fail, tt.fix)
	}
}

// A server that never ends its greeting's continuation lines fails the
// probe quickly instead of filling its memory.
func TestEndlessReply(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line := []byte("220-" + strings.Repeat("x", 1000) + "\r\n")
		for {
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	r := probeT(t, Options{Addr: ln.Addr().String(), StepTimeout: 10 * time.Second})
	diagtest.Want(t, r.Checks, "greeting", Fail, "reply longer than 65536 bytes", "not an FTP server")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the probe took %s to give up", d)
	}
}
