package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// testServer is a running in-process cloudftpd with one listener on
// 127.0.0.1 and users created by the test.
type testServer struct {
	t       *testing.T
	srv     *server.Server
	cfg     *config.Config // the config served; reload replaces it
	Addr    string         // host:port of the control listener
	Root    string         // storage root on disk (local backend; unused with S3)
	backend backend
	store   store // the files the server stores, for the test to set up and check
	logs    *clienttest.LogBuffer
}

// testUser is a user of every test server.
type testUser struct {
	name, password, home string
	perms                []string
}

var defaultUsers = []testUser{
	{"alice", "alice-secret", "alice", []string{"all"}},
	{"reader", "reader-secret", "alice", []string{"read"}},
	{"drop", "drop-secret", "dropbox", []string{"dropbox"}},
	{"bob", "bob-secret", "bob", []string{"all"}},
}

// hashes caches the slow password hashes across tests.
var hashes sync.Map

func hashFor(t *testing.T, pw string) string {
	if h, ok := hashes.Load(pw); ok {
		return h.(string)
	}
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	hashes.Store(pw, h)
	return h
}

// startServer starts a server on local storage; mutate may change the
// config first.
func startServer(t *testing.T, mutate func(*config.Config)) *testServer {
	t.Helper()
	return startServerOn(t, localDisk, mutate)
}

// startServerOn starts a server storing its files in b (for S3, in a new
// bucket on a server of its own); mutate may change the config first.
func startServerOn(t *testing.T, b backend, mutate func(*config.Config)) *testServer {
	t.Helper()
	return startServerWith(t, b, mutate, server.Options{})
}

// startServerWith is startServerOn with options (the logger is the
// harness's).
func startServerWith(t *testing.T, b backend, mutate func(*config.Config), opts server.Options) *testServer {
	t.Helper()
	root := t.TempDir()
	usersFile := filepath.Join(t.TempDir(), "users.toml")
	cfgText := fmt.Sprintf(`
[server]
idle_timeout = "30s"
data_timeout = "5s"
stall_timeout = "10s"
login_failure_delay = "10ms"
max_login_failures = 3

[[listener]]
address = "127.0.0.1:0"

[storage]
backend = "local"
root = %q

[auth]
users_file = %q
`, root, usersFile)
	cfg, err := config.Parse([]byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	var st store = diskStore{root: root}
	if b.isS3() {
		st = useS3(t, cfg, b.s3(t, s3Bucket))
	}
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	uf := &auth.UsersFile{}
	for _, u := range defaultUsers {
		p, err := auth.ParsePermissions(u.perms)
		if err != nil {
			t.Fatal(err)
		}
		if err := uf.Add(u.name, hashFor(t, u.password), u.home, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := uf.Save(usersFile); err != nil {
		t.Fatal(err)
	}
	logs := &clienttest.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Logger = logger
	srv, err := server.New(t.Context(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv, cfg: cfg, Addr: srv.Addrs()[0].String(), Root: root, backend: b, store: st, logs: logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ts
}

// reload applies a copy of the served config, changed by mutate, to the
// running server, as SIGHUP does with the re-read file.
func (ts *testServer) reload(mutate func(*config.Config)) {
	ts.t.Helper()
	next := cloneConfig(ts.cfg)
	if mutate != nil {
		mutate(next)
	}
	if err := ts.srv.Reload(ts.t.Context(), next); err != nil {
		ts.t.Fatalf("Reload: %v", err)
	}
	ts.cfg = next
}

// cloneConfig copies c deeply enough that changing the copy leaves c
// alone: a reloaded config is always a new one, never the served one
// changed in place.
func cloneConfig(c *config.Config) *config.Config {
	n := *c
	n.Listeners = slices.Clone(c.Listeners)
	for i := range n.Listeners {
		l := &n.Listeners[i]
		l.Passive = slices.Clone(l.Passive)
		for j := range l.Passive {
			l.Passive[j].Clients = slices.Clone(l.Passive[j].Clients)
		}
		l.ProxyTrusted = slices.Clone(l.ProxyTrusted)
		if l.ActiveMode != nil {
			v := *l.ActiveMode
			l.ActiveMode = &v
		}
	}
	return &n
}

// Port is the control port.
func (ts *testServer) Port() string {
	_, p, _ := net.SplitHostPort(ts.Addr)
	return p
}

// write stores a file (rel is "home/path"), creating its directories.
func (ts *testServer) write(rel string, data []byte) {
	ts.t.Helper()
	ts.store.write(ts.t, rel, data)
}

// read returns a stored file, failing the test when there is none.
func (ts *testServer) read(rel string) []byte {
	ts.t.Helper()
	b, ok := ts.store.read(ts.t, rel)
	if !ok {
		ts.t.Fatalf("%s does not exist", rel)
	}
	return b
}

// testLogWriter sends server logs to the test log, shown on failure.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rawClient speaks FTP by hand so tests see exact reply codes.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
	// dataFrom is the local address pasv and epsv dial data connections
	// from (any 127/8 address works on Linux loopback); "" lets the
	// kernel choose.
	dataFrom string
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	rc := &rawClient{t: t, conn: c, tp: textproto.NewConn(c)}
	t.Cleanup(func() { c.Close() })
	rc.expect(220)
	return rc
}

// cmd sends a command and returns the reply.
func (rc *rawClient) cmd(format string, args ...any) (int, string) {
	rc.t.Helper()
	if err := rc.tp.PrintfLine(format, args...); err != nil {
		rc.t.Fatalf("send %q: %v", format, err)
	}
	return rc.read()
}

func (rc *rawClient) read() (int, string) {
	rc.t.Helper()
	code, msg, err := rc.tp.ReadResponse(0)
	if err != nil && code == 0 {
		rc.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

// expect reads a reply and checks its code.
func (rc *rawClient) expect(want int) string {
	rc.t.Helper()
	code, msg := rc.read()
	if code != want {
		rc.t.Fatalf("got %d %q, want %d", code, msg, want)
	}
	return msg
}

// must sends a command and checks the reply code.
func (rc *rawClient) must(want int, format string, args ...any) string {
	rc.t.Helper()
	code, msg := rc.cmd(format, args...)
	if code != want {
		rc.t.Fatalf("%s: got %d %q, want %d", fmt.Sprintf(format, args...), code, msg, want)
	}
	return msg
}

func (rc *rawClient) login(user, pass string) {
	rc.t.Helper()
	rc.must(331, "USER %s", user)
	rc.must(230, "PASS %s", pass)
}

// stor uploads data as name over the data connection dc, which it closes,
// and expects the transfer to succeed.
func (rc *rawClient) stor(dc net.Conn, name string, data []byte) {
	rc.t.Helper()
	rc.must(150, "STOR %s", name)
	if _, err := dc.Write(data); err != nil {
		rc.t.Fatalf("STOR %s: %v", name, err)
	}
	dc.Close()
	rc.expect(226)
}

// jailRefuses sends command, for which the data connection dc is open,
// and fails the test unless the server refuses it with 550; when it does
// not, what it sent is in the message.
func (rc *rawClient) jailRefuses(dc net.Conn, command string) {
	rc.t.Helper()
	code, msg := rc.cmd("%s", command)
	if code == 150 {
		got := readAll(rc.t, dc)
		rc.read()
		rc.t.Errorf("%s escaped the jail: %q", command, got)
		return
	}
	dc.Close()
	if code != 550 {
		rc.t.Errorf("%s: %d %q, want 550", command, code, msg)
	}
}

// pasv sends PASV and dials the advertised data address.
func (rc *rawClient) pasv() net.Conn {
	rc.t.Helper()
	msg := rc.must(227, "PASV")
	ap := parse227(rc.t, msg)
	return rc.dialData(ap.String())
}

// dialData opens a data connection to addr from rc.dataFrom.
func (rc *rawClient) dialData(addr string) net.Conn {
	rc.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rc.dataFrom != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(rc.dataFrom)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		rc.t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// epsv sends EPSV and dials the control host on the returned port.
func (rc *rawClient) epsv() net.Conn {
	rc.t.Helper()
	msg := rc.must(229, "EPSV")
	i := strings.Index(msg, "(|||")
	j := strings.LastIndex(msg, "|)")
	if i < 0 || j < i {
		rc.t.Fatalf("bad 229 reply %q", msg)
	}
	port := msg[i+4 : j]
	host, _, _ := net.SplitHostPort(rc.conn.RemoteAddr().String())
	return rc.dialData(net.JoinHostPort(host, port))
}

func parse227(t *testing.T, msg string) netip.AddrPort {
	t.Helper()
	i, j := strings.Index(msg, "("), strings.Index(msg, ")")
	if i < 0 || j < i {
		t.Fatalf("bad 227 reply %q", msg)
	}
	f := strings.Split(msg[i+1:j], ",")
	if len(f) != 6 {
		t.Fatalf("bad 227 reply %q", msg)
	}
	var n [6]byte
	for k, s := range f {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("bad 227 reply %q", msg)
		}
		n[k] = byte(v)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(n[:4])), uint16(n[4])<<8|uint16(n[5]))
}

// readAll reads a data connection to EOF.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	defer c.Close()
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveUntilCleanup starts srv and shuts it down when the test ends.
func serveUntilCleanup(t *testing.T, srv *server.Server) {
	t.Helper()
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
}
