package ftp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

// The session harness: one Session served over an in-memory control
// connection (memPipe), storing files in memstore and logging in users
// from harnessUsers, so that protocol tests need neither the disk nor a
// listening control socket. Data connections are real loopback TCP
// through a netpolicy.PortPool on 127.0.0.1, as the server builds them.
//
//	h := newHarness(t, harnessOpts{})
//	h.login()
//	h.expect(257, "MKD d")
//	h.stor("d/f", "data")
//	got := h.retr("d/f")

// harnessUsers log in with the password name+"-pw". Their permissions
// cover every refusal the handlers make.
var harnessUsers = []struct {
	name, home string
	perms      auth.Permissions
	tls        string // per-user control TLS override
}{
	{"alice", "alice", allPerms, ""},
	{"reader", "alice", auth.PermList | auth.PermDownload, ""},
	{"drop", "drop", auth.PermUpload, ""},
	// limited may list, download and upload new files, nothing else:
	// no overwrite, delete, rename, mkdir or chmod.
	{"limited", "alice", auth.PermList | auth.PermDownload | auth.PermUpload, ""},
	// mover may rename but not overwrite: RNTO onto a file is refused.
	{"mover", "alice", auth.PermList | auth.PermRename, ""},
	{"secure", "secure", allPerms, "required"},
}

const allPerms = auth.PermList | auth.PermDownload | auth.PermUpload | auth.PermOverwrite |
	auth.PermDelete | auth.PermRename | auth.PermMkdir | auth.PermChmod

// harnessUsersFile hashes the passwords once per test binary, with bcrypt
// at its minimum cost: auth accepts bcrypt, and argon2id's 19 MiB per
// hash would dominate the run.
var harnessUsersFile = sync.OnceValues(func() (*auth.UsersFile, error) {
	uf := &auth.UsersFile{}
	for _, u := range harnessUsers {
		h, err := bcrypt.GenerateFromPassword([]byte(u.name+"-pw"), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		if err := uf.Add(u.name, string(h), u.home, u.perms); err != nil {
			return nil, err
		}
	}
	return uf, nil
})

// harnessAuth adds the per-user TLS overrides that UsersFile.Add cannot
// set to a FileAuthenticator.
type harnessAuth struct {
	*auth.FileAuthenticator
}

func userTLS(name string) string {
	for _, u := range harnessUsers {
		if u.name == name {
			return u.tls
		}
	}
	return ""
}

func (a harnessAuth) ControlTLSPolicy(name string) string { return userTLS(name) }

func (a harnessAuth) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	u, err := a.FileAuthenticator.Authenticate(ctx, name, password)
	if u != nil {
		u.TLS = userTLS(name)
	}
	return u, err
}

// harnessOpts adjusts a harness; the zero value is a plain session with
// every storage capability, active mode allowed and no anonymous login.
type harnessOpts struct {
	// tls, when set, enables FTPS with a test certificate; it may then
	// change the policy (Implicit, RequireData, AllowCCC, ...).
	tls func(*TLSPolicy)
	// config changes the session's Config last.
	config func(*Config)
	// client is the client's address (default 127.0.0.1); data
	// connections only work from 127.0.0.1.
	client    netip.Addr
	anonymous bool
	caps      *storage.Capabilities
}

// harness is one session and its client.
type harness struct {
	t    *testing.T
	fs   *memstore.Backend
	cfg  *Config
	sess *Session
	pool *netpolicy.PortPool
	raw  *memConn // client end of the control connection
	conn net.Conn // raw, or TLS over it
	tp   *textproto.Conn
	done chan struct{} // closed when Serve has returned
	logs *clienttest.LogBuffer

	clientTLS *tls.Config // when TLS is configured
	protP     bool        // wrap data connections in TLS

}

// replyTimeout bounds every wait for a reply, so a hang fails the test
// instead of the whole binary.
const replyTimeout = 5 * time.Second

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	fs := memstore.New()
	if o.caps != nil {
		fs.SetCapabilities(*o.caps)
	}
	logs := &clienttest.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pool, err := netpolicy.NewPortPool(netip.MustParseAddr("127.0.0.1"), 0, 0, logger)
	if err != nil {
		t.Fatal(err)
	}
	uf, err := harnessUsersFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{
		Banner:            "cloudftpd test",
		IdleTimeout:       10 * time.Second,
		DataTimeout:       2 * time.Second,
		StallTimeout:      2 * time.Second,
		LoginTimeout:      10 * time.Second,
		MaxLoginFailures:  3,
		LoginFailureDelay: 0, // the delay itself is not under test; speed is
		Auth:              harnessAuth{auth.NewFileAuthenticator(uf, auth.Options{Anonymous: o.anonymous, Logger: logger})},
		Storage:           fs,
		Network:           &netpolicy.Policy{Ports: pool, ActiveAllowed: true},
		Logger:            logger,
	}
	h := &harness{t: t, fs: fs, cfg: cfg, pool: pool, done: make(chan struct{}), logs: logs}
	if o.tls != nil {
		cert, pool, err := testCert()
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLS = TLSPolicy{Config: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
		o.tls(&cfg.TLS)
		h.clientTLS = &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	}
	if o.config != nil {
		o.config(cfg)
	}
	client := o.client
	if !client.IsValid() {
		client = netip.MustParseAddr("127.0.0.1")
	}
	c, s := memPipe()
	h.raw, h.conn = c, c
	h.sess = NewSession(cfg, s, client, netip.MustParseAddr("127.0.0.1"))
	go func() {
		defer close(h.done)
		h.sess.Serve()
	}()
	t.Cleanup(h.cleanup)
	if cfg.TLS.Implicit {
		tc := tls.Client(c, h.clientTLS)
		c.SetDeadline(time.Now().Add(replyTimeout))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("implicit TLS handshake: %v", err)
		}
		h.conn, h.protP = tc, true
	}
	h.tp = textproto.NewConn(h.conn)
	h.expectReply(220)
	return h
}

// cleanup ends the session and checks that it released everything it
// took from storage: homes, readers and uploads.
func (h *harness) cleanup() {
	h.raw.Close()
	select {
	case <-h.done:
	case <-time.After(replyTimeout):
		h.t.Error("session did not end after the client closed the control connection")
	}
	h.pool.Close()
	if u := h.fs.InUse(); u != (memstore.Usage{}) {
		h.t.Errorf("storage still in use after the session ended: %+v", u)
	}
	if h.t.Failed() {
		h.t.Logf("server log:\n%s", h.logs.String())
	}
}

// send writes one raw command line (CRLF added) without reading a reply.
func (h *harness) send(line string) {
	h.t.Helper()
	if err := h.tp.PrintfLine("%s", line); err != nil {
		h.t.Fatalf("send %q: %v", line, err)
	}
}

// read returns the next reply; multi-line replies come as one message
// with lines joined by "\n".
func (h *harness) read() (int, string) {
	h.t.Helper()
	h.raw.SetReadDeadline(time.Now().Add(replyTimeout))
	code, msg, err := h.tp.ReadResponse(0)
	if err != nil {
		h.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

// cmd sends a command and returns its reply.
func (h *harness) cmd(line string) (int, string) {
	h.t.Helper()
	h.send(line)
	code, msg := h.read()
	record(line, code)
	return code, msg
}

// expect sends a command and fails the test unless the reply has code.
func (h *harness) expect(code int, line string) string {
	h.t.Helper()
	got, msg := h.cmd(line)
	if got != code {
		h.t.Fatalf("%q: reply %d %q, want %d", line, got, msg, code)
	}
	return msg
}

// expectReply reads a reply that must have code.
func (h *harness) expectReply(code int) string {
	h.t.Helper()
	got, msg := h.read()
	if got != code {
		h.t.Fatalf("reply %d %q, want %d", got, msg, code)
	}
	return msg
}

// step is one command of a script and what its reply must be: the code,
// and text the reply must contain when want is not empty.
type step struct {
	line string
	code int
	want string
}

// script runs steps in order, failing the test at the first reply that
// does not match.
func (h *harness) script(steps ...step) {
	h.t.Helper()
	for _, s := range steps {
		code, msg := h.cmd(s.line)
		if code != s.code || !strings.Contains(msg, s.want) {
			if s.want != "" {
				h.t.Fatalf("%q: reply %d %q, want %d containing %q", s.line, code, msg, s.code, s.want)
			}
			h.t.Fatalf("%q: reply %d %q, want %d", s.line, code, msg, s.code)
		}
	}
}

// login logs in as alice, who may do everything.
func (h *harness) login() { h.t.Helper(); h.loginAs("alice") }

func (h *harness) loginAs(name string) {
	h.t.Helper()
	h.expect(331, "USER "+name)
	h.expect(230, "PASS "+name+"-pw")
}

// closed waits for the server to close the control connection.
func (h *harness) closed() {
	h.t.Helper()
	select {
	case <-h.done:
	case <-time.After(replyTimeout):
		h.t.Fatal("the server did not close the session")
	}
	h.raw.SetReadDeadline(time.Now().Add(replyTimeout))
	if rest, _ := io.ReadAll(h.tp.R); len(rest) > 0 {
		h.t.Errorf("unread replies after the session ended: %q", rest)
	}
}

// file returns the content of path in the backend ("alice/f"), failing
// when there is none.
func (h *harness) file(path string) string {
	h.t.Helper()
	b, err := h.fs.ReadFile(path)
	if err != nil {
		h.t.Fatalf("ReadFile(%s): %v", path, err)
	}
	return string(b)
}

// stat describes path in the backend ("alice/f"), failing when that is
// not possible.
func (h *harness) stat(path string) storage.FileInfo {
	h.t.Helper()
	home, rest, _ := strings.Cut(path, "/")
	s, err := h.fs.Home(h.t.Context(), home)
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	fi, err := s.Stat(h.t.Context(), "/"+rest)
	if err != nil {
		h.t.Fatalf("Stat(%s): %v", path, err)
	}
	return fi
}

// exists reports whether path ("alice/f") is in the backend.
func (h *harness) exists(path string) bool {
	h.t.Helper()
	home, rest, _ := strings.Cut(path, "/")
	s, err := h.fs.Home(h.t.Context(), home)
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Stat(h.t.Context(), "/"+rest)
	return err == nil
}

// put stores a file in the backend ("alice/f") for a test to work on.
func (h *harness) put(path, data string) {
	h.t.Helper()
	if err := h.fs.WriteFile(path, []byte(data)); err != nil {
		h.t.Fatal(err)
	}
}

// epsv asks for a passive port with EPSV and returns the address to dial.
func (h *harness) epsv() string {
	h.t.Helper()
	msg := h.expect(229, "EPSV")
	_, rest, ok := strings.Cut(msg, "(|||")
	port, _, ok2 := strings.Cut(rest, "|)")
	if !ok || !ok2 {
		h.t.Fatalf("cannot parse EPSV reply %q", msg)
	}
	return "127.0.0.1:" + port
}

// pasv asks for a passive port with PASV and returns the address to dial.
func (h *harness) pasv() string {
	h.t.Helper()
	msg := h.expect(227, "PASV")
	_, rest, ok := strings.Cut(msg, "(")
	nums, _, ok2 := strings.Cut(rest, ")")
	var a [6]int
	if n, err := fmt.Sscanf(nums, "%d,%d,%d,%d,%d,%d", &a[0], &a[1], &a[2], &a[3], &a[4], &a[5]); !ok || !ok2 || n != 6 || err != nil {
		h.t.Fatalf("cannot parse PASV reply %q", msg)
	}
	return fmt.Sprintf("%d.%d.%d.%d:%d", a[0], a[1], a[2], a[3], a[4]<<8|a[5])
}

// dial opens a data connection to addr; it is closed when the test ends.
func (h *harness) dial(addr string) net.Conn {
	h.t.Helper()
	c, err := net.DialTimeout("tcp4", addr, replyTimeout)
	if err != nil {
		h.t.Fatalf("dial data port %s: %v", addr, err)
	}
	h.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(replyTimeout))
	return c
}

// dataResult is how a data command went.
type dataResult struct {
	first int    // reply to the command: 150, or a refusal
	code  int    // final reply after 150; first again when refused
	msg   string // text of the last reply
	data  string // what a download or listing sent
}

// xfer runs a data command over a new EPSV connection. When the command
// is accepted (150), it sends upload (if not nil) or reads what the
// server sends, closes the data connection and reads the final reply.
func (h *harness) xfer(line string, upload *string) dataResult {
	h.t.Helper()
	addr := h.epsv()
	return h.xferWith(line, upload, func() net.Conn { return h.dial(addr) })
}

// xferWith is xfer with the data connection made by connect, called once
// the server has answered 150 (after PASV, EPSV, PORT or EPRT).
func (h *harness) xferWith(line string, upload *string, connect func() net.Conn) dataResult {
	h.t.Helper()
	first, msg := h.cmd(line)
	if first != 150 {
		return dataResult{first: first, code: first, msg: msg}
	}
	data := connect()
	if h.protP {
		tc := tls.Client(data, h.clientTLS)
		if err := tc.Handshake(); err != nil {
			h.t.Fatalf("%s: TLS handshake on the data connection: %v", line, err)
		}
		data = tc
	}
	var got []byte
	var err error
	if upload != nil {
		_, err = io.WriteString(data, *upload)
	} else {
		got, err = io.ReadAll(data)
	}
	data.Close()
	code, msg := h.read()
	record(line, code)
	if err != nil && code == 226 {
		h.t.Errorf("%s: data connection: %v, yet the reply is %d %q", line, err, code, msg)
	}
	return dataResult{first: first, code: code, msg: msg, data: string(got)}
}

// active listens on 127.0.0.1 for an active-mode data connection; accept
// returns the server's connection to it.
func (h *harness) active() (port int, accept func() net.Conn) {
	h.t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port, func() net.Conn {
		ln.(*net.TCPListener).SetDeadline(time.Now().Add(replyTimeout))
		c, err := ln.Accept()
		if err != nil {
			h.t.Fatalf("accept active data connection: %v", err)
		}
		h.t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(replyTimeout))
		return c
	}
}

// stor uploads data and fails the test unless the upload succeeds.
func (h *harness) stor(path, data string) {
	h.t.Helper()
	if r := h.xfer("STOR "+path, &data); r.code != 226 {
		h.t.Fatalf("STOR %s: %d %q, want 226", path, r.code, r.msg)
	}
}

// retr downloads path and fails the test unless that succeeds.
func (h *harness) retr(path string) string {
	h.t.Helper()
	r := h.xfer("RETR "+path, nil)
	if r.code != 226 {
		h.t.Fatalf("RETR %s: %d %q, want 226", path, r.code, r.msg)
	}
	return r.data
}

// list runs a listing command ("LIST -la d", "NLST", "MLSD d") and returns
// its lines, failing the test unless it succeeds.
func (h *harness) list(line string) []string {
	h.t.Helper()
	r := h.xfer(line, nil)
	if r.code != 226 {
		h.t.Fatalf("%s: %d %q, want 226", line, r.code, r.msg)
	}
	return splitLines(r.data)
}

// splitLines splits CRLF-terminated lines.
func splitLines(s string) []string {
	lines := strings.Split(s, "\r\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	return lines
}

// startTLS runs AUTH TLS and the handshake on the control connection.
func (h *harness) startTLS() {
	h.t.Helper()
	h.expect(234, "AUTH TLS")
	tc := tls.Client(h.raw, h.clientTLS)
	h.raw.SetDeadline(time.Now().Add(replyTimeout))
	if err := tc.Handshake(); err != nil {
		h.t.Fatalf("TLS handshake: %v", err)
	}
	h.raw.SetDeadline(time.Time{})
	h.conn = tc
	h.tp = textproto.NewConn(tc)
}

// protect sends PBSZ 0 and PROT P; data connections use TLS from then on.
func (h *harness) protect() {
	h.t.Helper()
	h.expect(200, "PBSZ 0")
	h.expect(200, "PROT P")
	h.protP = true
}

// testCert returns a self-signed certificate for "localhost" and
// 127.0.0.1, made once per test binary, in memory, and a pool trusting it.
func testCert() (tls.Certificate, *x509.CertPool, error) {
	c, err := testCertOnce()
	return c.cert, c.pool, err
}

type certAndPool struct {
	cert tls.Certificate
	pool *x509.CertPool
}

var testCertOnce = sync.OnceValues(func() (certAndPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certAndPool{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cloudftpd test"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return certAndPool{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return certAndPool{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return certAndPool{tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool}, nil
})

// Coverage of the command table. Every reply the harness reads is
// recorded by verb; TestMain then checks, when the whole suite ran, that
// every verb in the table got at least one success (code below 400) and,
// except those that cannot fail, one refusal. Adding a command without
// tests then fails the run.
var coverage = struct {
	sync.Mutex
	ok, refused map[string]bool
}{ok: map[string]bool{}, refused: map[string]bool{}}

// neverRefused are verbs with no refusal once the syntax is right.
var neverRefused = []string{"ACCT", "NOOP", "QUIT"}

func record(line string, code int) {
	verb, _, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	coverage.Lock()
	defer coverage.Unlock()
	if code < 400 {
		coverage.ok[verb] = true
	} else {
		coverage.refused[verb] = true
	}
}

func uncovered() []string {
	coverage.Lock()
	defer coverage.Unlock()
	var missing []string
	for verb := range commands {
		if !coverage.ok[verb] {
			missing = append(missing, verb+" (success)")
		}
		if !coverage.refused[verb] && !slices.Contains(neverRefused, verb) {
			missing = append(missing, verb+" (refusal)")
		}
	}
	slices.Sort(missing)
	return missing
}

func TestMain(m *testing.M) {
	code := m.Run()
	whole := flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == ""
	if code == 0 && whole {
		if missing := uncovered(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "commands without protocol tests: %s\n", strings.Join(missing, ", "))
			code = 1
		}
	}
	os.Exit(code)
}

// scriptCase is one row of a table-driven protocol test: a fresh session,
// files to start from, a login, a script and checks on the files after.
type scriptCase struct {
	name string
	user string // who logs in: "" for alice, "-" for nobody
	opts harnessOpts
	// files are created before the session logs in, paths relative to
	// the backend's root ("alice/d/f"); a path ending in "/" is a
	// directory.
	files map[string]string
	setup func(h *harness) // after login, before the script
	steps []step
	check func(t *testing.T, h *harness)
}

// runScripts runs each case as a parallel subtest.
func runScripts(t *testing.T, cases []scriptCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tc.opts)
			for p, data := range tc.files {
				if strings.HasSuffix(p, "/") {
					if err := h.fs.MkdirAll(p); err != nil {
						t.Fatal(err)
					}
					continue
				}
				h.put(p, data)
			}
			switch tc.user {
			case "":
				h.login()
			case "-":
			default:
				h.loginAs(tc.user)
			}
			if tc.setup != nil {
				tc.setup(h)
			}
			h.script(tc.steps...)
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}
