package server_test

// PROXY protocol: the client address a trusted balancer reports in its
// header must be the session's address everywhere (logs, the data
// connection check, max_sessions_per_ip), headers from anyone else must be
// refused, and a balancer connection without a header must not be served as
// if the balancer were the client. The last test puts a real HAProxy in
// front of the server.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
)

// balancerAddr is the address the "balancer" connects from in these tests;
// it is the only trusted one.
const balancerAddr = "127.0.0.1"

// proxyConfig turns on PROXY protocol for the test server's listener, trusting
// only balancerAddr; passive also reads headers on passive data connections.
func proxyConfig(passive bool, more func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		l := &c.Listeners[0]
		l.ProxyProtocol = true
		l.PassiveProxyProtocol = passive
		l.ProxyTrusted = []string{balancerAddr + "/32"}
		if more != nil {
			more(c)
		}
	}
}

// dialFrom opens a TCP connection to addr from the local address src (any
// 127/8 address works on Linux loopback).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// proxyV2 returns a PROXY v2 header announcing a TCP connection from
// client:clientPort to dst (host:port).
func proxyV2(t *testing.T, client string, clientPort int, dst string) []byte {
	t.Helper()
	host, port, err := net.SplitHostPort(dst)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	h := proxyproto.Header{
		Version:           2,
		Command:           proxyproto.PROXY,
		TransportProtocol: proxyproto.TCPv4,
		SourceAddr:        &net.TCPAddr{IP: net.ParseIP(client), Port: clientPort},
		DestinationAddr:   &net.TCPAddr{IP: net.ParseIP(host), Port: p},
	}
	var b bytes.Buffer
	if _, err := h.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// proxyV1 returns a PROXY v1 (text) header, the same announcement as proxyV2.
func proxyV1(t *testing.T, client string, clientPort int, dst string) []byte {
	t.Helper()
	host, port, err := net.SplitHostPort(dst)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, "PROXY TCP4 %s %s %d %s\r\n", client, host, clientPort, port)
}

// rawOver makes a rawClient of an open control connection and reads the
// greeting.
func rawOver(t *testing.T, c net.Conn) *rawClient {
	t.Helper()
	rc := &rawClient{t: t, conn: c, tp: textproto.NewConn(c)}
	rc.expect(220)
	return rc
}

// dialProxied connects from the balancer, sends header and reads the 220.
func dialProxied(t *testing.T, addr string, header []byte) *rawClient {
	t.Helper()
	c := dialFrom(t, balancerAddr, addr)
	if _, err := c.Write(header); err != nil {
		t.Fatal(err)
	}
	return rawOver(t, c)
}

// refusedQuietly fails the test unless the server closes (or resets) c
// within wait without having sent a single byte.
func refusedQuietly(t *testing.T, what string, c net.Conn, wait time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(c)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("%s: still open after %v (read %q), want it closed", what, wait, b)
	case len(b) > 0:
		t.Errorf("%s: server sent %q, want the connection closed without a reply", what, b)
	}
}

// pasvAddr sends PASV and returns the advertised data address.
func pasvAddr(rc *rawClient) string {
	rc.t.Helper()
	return parse227(rc.t, rc.must(227, "PASV")).String()
}

// epsvPort sends EPSV and returns the port of the 229 reply.
func epsvPort(rc *rawClient) string {
	rc.t.Helper()
	msg := rc.must(229, "EPSV")
	i, j := strings.Index(msg, "(|||"), strings.LastIndex(msg, "|)")
	if i < 0 || j < i {
		rc.t.Fatalf("bad 229 reply %q", msg)
	}
	return msg[i+4 : j]
}

// greetingRE matches a single-line 220 greeting at the start of a stream.
var greetingRE = regexp.MustCompile(`^220 [^\r\n]*\r\n`)

var sessionStartRE = regexp.MustCompile(`msg="session start".*?\bclient=(\S+)`)

// sessionClients lists the client address of every "session start" log line.
func sessionClients(logs string) []string {
	var out []string
	for _, m := range sessionStartRE.FindAllStringSubmatch(logs, -1) {
		out = append(out, m[1])
	}
	return out
}

// refusedFrom lists the "from" address of every refused data connection.
func refusedFrom(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, "data connection refused") {
			continue
		}
		if i := strings.Index(l, " from="); i >= 0 {
			out = append(out, strings.Fields(l[i+len(" from="):])[0])
		}
	}
	return out
}

func TestProxyProtocolControl(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client string
		header func(t *testing.T, client string, clientPort int, dst string) []byte
	}{
		{"v2", "127.0.0.2", proxyV2},
		{"v1", "127.0.0.3", proxyV1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, proxyConfig(false, func(c *config.Config) { c.Server.MaxSessionsPerIP = 1 }))
			payload := randomBytes(256<<10 + 3)
			ts.write("alice/hello.bin", payload)

			rc := dialProxied(t, ts.Addr, tc.header(t, tc.client, 40000, ts.Addr))
			rc.login("alice", "alice-secret")
			rc.must(200, "TYPE I")

			// PASV: the balancer's own address is not the client.
			data := pasvAddr(rc)
			refusedQuietly(t, "data connection from the balancer", dialFrom(t, balancerAddr, data), 5*time.Second)
			dc := dialFrom(t, tc.client, data)
			rc.must(150, "RETR hello.bin")
			if got := readAll(t, dc); !bytes.Equal(got, payload) {
				t.Fatalf("download from %s: %d bytes, sha256 %s; want %d bytes, sha256 %s",
					tc.client, len(got), shortHash(got), len(payload), shortHash(payload))
			}
			rc.expect(226)

			// EPSV upload from the client's address.
			port := epsvPort(rc)
			dc = dialFrom(t, tc.client, net.JoinHostPort("127.0.0.1", port))
			rc.stor(dc, "up.bin", payload)
			if !bytes.Equal(ts.read("alice/up.bin"), payload) {
				t.Fatal("uploaded file differs")
			}

			// max_sessions_per_ip = 1 counts the header's address: a second
			// session claiming the same client is turned away, one claiming
			// another client through the same balancer is not.
			c2 := dialFrom(t, balancerAddr, ts.Addr)
			c2.Write(tc.header(t, tc.client, 40001, ts.Addr))
			c2.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, _ := io.ReadAll(c2); !strings.HasPrefix(string(got), "421 ") {
				t.Errorf("second session from %s got %q, want 421", tc.client, got)
			}
			other := dialProxied(t, ts.Addr, tc.header(t, "127.0.0.4", 40002, ts.Addr))
			other.login("bob", "bob-secret")
			other.must(221, "QUIT")
			rc.must(221, "QUIT")

			waitFor(t, func() bool { return strings.Count(ts.logs.String(), `msg="session end"`) >= 2 })
			logs := ts.logs.String()
			if got, want := sessionClients(logs), []string{tc.client, "127.0.0.4"}; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("sessions logged for clients %q, want %q", got, want)
			}
			if got := refusedFrom(logs); len(got) != 1 || got[0] != balancerAddr {
				t.Errorf("refused data connections logged from %q, want [%s]", got, balancerAddr)
			}
			if !strings.Contains(logs, "connection refused") || !strings.Contains(logs, "client="+tc.client+" reason=") {
				t.Errorf("the 421 for %s is not logged with the header's address", tc.client)
			}
		})
	}
}

func TestProxyProtocolTrustPolicy(t *testing.T) {
	t.Run("trusted without header", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, proxyConfig(false, nil))
		// A balancer that forgot the header, with a client talking first,
		// and one that sends nothing (closed after the header timeout).
		talking := dialFrom(t, balancerAddr, ts.Addr)
		talking.Write([]byte("USER alice\r\n"))
		silent := dialFrom(t, balancerAddr, ts.Addr)
		refusedQuietly(t, "trusted connection sending a command first", talking, 5*time.Second)
		refusedQuietly(t, "silent trusted connection", silent, netpolicy.ProxyHeaderTimeout+5*time.Second)
		// Not served as the balancer: no session may carry its address.
		if got := sessionClients(ts.logs.String()); len(got) != 0 {
			t.Errorf("header-less balancer connections started sessions for clients %q, want none", got)
		}
	})
	t.Run("untrusted forged header", func(t *testing.T) {
		ts := startServer(t, proxyConfig(false, nil))
		// Connections from untrusted sources are not read for a header (so
		// direct clients are greeted at once): a forged header is only an
		// unknown command, and the address in it is never used.
		for name, header := range map[string][]byte{
			"v2": proxyV2(t, "127.0.0.6", 40000, ts.Addr),
			"v1": proxyV1(t, "127.0.0.6", 40000, ts.Addr),
		} {
			c := dialFrom(t, "127.0.0.5", ts.Addr)
			c.Write(header)
			c.Write([]byte("\r\nQUIT\r\n"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			got := string(b)
			if !strings.HasPrefix(got, "220 ") || !strings.Contains(got, "\r\n500 ") || !strings.HasSuffix(got, "221 Goodbye.\r\n") {
				t.Errorf("forged %s header from an untrusted source: got %q, want 220, 500 for the header, 221", name, got)
			}
		}
		logs := ts.logs.String()
		if strings.Contains(logs, "127.0.0.6") {
			t.Errorf("the forged address 127.0.0.6 reached the log")
		}
		if got := sessionClients(logs); len(got) != 2 || got[0] != "127.0.0.5" || got[1] != "127.0.0.5" {
			t.Errorf("sessions logged for %q, want the real address 127.0.0.5 twice", got)
		}
	})
	t.Run("untrusted without header", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, proxyConfig(false, nil))
		payload := randomBytes(64<<10 + 1)
		ts.write("alice/f.bin", payload)
		start := time.Now()
		rc := rawOver(t, dialFrom(t, "127.0.0.5", ts.Addr))
		// FTP servers speak first: a direct client sends nothing before
		// the greeting, so waiting for a header it will never send delays
		// every direct login.
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("direct (untrusted) client waited %v for 220, want it at once", d.Round(time.Millisecond))
		}
		rc.login("alice", "alice-secret")
		rc.must(200, "TYPE I")
		dc := dialFrom(t, "127.0.0.5", pasvAddr(rc))
		rc.must(150, "RETR f.bin")
		if got := readAll(t, dc); !bytes.Equal(got, payload) {
			t.Fatalf("download: %d bytes, want %d", len(got), len(payload))
		}
		rc.expect(226)
		if got := sessionClients(ts.logs.String()); len(got) != 1 || got[0] != "127.0.0.5" {
			t.Errorf("sessions logged for clients %q, want [127.0.0.5]", got)
		}
	})
}

func TestProxyProtocolPassive(t *testing.T) {
	ts := startServer(t, proxyConfig(true, nil))
	const client = "127.0.0.2"
	rc := dialProxied(t, ts.Addr, proxyV2(t, client, 40000, ts.Addr))
	rc.login("alice", "alice-secret")
	rc.must(200, "TYPE I")
	payload := randomBytes(1 << 20)

	data := pasvAddr(rc)
	// From the balancer without a header (it sends data at once, so the
	// header check fails at once).
	bare := dialFrom(t, balancerAddr, data)
	bare.Write([]byte("not a header"))
	refusedQuietly(t, "header-less data connection from the balancer", bare, 5*time.Second)
	// From the balancer with a header naming someone else.
	stranger := dialFrom(t, balancerAddr, data)
	stranger.Write(proxyV2(t, "127.0.0.7", 40001, data))
	refusedQuietly(t, "data connection for another client", stranger, 5*time.Second)
	// From the balancer with the client's header: accepted, and the header
	// is not part of the upload.
	dc := dialFrom(t, balancerAddr, data)
	if _, err := dc.Write(proxyV2(t, client, 40002, data)); err != nil {
		t.Fatal(err)
	}
	rc.must(150, "STOR up.bin")
	if _, err := dc.Write(payload); err != nil {
		t.Fatal(err)
	}
	dc.Close()
	rc.expect(226)
	sameFile(t, "upload through the balancer", filepath.Join(ts.Root, "alice", "up.bin"), payload)

	// Download over EPSV, header in v1 this time.
	data = net.JoinHostPort("127.0.0.1", epsvPort(rc))
	dc = dialFrom(t, balancerAddr, data)
	if _, err := dc.Write(proxyV1(t, client, 40003, data)); err != nil {
		t.Fatal(err)
	}
	rc.must(150, "RETR up.bin")
	if got := readAll(t, dc); !bytes.Equal(got, payload) {
		t.Fatalf("download through the balancer: %d bytes, sha256 %s; want %d bytes, sha256 %s",
			len(got), shortHash(got), len(payload), shortHash(payload))
	}
	rc.expect(226)

	if got := refusedFrom(ts.logs.String()); strings.Join(got, " ") != balancerAddr+" 127.0.0.7" {
		t.Errorf("refused data connections logged from %q, want [%s 127.0.0.7]", got, balancerAddr)
	}
}

func TestProxyProtocolSlowHeader(t *testing.T) {
	ts := startServer(t, proxyConfig(false, nil))
	silent := dialFrom(t, balancerAddr, ts.Addr)
	partial := dialFrom(t, balancerAddr, ts.Addr)
	partial.Write([]byte("PROXY TCP4 127.0.0."))
	// Both are now waiting for their headers; a third balancer connection
	// must not wait behind them.
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	c := dialFrom(t, balancerAddr, ts.Addr)
	c.Write(proxyV2(t, "127.0.0.2", 40000, ts.Addr))
	c.SetReadDeadline(time.Now().Add(time.Second))
	rc := rawOver(t, c)
	if d := time.Since(start); d >= time.Second {
		t.Errorf("220 after %v behind a silent balancer connection, want < 1s", d)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	rc.login("alice", "alice-secret")
	rc.must(257, "PWD")
	for name, c := range map[string]net.Conn{"silent": silent, "partial header": partial} {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if b, _ := c.Read(make([]byte, 64)); b > 0 {
			t.Errorf("%s connection got a reply before its header", name)
		}
	}
}

// ---- HAProxy ----

// haproxyConfig is the balancer in front of the server: TCP mode, PROXY v2
// to the server.
const haproxyConfig = `global
  log stdout format raw local0
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend ftp
  bind 127.0.0.1:%d
  default_backend cloudftpd
backend cloudftpd
  server s1 127.0.0.1:%s send-proxy-v2
`

// startHAProxy runs haproxy in the foreground in front of ts and returns
// its frontend address once it forwards connections.
func startHAProxy(t *testing.T, ts *testServer, client string) string {
	t.Helper()
	prog := clienttest.Need(t, "haproxy")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, port, ts.Port()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog, "-f", cfg, "-db")
	out := &clienttest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out)
		}
	})
	front := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Ready when a client gets the server's greeting through it.
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(client)}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %v\n%s", cmd.ProcessState, out)
		default:
		}
		if c, err := d.Dial("tcp", front); err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := textproto.NewReader(bufio.NewReader(c)).ReadLine()
			c.Write([]byte("QUIT\r\n"))
			c.Close()
			if err == nil && strings.HasPrefix(line, "220 ") {
				return front
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy on %s does not forward to the server\n%s", front, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// haproxyFTPLib drives the server through HAProxy with Python's ftplib,
// control and data connections from the source address given: STOR over
// PASV, LIST over PASV, RETR and LIST over EPSV.
const haproxyFTPLib = `
import ftplib, hashlib, json, sys, types

host, port, src, up = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
res = {}

def step(name, fn):
    try:
        res[name] = fn()
    except Exception as e:
        res[name] = {"error": "%s: %s" % (type(e).__name__, e)}

def sha(cmd):
    h = hashlib.sha256()
    ftp.retrbinary(cmd, h.update)
    return h.hexdigest()

def listing():
    out = []
    ftp.retrlines("LIST", out.append)
    return out

def stor():
    with open(up, "rb") as f:
        return ftp.storbinary("STOR py.bin", f)

ftp = ftplib.FTP()
step("welcome", lambda: ftp.connect(host, port, timeout=10, source_address=(src, 0)))
step("login", lambda: ftp.login("alice", "alice-secret"))
step("pasv_stor", stor)
step("pasv_list", listing)
step("pasv_retr_sha256", lambda: sha("RETR py.bin"))

def epsv(self):
    resp = self.sendcmd("EPSV")
    res.setdefault("epsv_replies", []).append(resp)
    return ftplib.parse229(resp, self.sock.getpeername())
ftp.makepasv = types.MethodType(epsv, ftp)
step("epsv_list", listing)
step("epsv_retr_sha256", lambda: sha("RETR py.bin"))
step("quit", ftp.quit)
print(json.dumps(res))
`

func TestHAProxy(t *testing.T) {
	clienttest.Need(t, "haproxy")
	python := clienttest.Need(t, "python3")
	curl := clienttest.Need(t, "curl")
	const client = "127.0.0.9"
	ts := startServer(t, proxyConfig(false, nil))
	front := startHAProxy(t, ts, client)
	_, frontPort, _ := net.SplitHostPort(front)
	work := t.TempDir()
	payload := randomBytes(2<<20 + 5)
	sum := hex.EncodeToString(sha256Of(payload))
	up := filepath.Join(work, "up.bin")
	if err := os.WriteFile(up, payload, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("ftplib", func(t *testing.T) {
		script := filepath.Join(work, "drive.py")
		if err := os.WriteFile(script, []byte(haproxyFTPLib), 0o644); err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, work, "", python, script, "127.0.0.1", frontPort, client, up)
		var res map[string]any
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			t.Fatalf("script output: %v\n%s", err, r)
		}
		for _, tc := range []struct{ step, want string }{
			{"welcome", `"220 `},
			{"login", `"230 `},
			{"pasv_stor", `"226 `},
			{"pasv_retr_sha256", js(sum)},
			{"epsv_retr_sha256", js(sum)},
			{"quit", `"221 `},
		} {
			if got := js(res[tc.step]); !strings.HasPrefix(got, tc.want) {
				t.Errorf("%s: got %s, want %s", tc.step, got, tc.want)
			}
		}
		if got := js(res["epsv_replies"]); strings.Count(got, `"229 `) != 2 {
			t.Errorf("EPSV replies %s, want two 229s", got)
		}
		for _, step := range []string{"pasv_list", "epsv_list"} {
			if got := js(res[step]); !strings.Contains(got, "py.bin") || !strings.Contains(got, strconv.Itoa(len(payload))) {
				t.Errorf("%s: got %s, want a line for py.bin with its size", step, got)
			}
		}
		sameFile(t, "ftplib upload", filepath.Join(ts.Root, "alice", "py.bin"), payload)
	})

	t.Run("curl", func(t *testing.T) {
		base := "ftp://alice:alice-secret@" + front + "/"
		args := []string{"-sS", "--max-time", "20", "--interface", client}
		// Upload over PASV, list and download over EPSV (curl's default).
		// curl -v shows the commands it sent as "> EPSV".
		usedMode := func(r clienttest.Result, verb string) {
			t.Helper()
			if !strings.Contains(r.Stderr, "> "+verb+"\r\n") && !strings.Contains(r.Stderr, "> "+verb+"\n") {
				t.Errorf("curl did not send %s:\n%s", verb, r.Stderr)
			}
		}
		r := mustRun(t, work, "", curl, append(args, "-v", "--disable-epsv", "-T", up, base+"curl.bin")...)
		usedMode(r, "PASV")
		sameFile(t, "curl upload", filepath.Join(ts.Root, "alice", "curl.bin"), payload)
		r = mustRun(t, work, "", curl, append(args, "-v", base)...)
		usedMode(r, "EPSV")
		if !strings.Contains(r.Stdout, "curl.bin") {
			t.Errorf("curl listing lacks curl.bin:\n%s", r.Stdout)
		}
		r = mustRun(t, work, "", curl, append(args, "-l", base)...)
		if names := lines(r.Stdout); !slices.Contains(names, "curl.bin") {
			t.Errorf("curl NLST: %q, want curl.bin among them", names)
		}
		r = mustRun(t, work, "", curl, append(args, "-v", "-o", "down.bin", base+"curl.bin")...)
		usedMode(r, "EPSV")
		sameFile(t, "curl download", filepath.Join(work, "down.bin"), payload)
	})

	waitFor(t, func() bool { return ts.srv.SessionCount() == 0 })
	logs := ts.logs.String()
	clients := sessionClients(logs)
	if len(clients) < 5 {
		t.Errorf("%d sessions logged, want at least 5 (probe, ftplib, curl x4)", len(clients))
	}
	for _, c := range clients {
		if c != client {
			t.Errorf("session logged for client %s, want every session from %s (the address HAProxy reports)", c, client)
		}
	}
	if got := refusedFrom(logs); len(got) > 0 {
		t.Errorf("data connections refused from %q", got)
	}
}
