package server_test

// FTPS tests: the RFC 4217 command sequence driven by hand with
// crypto/tls on the client side, the listener modes (explicit, required,
// implicit), per-user overrides, TLS session reuse on data connections,
// CCC, certificate reload, and the real clients (curl, lftp, Python's
// ftplib, jlaffaye/ftp) over TLS.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// ftpsIOTimeout bounds every TLS handshake and data transfer of the raw
// clients below.
const ftpsIOTimeout = 10 * time.Second

// ftpsCert is a self-signed certificate on disk and a pool that trusts it.
type ftpsCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

// newFTPSCert writes a certificate for "localhost" and 127.0.0.1 into a
// fresh directory.
func newFTPSCert(t *testing.T) *ftpsCert {
	t.Helper()
	dir := t.TempDir()
	c := &ftpsCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	c.rewrite(t, "localhost", "127.0.0.1")
	return c
}

// rewrite replaces the files with a new certificate for hosts and trusts
// only that one.
func (c *ftpsCert) rewrite(t *testing.T, hosts ...string) {
	t.Helper()
	for _, f := range []string{c.certFile, c.keyFile} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if err := certs.SelfSigned(hosts, 24*time.Hour, c.certFile, c.keyFile); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(c.certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", c.certFile)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	c.pool = x509.NewCertPool()
	c.pool.AddCert(leaf)
}

// client returns a verifying client configuration offering ALPN "ftp",
// with a session cache: used for a control connection and its data
// connections, it resumes the control session as the server requires.
func (c *ftpsCert) client() *tls.Config {
	return &tls.Config{
		ServerName:         "localhost",
		RootCAs:            c.pool,
		NextProtos:         []string{"ftp"},
		ClientSessionCache: tls.NewLRUClientSessionCache(8),
	}
}

// ftpsMode returns a mutate function for startServer that switches
// listener 0 to mode with cert (data protection and session reuse get
// their defaults for mode when the config is validated), then lets more
// adjust the listener.
func ftpsMode(cert *ftpsCert, mode config.TLSMode, more func(*config.Listener)) func(*config.Config) {
	return func(c *config.Config) {
		l := &c.Listeners[0]
		l.TLS = mode
		l.TLSCert, l.TLSKey = cert.certFile, cert.keyFile
		if more != nil {
			more(l)
		}
	}
}

// ftpsAuth sends AUTH TLS, runs the client handshake and switches rc to
// the TLS connection. It returns the raw connection below it (for CCC).
func ftpsAuth(t *testing.T, rc *rawClient, conf *tls.Config) (*tls.Conn, net.Conn) {
	t.Helper()
	rc.must(234, "AUTH TLS")
	raw := rc.conn
	tc := tls.Client(raw, conf)
	ctx, cancel := context.WithTimeout(context.Background(), ftpsIOTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS handshake after AUTH TLS: %v", err)
	}
	rc.conn, rc.tp = tc, textproto.NewConn(tc)
	return tc, raw
}

// ftpsXfer is the outcome of one transfer driven by ftpsData.
type ftpsXfer struct {
	body   []byte              // what a download delivered
	state  tls.ConnectionState // the data connection's TLS state
	tlsErr error               // handshake or data error on the data connection
	code   int                 // the final (or only) reply
	msg    string
}

// ftpsData runs command (LIST, RETR x, STOR x...) over a passive data
// connection, TLS-protected with conf unless conf is nil. upload is sent
// for STOR-like commands. A reply other than 150 ends it early.
func ftpsData(t *testing.T, rc *rawClient, conf *tls.Config, command string, upload []byte) ftpsXfer {
	t.Helper()
	raw := rc.pasv()
	defer raw.Close()
	if err := rc.tp.PrintfLine("%s", command); err != nil {
		t.Fatalf("send %s: %v", command, err)
	}
	var x ftpsXfer
	if x.code, x.msg = rc.read(); x.code != 150 {
		return x
	}
	var data net.Conn = raw
	if conf != nil {
		tc := tls.Client(raw, conf)
		ctx, cancel := context.WithTimeout(context.Background(), ftpsIOTimeout)
		x.tlsErr = tc.HandshakeContext(ctx)
		cancel()
		x.state = tc.ConnectionState()
		data = tc
	}
	raw.SetDeadline(time.Now().Add(ftpsIOTimeout))
	if x.tlsErr == nil {
		if upload != nil {
			_, x.tlsErr = data.Write(upload)
		} else {
			x.body, x.tlsErr = io.ReadAll(data)
		}
	}
	data.Close()
	x.code, x.msg = rc.read()
	return x
}

// mustData is ftpsData for a transfer that must succeed with 226.
func mustData(t *testing.T, rc *rawClient, conf *tls.Config, command string, upload []byte) ftpsXfer {
	t.Helper()
	x := ftpsData(t, rc, conf, command, upload)
	if x.code != 226 || x.tlsErr != nil {
		t.Fatalf("%s: got %d %q (data connection: %v), want 226", command, x.code, x.msg, x.tlsErr)
	}
	return x
}

// featLines returns the feature lines of a FEAT reply, trimmed.
func featLines(rc *rawClient) []string {
	rc.t.Helper()
	msg := rc.must(211, "FEAT")
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

// closedByServer reads c until EOF or an error and fails the test if the
// server neither closed it nor reset it within ftpsIOTimeout. It returns
// what was read.
func closedByServer(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ftpsIOTimeout))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server did not close the connection (read %q)", b)
	}
	return b
}

func TestFTPSExplicitSequencing(t *testing.T) {
	cert := newFTPSCert(t)
	ts := startServer(t, ftpsMode(cert, config.TLSExplicit, nil))
	ts.write("alice/seen.txt", []byte("listed"))

	rc := dialRaw(t, ts.Addr)
	feat := featLines(rc)
	for _, f := range []string{"AUTH TLS", "PBSZ", "PROT"} {
		if !slices.Contains(feat, f) {
			t.Errorf("FEAT lacks %q: %q", f, feat)
		}
	}
	if slices.Contains(feat, "CCC") {
		t.Errorf("FEAT offers CCC without tls_allow_ccc: %q", feat)
	}
	rc.must(503, "PBSZ 0")
	rc.must(503, "PROT P")
	rc.must(504, "AUTH BOGUS")
	tc, _ := ftpsAuth(t, rc, cert.client())
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != "ftp" {
		t.Errorf("ALPN: negotiated %q, want \"ftp\"", st.NegotiatedProtocol)
	}
	if st.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %s, want 1.2 or newer", tls.VersionName(st.Version))
	}
	rc.must(503, "PROT P") // before PBSZ
	rc.must(503, "AUTH TLS")
	rc.must(200, "PBSZ 0")
	rc.must(536, "PROT S")
	rc.must(200, "PROT P")
	rc.login("alice", "alice-secret")

	conf := cert.client() // one session cache for control and data
	t.Run("reuse", func(t *testing.T) {
		rc := dialRaw(t, ts.Addr)
		ftpsAuth(t, rc, conf)
		rc.must(200, "PBSZ 0")
		rc.must(200, "PROT P")
		rc.login("alice", "alice-secret")
		rc.must(200, "TYPE I")
		x := mustData(t, rc, conf, "LIST", nil)
		if !x.state.DidResume {
			t.Error("data connection did not resume the control session")
		}
		if !strings.Contains(string(x.body), "seen.txt") {
			t.Errorf("LIST over TLS: %q", x.body)
		}
		payload := randomBytes(300<<10 + 17)
		mustData(t, rc, conf, "STOR up.bin", payload)
		if !bytes.Equal(ts.read("alice/up.bin"), payload) {
			t.Fatal("STOR over TLS: file differs")
		}
		x = mustData(t, rc, conf, "RETR up.bin", nil)
		if !bytes.Equal(x.body, payload) || !x.state.DidResume {
			t.Errorf("RETR over TLS: %d bytes (want %d), resumed %v", len(x.body), len(payload), x.state.DidResume)
		}

		// A data connection with a configuration of its own (no session
		// to resume) is refused.
		x = ftpsData(t, rc, cert.client(), "LIST", nil)
		if x.code != 522 || !strings.Contains(x.msg, "resume") {
			t.Errorf("LIST on a fresh TLS session: got %d %q, want 522 about session reuse", x.code, x.msg)
		}
		// The reply goes out before the transfer is logged.
		waitFor(t, func() bool {
			return strings.Contains(ts.logs.String(), `err="data connection did not resume the control connection's TLS session"`)
		})
		rc.must(200, "NOOP")
		mustData(t, rc, conf, "NLST", nil)
	})

	t.Run("other clients' tickets", func(t *testing.T) {
		// A session cache shared with another control connection holds
		// that connection's tickets; they must not unlock this session.
		shared := cert.client()
		a := dialRaw(t, ts.Addr)
		ftpsAuth(t, a, shared)
		a.must(200, "PBSZ 0")
		a.must(200, "PROT P")
		a.login("alice", "alice-secret")
		mustData(t, a, shared, "NLST", nil)

		b := dialRaw(t, ts.Addr)
		bconf := cert.client()
		ftpsAuth(t, b, bconf)
		b.must(200, "PBSZ 0")
		b.must(200, "PROT P")
		b.login("bob", "bob-secret")
		// b's data connection offers a's latest ticket.
		x := ftpsData(t, b, shared, "NLST", nil)
		if x.code != 522 {
			t.Errorf("data connection resuming another session's ticket: got %d %q (resumed %v), want 522", x.code, x.msg, x.state.DidResume)
		}
		mustData(t, b, bconf, "NLST", nil)
	})

	t.Run("AUTH after plain login", func(t *testing.T) {
		rc := dialRaw(t, ts.Addr)
		rc.login("alice", "alice-secret")
		if msg := rc.must(503, "AUTH TLS"); !strings.Contains(msg, "login") {
			t.Errorf("AUTH after login: %q", msg)
		}
		rc.must(200, "NOOP")
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		rc := dialRaw(t, ts.Addr)
		rc.must(234, "AUTH TLS")
		old := cert.client()
		old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		tc := tls.Client(rc.conn, old)
		ctx, cancel := context.WithTimeout(context.Background(), ftpsIOTimeout)
		defer cancel()
		err := tc.HandshakeContext(ctx)
		if err == nil {
			t.Fatalf("TLS %s handshake succeeded", tls.VersionName(tc.ConnectionState().Version))
		}
		closedByServer(t, rc.conn)
		waitFor(t, func() bool {
			return strings.Contains(ts.logs.String(), "TLS handshake on control connection failed")
		})
	})

	rc.must(200, "NOOP") // the first session outlived all of the above
}

func TestFTPSSessionReuseOptional(t *testing.T) {
	cert := newFTPSCert(t)
	ts := startServer(t, ftpsMode(cert, config.TLSExplicit, func(l *config.Listener) {
		l.TLSSessionReuse = config.PolicyOptional
	}))
	ts.write("alice/a.txt", []byte("a"))
	rc := dialRaw(t, ts.Addr)
	conf := cert.client()
	ftpsAuth(t, rc, conf)
	rc.must(200, "PBSZ 0")
	rc.must(200, "PROT P")
	rc.login("alice", "alice-secret")
	x := mustData(t, rc, cert.client(), "NLST", nil)
	if x.state.DidResume || strings.TrimSpace(string(x.body)) != "a.txt" {
		t.Errorf("fresh TLS session: resumed %v, NLST %q", x.state.DidResume, x.body)
	}
	x = mustData(t, rc, conf, "NLST", nil)
	if !x.state.DidResume {
		t.Error("shared session cache: data connection did not resume")
	}
}

func TestFTPSRequired(t *testing.T) {
	cert := newFTPSCert(t)
	ts := startServer(t, ftpsMode(cert, config.TLSRequired, nil))
	ts.write("alice/r.txt", []byte("r"))
	rc := dialRaw(t, ts.Addr)
	if msg := rc.must(530, "USER alice"); !strings.Contains(msg, "AUTH TLS") {
		t.Errorf("USER before AUTH: %q does not mention AUTH TLS", msg)
	}
	rc.must(503, "PASS alice-secret") // the refused USER left no name behind
	conf := cert.client()
	ftpsAuth(t, rc, conf)
	rc.login("alice", "alice-secret")
	if x := ftpsData(t, rc, nil, "LIST", nil); x.code != 522 {
		t.Errorf("LIST before PROT P: got %d %q, want 522", x.code, x.msg)
	}
	rc.must(200, "PBSZ 0")
	rc.must(534, "PROT C")
	if x := ftpsData(t, rc, nil, "NLST", nil); x.code != 522 {
		t.Errorf("NLST after a refused PROT C: got %d %q, want 522", x.code, x.msg)
	}
	rc.must(200, "PROT P")
	x := mustData(t, rc, conf, "NLST", nil)
	if strings.TrimSpace(string(x.body)) != "r.txt" || !x.state.DidResume {
		t.Errorf("NLST after PROT P: %q, resumed %v", x.body, x.state.DidResume)
	}
}

// startFTPSUsers starts a server with an explicit and a required listener
// (in that order) and the users file text users, loaded from disk as the
// server does in production. It returns the two control addresses.
func startFTPSUsers(t *testing.T, cert *ftpsCert, users string) (ts *testServer, explicit, required string) {
	t.Helper()
	root := t.TempDir()
	usersFile := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	var listeners string
	for _, mode := range []config.TLSMode{config.TLSExplicit, config.TLSRequired} {
		listeners += fmt.Sprintf("[[listener]]\naddress = \"127.0.0.1:0\"\ntls = %q\ntls_cert = %q\ntls_key = %q\n\n",
			mode, cert.certFile, cert.keyFile)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[server]
idle_timeout = "30s"
data_timeout = "5s"
login_failure_delay = "10ms"

%s
[storage]
backend = "local"
root = %q

[auth]
users_file = %q
`, listeners, root, usersFile)))
	if err != nil {
		t.Fatal(err)
	}
	logs := &clienttest.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(t.Context(), cfg, server.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	serveUntilCleanup(t, srv)
	addrs := srv.Addrs()
	ts = &testServer{t: t, srv: srv, cfg: cfg, Addr: addrs[0].String(), Root: root, backend: localDisk, store: diskStore{root: root}, logs: logs}
	return ts, addrs[0].String(), addrs[1].String()
}

func TestFTPSPerUserPolicy(t *testing.T) {
	cert := newFTPSCert(t)
	var users strings.Builder
	for _, u := range []struct{ name, extra string }{
		{"alice", ""},
		{"partner", "tls = \"required\"\ntls_data = \"required\"\n"},
		{"legacy", "tls = \"optional\"\ntls_data = \"optional\"\n"},
	} {
		fmt.Fprintf(&users, "[[user]]\nname = %q\npassword_hash = %q\nhome = %q\npermissions = [\"all\"]\n%s\n",
			u.name, hashFor(t, u.name+"-secret"), u.name, u.extra)
	}
	ts, explicit, required := startFTPSUsers(t, cert, users.String())
	for _, u := range []string{"alice", "partner", "legacy"} {
		ts.write(u+"/"+u+".txt", []byte(u))
	}

	t.Run("explicit listener, user requires TLS", func(t *testing.T) {
		rc := dialRaw(t, explicit)
		if msg := rc.must(530, "USER partner"); !strings.Contains(msg, "AUTH TLS") {
			t.Errorf("USER partner in clear: %q", msg)
		}
		conf := cert.client()
		ftpsAuth(t, rc, conf)
		rc.login("partner", "partner-secret")
		// tls_data = "required" for this user, although the listener's
		// default is optional.
		if x := ftpsData(t, rc, nil, "NLST", nil); x.code != 522 {
			t.Errorf("partner NLST before PROT P: got %d %q, want 522", x.code, x.msg)
		}
		rc.must(200, "PBSZ 0")
		rc.must(534, "PROT C")
		rc.must(200, "PROT P")
		if x := mustData(t, rc, conf, "NLST", nil); strings.TrimSpace(string(x.body)) != "partner.txt" {
			t.Errorf("partner NLST: %q", x.body)
		}
	})
	t.Run("explicit listener, other users in clear", func(t *testing.T) {
		rc := dialRaw(t, explicit)
		rc.login("alice", "alice-secret")
		if x := mustData(t, rc, nil, "NLST", nil); strings.TrimSpace(string(x.body)) != "alice.txt" {
			t.Errorf("alice NLST in clear: %q", x.body)
		}
	})
	t.Run("required listener, user allowed in clear", func(t *testing.T) {
		rc := dialRaw(t, required)
		rc.must(530, "USER alice")
		rc.login("legacy", "legacy-secret")
		if x := mustData(t, rc, nil, "NLST", nil); strings.TrimSpace(string(x.body)) != "legacy.txt" {
			t.Errorf("legacy NLST in clear: %q", x.body)
		}
	})
}

// dialImplicit opens an implicit FTPS control connection and reads the
// greeting over TLS.
func dialImplicit(t *testing.T, addr string, conf *tls.Config) (*rawClient, *tls.Conn) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: conf}
	ctx, cancel := context.WithTimeout(context.Background(), ftpsIOTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("implicit FTPS handshake: %v", err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, conn: c, tp: textproto.NewConn(c)}
	rc.expect(220)
	return rc, c.(*tls.Conn)
}

func TestFTPSImplicit(t *testing.T) {
	cert := newFTPSCert(t)
	ts := startServer(t, ftpsMode(cert, config.TLSImplicit, nil))
	ts.write("alice/i.txt", []byte("implicit"))

	conf := cert.client()
	rc, tc := dialImplicit(t, ts.Addr, conf)
	if st := tc.ConnectionState(); st.NegotiatedProtocol != "ftp" || st.Version < tls.VersionTLS12 {
		t.Errorf("implicit: ALPN %q, %s", st.NegotiatedProtocol, tls.VersionName(st.Version))
	}
	rc.login("alice", "alice-secret")
	// Data connections are protected from the start, without PBSZ/PROT.
	x := mustData(t, rc, conf, "RETR i.txt", nil)
	if string(x.body) != "implicit" || !x.state.DidResume {
		t.Errorf("implicit RETR: %q, resumed %v", x.body, x.state.DidResume)
	}

	// A plain client hears nothing, and its garbage ends only its own
	// connection.
	plain, err := net.DialTimeout("tcp", ts.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := plain.Read(make([]byte, 64)); n > 0 || !isTimeout(err) {
		t.Errorf("plain connection to an implicit listener: read %d bytes, %v; want silence", n, err)
	}
	plain.SetWriteDeadline(time.Now().Add(ftpsIOTimeout))
	if _, err := plain.Write([]byte("USER alice\r\nPASS alice-secret\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := closedByServer(t, plain); bytes.Contains(got, []byte("220")) || bytes.Contains(got, []byte("230")) {
		t.Errorf("plain client got FTP replies: %q", got)
	}
	waitFor(t, func() bool {
		return strings.Contains(ts.logs.String(), "TLS handshake on implicit FTPS connection failed")
	})

	rc.must(200, "NOOP")
	rc2, _ := dialImplicit(t, ts.Addr, cert.client())
	rc2.login("bob", "bob-secret")
	rc2.must(257, "PWD")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestFTPSCCC(t *testing.T) {
	cert := newFTPSCert(t)
	t.Run("allowed", func(t *testing.T) {
		ts := startServer(t, ftpsMode(cert, config.TLSExplicit, func(l *config.Listener) { l.TLSAllowCCC = true }))
		ts.write("alice/c.txt", []byte("ccc"))
		rc := dialRaw(t, ts.Addr)
		if feat := featLines(rc); !slices.Contains(feat, "CCC") {
			t.Errorf("FEAT lacks CCC: %q", feat)
		}
		conf := cert.client()
		tc, raw := ftpsAuth(t, rc, conf)
		rc.must(200, "PBSZ 0")
		rc.must(200, "PROT P")
		rc.login("alice", "alice-secret")
		rc.must(200, "CCC")
		if err := tc.CloseWrite(); err != nil {
			t.Fatalf("close_notify: %v", err)
		}
		tc.SetReadDeadline(time.Now().Add(ftpsIOTimeout))
		if rest, err := io.ReadAll(tc); err != nil || len(rest) > 0 {
			t.Fatalf("waiting for the server's close_notify: %q, %v", rest, err)
		}
		raw.SetDeadline(time.Now().Add(5 * time.Second))
		rc.conn, rc.tp = raw, textproto.NewConn(raw)
		rc.must(200, "NOOP")
		rc.must(257, "PWD")
		// Data connections stay protected and still resume the session.
		x := mustData(t, rc, conf, "RETR c.txt", nil)
		if string(x.body) != "ccc" || !x.state.DidResume {
			t.Errorf("RETR after CCC: %q, resumed %v", x.body, x.state.DidResume)
		}
		rc.must(221, "QUIT")
	})
	t.Run("next command right behind close_notify", func(t *testing.T) {
		// After the server's 200 and close_notify, a client sends its own
		// close_notify and then its next command in clear. Nothing orders
		// the two on the wire: a TLS library that buffers the alert, Nagle,
		// or a server that reads late puts both in one read. Here they go
		// out in one write, so the server's first read after CCC sees both.
		ts := startServer(t, ftpsMode(cert, config.TLSExplicit, func(l *config.Listener) { l.TLSAllowCCC = true }))
		rc := dialRaw(t, ts.Addr)
		hold := &holdConn{Conn: rc.conn}
		rc.conn = hold
		tc, raw := ftpsAuth(t, rc, cert.client())
		rc.login("alice", "alice-secret")
		rc.must(200, "CCC")
		tc.SetReadDeadline(time.Now().Add(ftpsIOTimeout))
		if rest, err := io.ReadAll(tc); err != nil || len(rest) > 0 {
			t.Fatalf("waiting for the server's close_notify: %q, %v", rest, err)
		}
		hold.hold()
		if err := tc.CloseWrite(); err != nil {
			t.Fatalf("close_notify: %v", err)
		}
		if err := hold.flush([]byte("NOOP\r\n")); err != nil {
			t.Fatal(err)
		}
		raw.SetDeadline(time.Now().Add(3 * time.Second))
		rc.conn, rc.tp = raw, textproto.NewConn(raw)
		code, msg, err := rc.tp.ReadResponse(0)
		if err != nil && code == 0 {
			// Tell a swallowed command from a dead session.
			raw.SetDeadline(time.Now().Add(3 * time.Second))
			second := "no reply either"
			if err := rc.tp.PrintfLine("NOOP"); err == nil {
				if c, m, err := rc.tp.ReadResponse(0); err == nil || c != 0 {
					second = fmt.Sprintf("%d %s", c, m)
				}
			}
			t.Fatalf("NOOP sent right behind the client's close_notify got no reply (%v); a second NOOP got: %s", err, second)
		}
		if code != 200 {
			t.Fatalf("NOOP after CCC: got %d %q, want 200", code, msg)
		}
	})
	t.Run("allowed, control in clear", func(t *testing.T) {
		ts := startServer(t, ftpsMode(cert, config.TLSExplicit, func(l *config.Listener) { l.TLSAllowCCC = true }))
		rc := dialRaw(t, ts.Addr)
		rc.login("alice", "alice-secret")
		rc.must(533, "CCC")
		rc.must(200, "NOOP")
	})
	t.Run("not allowed", func(t *testing.T) {
		ts := startServer(t, ftpsMode(cert, config.TLSExplicit, nil))
		rc := dialRaw(t, ts.Addr)
		ftpsAuth(t, rc, cert.client())
		rc.login("alice", "alice-secret")
		rc.must(534, "CCC")
		rc.must(200, "NOOP")
	})
}

// holdConn can hold back writes and send them, plus more, in one write.
type holdConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	buf     []byte
}

func (h *holdConn) hold() {
	h.mu.Lock()
	h.holding = true
	h.mu.Unlock()
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holding {
		h.buf = append(h.buf, p...)
		return len(p), nil
	}
	return h.Conn.Write(p)
}

// flush writes what was held back followed by more, in one write.
func (h *holdConn) flush(more []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holding = false
	h.Conn.SetWriteDeadline(time.Now().Add(ftpsIOTimeout))
	_, err := h.Conn.Write(append(h.buf, more...))
	h.buf = nil
	return err
}

func TestFTPSBadHandshake(t *testing.T) {
	cert := newFTPSCert(t)
	ts := startServer(t, ftpsMode(cert, config.TLSExplicit, nil))
	ts.write("alice/keep.txt", []byte("k"))
	conf := cert.client()
	good := dialRaw(t, ts.Addr)
	ftpsAuth(t, good, conf)
	good.must(200, "PBSZ 0")
	good.must(200, "PROT P")
	good.login("alice", "alice-secret")

	bad := dialRaw(t, ts.Addr)
	bad.must(234, "AUTH TLS")
	bad.conn.SetWriteDeadline(time.Now().Add(ftpsIOTimeout))
	if _, err := bad.conn.Write([]byte("GET / HTTP/1.0\r\n\r\nthis is not a ClientHello\r\n")); err != nil {
		t.Fatal(err)
	}
	closedByServer(t, bad.conn)
	waitFor(t, func() bool {
		return strings.Contains(ts.logs.String(), "TLS handshake on control connection failed")
	})

	good.must(200, "NOOP")
	if x := mustData(t, good, conf, "LIST", nil); !strings.Contains(string(x.body), "keep.txt") {
		t.Errorf("LIST on the established session: %q", x.body)
	}
}

func TestFTPSReloadCertificates(t *testing.T) {
	cert := newFTPSCert(t)
	ts := startServer(t, ftpsMode(cert, config.TLSExplicit, nil))
	ts.write("alice/old.txt", []byte("o"))
	oldConf := cert.client()
	old := dialRaw(t, ts.Addr)
	ftpsAuth(t, old, oldConf)
	old.must(200, "PBSZ 0")
	old.must(200, "PROT P")
	old.login("alice", "alice-secret")

	cert.rewrite(t, "ftp2.example.test")
	ts.reload(nil)

	// New handshakes present the new certificate...
	rc := dialRaw(t, ts.Addr)
	conf := cert.client()
	conf.ServerName = "ftp2.example.test"
	tc, _ := ftpsAuth(t, rc, conf)
	leaf := tc.ConnectionState().PeerCertificates[0]
	if leaf.Subject.CommonName != "ftp2.example.test" || !slices.Contains(leaf.DNSNames, "ftp2.example.test") {
		t.Errorf("after reload: certificate for %q %q", leaf.Subject.CommonName, leaf.DNSNames)
	}
	rc.login("bob", "bob-secret")
	rc.must(200, "NOOP")
	// ...and a client trusting only the old one refuses them.
	stale := dialRaw(t, ts.Addr)
	stale.must(234, "AUTH TLS")
	ctx, cancel := context.WithTimeout(context.Background(), ftpsIOTimeout)
	defer cancel()
	staleConf := oldConf.Clone()
	staleConf.ClientSessionCache = nil
	if err := tls.Client(stale.conn, staleConf).HandshakeContext(ctx); err == nil {
		t.Error("the old certificate's pool accepted the new certificate")
	}

	// The session established before the reload carries on, data
	// connections included.
	old.must(200, "NOOP")
	x := mustData(t, old, oldConf, "NLST", nil)
	if strings.TrimSpace(string(x.body)) != "old.txt" || !x.state.DidResume {
		t.Errorf("old session after reload: NLST %q, resumed %v", x.body, x.state.DidResume)
	}
	if !strings.Contains(ts.logs.String(), "certificate reloaded") {
		t.Error("the reload was not logged")
	}
}

// ---- real clients over TLS ----

func TestFTPSCurl(t *testing.T) {
	curl := clienttest.Need(t, "curl")
	cert := newFTPSCert(t)
	args := func(extra ...string) []string {
		return append([]string{"-q", "-s", "-S", "--max-time", "20", "-k", "-v"}, extra...)
	}
	t.Run("explicit", func(t *testing.T) {
		ts := startServer(t, ftpsMode(cert, config.TLSExplicit, nil))
		local := t.TempDir()
		payload := randomBytes(1<<20 + 99)
		up, down := filepath.Join(local, "up.bin"), filepath.Join(local, "down.bin")
		if err := os.WriteFile(up, payload, 0o644); err != nil {
			t.Fatal(err)
		}
		url := "ftp://alice:alice-secret@127.0.0.1:" + ts.Port() + "/curl.bin"
		r := mustRun(t, local, "", curl, args("--ssl-reqd", "-T", up, url)...)
		for _, v := range []string{"> AUTH ", "> PBSZ 0", "> PROT P"} {
			if !strings.Contains(r.Stderr, v) {
				t.Errorf("curl upload did not send %q:\n%s", v, r.Stderr)
			}
		}
		if !bytes.Equal(ts.read("alice/curl.bin"), payload) {
			t.Fatal("curl upload over FTPS: file differs")
		}
		mustRun(t, local, "", curl, args("--ssl-reqd", "-o", down, url)...)
		sameFile(t, "curl download over FTPS", down, payload)
		if logs := ts.logs.String(); strings.Contains(logs, "did not resume") {
			t.Error("curl's data connections did not resume the control session")
		}
	})
	t.Run("implicit", func(t *testing.T) {
		ts := startServer(t, ftpsMode(cert, config.TLSImplicit, nil))
		payload := randomBytes(700<<10 + 5)
		ts.write("alice/imp.bin", payload)
		local := t.TempDir()
		down := filepath.Join(local, "imp.bin")
		mustRun(t, local, "", curl, args("-o", down, "ftps://alice:alice-secret@127.0.0.1:"+ts.Port()+"/imp.bin")...)
		sameFile(t, "curl ftps:// download", down, payload)
	})
}

func TestFTPSLFTP(t *testing.T) {
	prog := clienttest.Need(t, "lftp")
	cert := newFTPSCert(t)
	ts := startServer(t, ftpsMode(cert, config.TLSRequired, nil))
	ts.write("alice/there.txt", []byte("there"))
	local := t.TempDir()
	payload := randomBytes(2<<20 + 3)
	if err := os.WriteFile(filepath.Join(local, "up.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	script := "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; " +
		"set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:verify-certificate no; " +
		"set cmd:fail-exit yes; set xfer:clobber yes; debug 5; " +
		"open -u alice,alice-secret -p " + ts.Port() + " 127.0.0.1; " +
		"put up.bin -o lftp.bin; get lftp.bin -o down.bin; ls"
	r := mustRun(t, local, "", prog, "--norc", "-c", script)
	for _, v := range []string{"AUTH TLS", "PROT P"} {
		if !sentVerb(r.Stderr, v) {
			t.Errorf("lftp did not send %s:\n%s", v, r.Stderr)
		}
	}
	if !bytes.Equal(ts.read("alice/lftp.bin"), payload) {
		t.Error("lftp put over FTPS: file differs")
	}
	sameFile(t, "lftp get over FTPS", filepath.Join(local, "down.bin"), payload)
	if !strings.Contains(r.Stdout, "there.txt") || !strings.Contains(r.Stdout, "lftp.bin") {
		t.Errorf("lftp ls over FTPS:\n%s", r.Stdout)
	}
}

// ftplibTLSScript drives ftplib.FTP_TLS without certificate checks. A
// step that fails below the FTP layer (a TLS error on the data
// connection) leaves the server's final reply unread; it is read and
// recorded as "reply".
const ftplibTLSScript = `
import ftplib, hashlib, io, json, os, ssl, sys

host, port, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {}
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ftp = ftplib.FTP_TLS(context=ctx, timeout=10)

def step(name, fn):
    try:
        res[name] = fn()
    except Exception as e:
        out = {"error": "%s: %s" % (type(e).__name__, e)}
        if not isinstance(e, ftplib.Error):
            try:
                ftp.sock.settimeout(3)
                out["reply"] = ftp.getresp()
            except Exception as e2:
                out["reply"] = "%s: %s" % (type(e2).__name__, e2)
            finally:
                ftp.sock.settimeout(10)
        res[name] = out

def stor():
    with open(os.path.join(work, "up.bin"), "rb") as f:
        return ftp.storbinary("STOR py.bin", f)

def sha(name):
    h = hashlib.sha256()
    ftp.retrbinary("RETR " + name, h.update)
    return h.hexdigest()

step("connect", lambda: ftp.connect(host, port))
step("login", lambda: ftp.login("alice", "alice-secret"))
step("tls", lambda: ftp.sock.version())
step("prot_p", ftp.prot_p)
step("stor", stor)
step("retr_sha256", lambda: sha("py.bin"))
step("retr_seed", lambda: sha("seed.bin"))
step("nlst", lambda: sorted(ftp.nlst()))
step("quit", ftp.quit)
print(json.dumps(res))
`

func TestFTPSPythonFTPLib(t *testing.T) {
	python := clienttest.Need(t, "python3")
	cert := newFTPSCert(t)
	seed := randomBytes(64<<10 + 9)
	run := func(t *testing.T, reuse config.Policy) (*testServer, map[string]any, []byte) {
		ts := startServer(t, ftpsMode(cert, config.TLSExplicit, func(l *config.Listener) { l.TLSSessionReuse = reuse }))
		ts.write("alice/seed.bin", seed)
		work := t.TempDir()
		payload := randomBytes(1<<20 + 1)
		if err := os.WriteFile(filepath.Join(work, "up.bin"), payload, 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(work, "ftps.py")
		if err := os.WriteFile(path, []byte(ftplibTLSScript), 0o644); err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, work, "", python, path, "127.0.0.1", ts.Port(), work)
		var res map[string]any
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			t.Fatalf("script output: %v\n%s", err, r)
		}
		t.Logf("ftplib: %s", r.Stdout)
		for _, s := range []struct{ step, want string }{
			{"login", `"230 `}, {"tls", `"TLSv1.`}, {"prot_p", `"200 `}, {"quit", `"221 `},
		} {
			if got := js(res[s.step]); !strings.HasPrefix(got, s.want) {
				t.Errorf("%s: got %s, want %s", s.step, got, s.want)
			}
		}
		return ts, res, payload
	}
	t.Run("reuse required", func(t *testing.T) {
		ts, res, _ := run(t, config.PolicyRequired)
		// ftplib does not resume the control session on data connections:
		// every transfer is refused with 522.
		for _, step := range []string{"stor", "retr_seed", "nlst"} {
			got := js(res[step])
			if !strings.Contains(got, "522 Data connection refused: it must resume the control connection's TLS session") {
				t.Errorf("%s: got %s, want a 522 about session reuse", step, got)
			}
		}
		if _, err := os.Stat(filepath.Join(ts.Root, "alice", "py.bin")); err == nil {
			t.Error("a refused upload created the file")
		}
	})
	t.Run("reuse optional", func(t *testing.T) {
		ts, res, payload := run(t, config.PolicyOptional)
		for _, s := range []struct{ step, want string }{
			{"stor", `"226 `},
			{"retr_sha256", js(hex.EncodeToString(sha256Of(payload)))},
			{"retr_seed", js(hex.EncodeToString(sha256Of(seed)))},
			{"nlst", `["py.bin","seed.bin"]`},
		} {
			if got := js(res[s.step]); !strings.HasPrefix(got, s.want) {
				t.Errorf("%s: got %s, want %s", s.step, got, s.want)
			}
		}
		if !bytes.Equal(ts.read("alice/py.bin"), payload) {
			t.Error("ftplib upload over FTPS: file differs")
		}
	})
}

func TestFTPSJlaffaye(t *testing.T) {
	cert := newFTPSCert(t)
	// jlaffaye/ftp uses one tls.Config for the control and the data
	// connections. Without a ServerName, crypto/tls keys its session cache
	// by the remote address, which differs for every data connection, so
	// nothing is resumed: such a configuration needs tls_session_reuse =
	// "optional". With a ServerName the data connections resume.
	for _, m := range []struct {
		name    string
		reuse   config.Policy
		conf    *tls.Config
		refused bool // transfers get 522
	}{
		{"ServerName, reuse required", config.PolicyRequired,
			&tls.Config{ServerName: "localhost", RootCAs: cert.pool, ClientSessionCache: tls.NewLRUClientSessionCache(0)}, false},
		{"no ServerName, reuse optional", config.PolicyOptional,
			&tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(0)}, false},
		{"no ServerName, reuse required", config.PolicyRequired,
			&tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(0)}, true},
	} {
		t.Run(m.name, func(t *testing.T) {
			ts := startServer(t, ftpsMode(cert, config.TLSExplicit, func(l *config.Listener) { l.TLSSessionReuse = m.reuse }))
			// jlaffaye/ftp sets no deadlines of its own; a hung exchange
			// is ended by closing the server.
			watchdog := time.AfterFunc(20*time.Second, func() { ts.srv.Close() })
			defer watchdog.Stop()
			conv := &clienttest.LogBuffer{}
			c, err := ftp.Dial(ts.Addr, ftp.DialWithTimeout(5*time.Second), ftp.DialWithExplicitTLS(m.conf), ftp.DialWithDebugOutput(conv))
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Quit()
			check(t, "login", c.Login("alice", "alice-secret"))
			payload := randomBytes(512<<10 + 3)
			err = c.Stor("jl.bin", bytes.NewReader(payload))
			if m.refused {
				var te *textproto.Error
				if !errors.As(err, &te) || te.Code != 522 || !strings.Contains(te.Msg, "must resume") {
					t.Fatalf("STOR without session reuse: got %v, want 522\n%s", err, conv)
				}
				ts.notExist("alice/jl.bin")
				check(t, "NOOP after the refused transfer", c.NoOp())
				return
			}
			if err != nil {
				t.Fatalf("STOR over FTPS: %v\n%s", err, conv)
			}
			if !bytes.Equal(ts.read("alice/jl.bin"), payload) {
				t.Fatal("jlaffaye upload over FTPS: file differs")
			}
			if got := retr(t, c, "jl.bin", 0); !bytes.Equal(got, payload) {
				t.Fatalf("RETR over FTPS: %d bytes, want %d", len(got), len(payload))
			}
			names, err := c.NameList("")
			check(t, "NLST", err)
			if !slices.Equal(names, []string{"jl.bin"}) {
				t.Errorf("NLST over FTPS: %q", names)
			}
			if !strings.Contains(conv.String(), "PROT P") {
				t.Errorf("the client never sent PROT P:\n%s", conv)
			}
		})
	}
}
