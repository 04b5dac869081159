package server_test

// FTPS with the network features of the NAT setup: PROXY protocol (raw
// and through a real HAProxy) with passive rules chosen by the client
// address in the header, and a tiny passive range shared by concurrent
// protected transfers from several client addresses. With TLS, nothing on
// the path can rewrite a PASV reply or tell whose data connection is
// whose, so the server has to get both right on its own.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// ftpsProxyConfig is an explicit-FTPS listener behind a PROXY-protocol
// balancer (balancerAddr) with two passive rules: clients in 127/8 get
// 127.0.0.1, where the passive ports listen, except the balancer itself,
// which gets 127.0.0.3. A session matched by the balancer's address
// instead of the header's would show 127.0.0.3 in its PASV replies.
func ftpsProxyConfig(cert *ftpsCert) func(*config.Config) {
	return proxyConfig(false, ftpsMode(cert, config.TLSExplicit, func(l *config.Listener) {
		l.Passive = []config.PassiveRule{
			{Clients: []string{balancerAddr + "/32"}, Address: "127.0.0.3"},
			{Clients: []string{"127.0.0.0/8"}, Address: "127.0.0.1"},
		}
	}))
}

func TestFTPSProxyProtocol(t *testing.T) {
	cert := newFTPSCert(t)
	ts := startServer(t, ftpsProxyConfig(cert))
	payload := randomBytes(1 << 20)
	sum := shortHash(payload)

	t.Run("raw", func(t *testing.T) {
		const client = "127.0.0.2"
		// PROXY header first, then AUTH TLS on the same connection: the
		// header is below TLS, as a balancer in TCP mode sends it.
		rc := dialProxied(t, ts.Addr, proxyV2(t, client, 40000, ts.Addr))
		conf := cert.client()
		ftpsAuth(t, rc, conf)
		rc.must(200, "PBSZ 0")
		rc.must(200, "PROT P")
		rc.login("alice", "alice-secret")
		rc.must(200, "TYPE I")

		// The rule for the header's client, not for the balancer.
		data := pasvAddr(rc)
		if ap := netip.MustParseAddrPort(data); ap.Addr() != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("PASV for client %s behind balancer %s: %s, want 127.0.0.1 (the rule for 127.0.0.0/8)", client, balancerAddr, data)
		}
		// The balancer's own address is not the client, with or without TLS.
		refusedQuietly(t, "data connection from the balancer", dialFrom(t, balancerAddr, data), 5*time.Second)

		rc.dataFrom = client
		x := mustData(t, rc, conf, "STOR up.bin", payload)
		if !x.state.DidResume {
			t.Error("STOR: data connection did not resume the control session")
		}
		sameFile(t, "STOR over TLS behind PROXY protocol", filepath.Join(ts.Root, "alice", "up.bin"), payload)
		x = mustData(t, rc, conf, "RETR up.bin", nil)
		if !bytes.Equal(x.body, payload) || !x.state.DidResume {
			t.Errorf("RETR over TLS: %d bytes sha256 %s (want %d, %s), resumed %v",
				len(x.body), shortHash(x.body), len(payload), sum, x.state.DidResume)
		}
		x = mustData(t, rc, conf, "LIST", nil)
		if !strings.Contains(string(x.body), "up.bin") || !strings.Contains(string(x.body), strconv.Itoa(len(payload))) || !x.state.DidResume {
			t.Errorf("LIST over TLS: %q (resumed %v), want a line for up.bin with its size", x.body, x.state.DidResume)
		}
		rc.must(221, "QUIT")

		waitFor(t, func() bool { return ts.srv.SessionCount() == 0 })
		logs := ts.logs.String()
		if got := sessionClients(logs); !slices.Equal(got, []string{client}) {
			t.Errorf("sessions logged for clients %q, want [%s]", got, client)
		}
		if got := refusedFrom(logs); !slices.Equal(got, []string{balancerAddr}) {
			t.Errorf("refused data connections logged from %q, want [%s]", got, balancerAddr)
		}
	})

	t.Run("haproxy", func(t *testing.T) {
		curl := clienttest.Need(t, "curl")
		const client = "127.0.0.9"
		front := startHAProxy(t, ts, client)
		work := t.TempDir()
		up := filepath.Join(work, "up.bin")
		if err := os.WriteFile(up, payload, 0o644); err != nil {
			t.Fatal(err)
		}
		base := "ftp://alice:alice-secret@" + front + "/"
		args := func(extra ...string) []string {
			return append([]string{"-sS", "-v", "--max-time", "20", "--interface", client, "--ssl-reqd", "-k"}, extra...)
		}
		sent := func(r clienttest.Result, lines ...string) {
			t.Helper()
			for _, l := range lines {
				if !strings.Contains(r.Stderr, "> "+l+"\r\n") && !strings.Contains(r.Stderr, "> "+l+"\n") {
					t.Errorf("curl did not send %q:\n%s", l, r)
				}
			}
		}
		// Upload over PASV, using the reply's address (127.0.0.1: the rule
		// for 127.0.0.9; 127.0.0.3 would fail).
		r := mustRun(t, work, "", curl, args("--disable-epsv", "--no-ftp-skip-pasv-ip", "-T", up, base+"curl-tls.bin")...)
		sent(r, "PBSZ 0", "PROT P", "PASV")
		if !strings.Contains(r.Stderr, "< 227 Entering Passive Mode (127,0,0,1,") {
			t.Errorf("PASV reply through HAProxy does not carry 127.0.0.1:\n%s", r)
		}
		sameFile(t, "curl FTPS upload through HAProxy", filepath.Join(ts.Root, "alice", "curl-tls.bin"), payload)
		// Listing and download over EPSV.
		r = mustRun(t, work, "", curl, args(base)...)
		sent(r, "PROT P", "EPSV")
		if !strings.Contains(r.Stdout, "curl-tls.bin") {
			t.Errorf("curl listing over FTPS lacks curl-tls.bin:\n%s", r)
		}
		r = mustRun(t, work, "", curl, args("-o", "down.bin", base+"curl-tls.bin")...)
		sent(r, "PROT P", "EPSV")
		sameFile(t, "curl FTPS download through HAProxy", filepath.Join(work, "down.bin"), payload)

		waitFor(t, func() bool { return ts.srv.SessionCount() == 0 })
		logs := ts.logs.String()
		var seen bool
		for _, c := range sessionClients(logs) {
			seen = seen || c == client
			if c != client && c != "127.0.0.2" {
				t.Errorf("session logged for client %s, want %s (the address HAProxy reports)", c, client)
			}
		}
		if !seen {
			t.Errorf("no session logged for client %s", client)
		}
		if got := refusedFrom(logs); len(got) > 1 {
			t.Errorf("data connections refused from %q, want only the raw test's one from the balancer", got)
		}
	})

	if logs := ts.logs.String(); strings.Contains(logs, "did not resume") || strings.Contains(logs, "handshake") {
		t.Errorf("TLS problems in the log:\n%s", logs)
	}
}

// sharedDownload is one of the concurrent downloads of
// TestFTPSSharedPassivePorts.
type sharedDownload struct {
	src  string // client address of the control and data connections
	name string
	want []byte
	rc   *rawClient
	conf *tls.Config
	data netip.AddrPort // from the PASV reply

	// Filled in by run.
	got     []byte
	resumed bool
	code    int
	msg     string
	err     error
	took    time.Duration
}

// TestFTPSSharedPassivePorts runs six protected downloads at once through
// a passive range of two ports: two sessions from each of three client
// addresses. Each port waits for three sessions at the same time (one per
// address) and must hand every TLS data connection to the session of the
// address it comes from; the content of each transfer tells them apart.
func TestFTPSSharedPassivePorts(t *testing.T) {
	cert := newFTPSCert(t)
	portRange := clienttest.FreeRange(t, 2)
	ts := startServer(t, ftpsMode(cert, config.TLSExplicit, func(l *config.Listener) { l.PassivePorts = portRange }))
	lo, _ := strconv.Atoi(strings.Split(portRange, "-")[0])

	var dls []*sharedDownload
	for i, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		d := &sharedDownload{src: src, name: fmt.Sprintf("f%d.bin", i), want: randomBytes(2<<20 + 1000*i)}
		ts.write("alice/"+d.name, d.want)
		d.rc = rawOver(t, dialFrom(t, src, ts.Addr))
		d.conf = cert.client()
		ftpsAuth(t, d.rc, d.conf)
		d.rc.must(200, "PBSZ 0")
		d.rc.must(200, "PROT P")
		d.rc.login("alice", "alice-secret")
		d.rc.must(200, "TYPE I")
		dls = append(dls, d)
	}

	// Six pending passive ports at once on a range of two: each address
	// must get both ports, each port must wait for all three addresses.
	perPort := map[uint16][]string{}
	for _, d := range dls {
		d.data = parse227(t, d.rc.must(227, "PASV"))
		perPort[d.data.Port()] = append(perPort[d.data.Port()], d.src)
	}
	for port, srcs := range perPort {
		slices.Sort(srcs)
		if int(port) < lo || int(port) > lo+1 || !slices.Equal(srcs, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}) {
			t.Errorf("port %d waits for %q; want ports %s each waiting for 127.0.0.2, .3 and .4", port, srcs, portRange)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// All six data connections are opened and handshaken, and none is
	// read before every one is, so the transfers overlap; then all are
	// read at once. ctx bounds every step of every goroutine.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for _, d := range dls {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			began := time.Now()
			d.err = d.run(ctx, &ready, start)
			d.took = time.Since(began)
		}()
	}
	allReady := make(chan struct{})
	go func() { ready.Wait(); close(allReady) }()
	select {
	case <-allReady:
	case <-ctx.Done():
		t.Error("the six data connections were not all established within 30s")
	}
	close(start)
	done.Wait()

	for _, d := range dls {
		switch {
		case d.err != nil:
			t.Errorf("%s from %s via port %d: %v (last reply %d %q)", d.name, d.src, d.data.Port(), d.err, d.code, d.msg)
		case d.code != 226:
			t.Errorf("%s from %s via port %d: final reply %d %q, want 226", d.name, d.src, d.data.Port(), d.code, d.msg)
		case !bytes.Equal(d.got, d.want):
			t.Errorf("%s from %s via port %d: %d bytes sha256 %s, want %d bytes sha256 %s",
				d.name, d.src, d.data.Port(), len(d.got), shortHash(d.got), len(d.want), shortHash(d.want))
		case !d.resumed:
			t.Errorf("%s from %s: data connection did not resume its control session", d.name, d.src)
		}
		t.Logf("%s from %s via port %d: %d bytes in %v", d.name, d.src, d.data.Port(), len(d.got), d.took.Round(time.Millisecond))
	}
	for _, d := range dls {
		d.rc.must(221, "QUIT")
	}
	logs := ts.logs.String()
	for _, bad := range []string{"data connection refused", "did not resume", "busy"} {
		if strings.Contains(logs, bad) {
			t.Errorf("log mentions %q", bad)
		}
	}
}

// run is one protected download that runs beside others: it dials the
// PASV address from d.src, sends RETR, reads the 150, runs the TLS
// handshake, marks ready and waits for start before reading the data and
// the final reply. It runs in its own goroutine, so it returns an error
// instead of failing the test.
func (d *sharedDownload) run(ctx context.Context, ready *sync.WaitGroup, start <-chan struct{}) error {
	markReady := sync.OnceFunc(ready.Done)
	defer markReady()
	deadline, _ := ctx.Deadline()
	d.rc.conn.SetDeadline(deadline)
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(d.src)}}
	raw, err := dialer.DialContext(ctx, "tcp", d.data.String())
	if err != nil {
		return fmt.Errorf("data connection: %w", err)
	}
	defer raw.Close()
	raw.SetDeadline(deadline)
	if err := d.rc.tp.PrintfLine("RETR %s", d.name); err != nil {
		return err
	}
	if d.code, d.msg, err = d.rc.tp.ReadResponse(150); err != nil {
		return fmt.Errorf("RETR: %w", err)
	}
	tc := tls.Client(raw, d.conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake on the data connection: %w", err)
	}
	d.resumed = tc.ConnectionState().DidResume
	markReady()
	select {
	case <-start:
	case <-ctx.Done():
		return ctx.Err()
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(tc); err != nil {
		return fmt.Errorf("reading the data connection: %w", err)
	}
	d.got = buf.Bytes()
	tc.Close()
	if d.code, d.msg, err = d.rc.tp.ReadResponse(226); err != nil {
		return fmt.Errorf("after the transfer: %w", err)
	}
	return nil
}
