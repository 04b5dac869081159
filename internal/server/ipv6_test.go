package server_test

// IPv6: RFC 2428's EPSV and EPRT on an IPv6 listener, PASV refused with a
// pointer to EPSV, bounce protection across address families, and a
// dual-stack listener serving IPv4 clients (IPv4-mapped addresses).

import (
	"bytes"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
)

// needIPv6Loopback skips the test when ::1 cannot be used (fails it in CI).
func needIPv6Loopback(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("IPv6 loopback unavailable: %v", err)
		}
		t.Skipf("IPv6 loopback unavailable: %v", err)
	}
	l.Close()
}

func listenOn(address string) func(*config.Config) {
	return func(c *config.Config) { c.Listeners[0].Address = address }
}

func TestIPv6Listener(t *testing.T) {
	needIPv6Loopback(t)
	ts := startServer(t, listenOn("[::1]:0"))
	if !strings.HasPrefix(ts.Addr, "[::1]:") {
		t.Fatalf("listening on %s, want [::1]:port", ts.Addr)
	}
	payload := randomBytes(512<<10 + 9)
	ts.write("alice/f.bin", payload)
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	rc.must(200, "TYPE I")

	// PASV cannot carry an IPv6 address: 425, naming EPSV.
	if msg := rc.must(425, "PASV"); !strings.Contains(msg, "EPSV") {
		t.Errorf("PASV over IPv6: 425 %q does not mention EPSV", msg)
	}

	// EPSV: download, then upload.
	dc := rc.epsv()
	if h, _, _ := net.SplitHostPort(dc.RemoteAddr().String()); h != "::1" {
		t.Fatalf("EPSV data connection to %s, want ::1", h)
	}
	rc.must(150, "RETR f.bin")
	if got := readAll(t, dc); !bytes.Equal(got, payload) {
		t.Fatalf("EPSV download: %d bytes, sha256 %s; want %d bytes, sha256 %s", len(got), shortHash(got), len(payload), shortHash(payload))
	}
	rc.expect(226)
	rc.must(229, "EPSV 2")
	dc = rc.epsv()
	rc.stor(dc, "up.bin", payload)
	if !bytes.Equal(ts.read("alice/up.bin"), payload) {
		t.Fatal("EPSV upload differs")
	}

	// The control connection is IPv6: protocol 1 is not offered.
	if msg := rc.must(522, "EPSV 1"); !strings.Contains(msg, "(2)") {
		t.Errorf("EPSV 1: 522 %q, want it to name protocol (2)", msg)
	}

	// EPRT |2|: active mode back to the client over IPv6.
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	rc.must(200, "EPRT |2|::1|%d|", port)
	rc.must(150, "RETR f.bin")
	l.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	ac, err := l.Accept()
	if err != nil {
		t.Fatalf("server did not connect for EPRT: %v", err)
	}
	ac.SetDeadline(time.Now().Add(10 * time.Second))
	if got := readAll(t, ac); !bytes.Equal(got, payload) {
		t.Fatalf("EPRT download: %d bytes, want %d", len(got), len(payload))
	}
	rc.expect(226)

	// Bounce protection: an IPv6 client may not send data to an IPv4
	// address, not even loopback.
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	rc.must(501, "EPRT |1|127.0.0.1|%d|", l4.Addr().(*net.TCPAddr).Port)
	rc.must(501, "PORT 127,0,0,1,%d,%d", l4.Addr().(*net.TCPAddr).Port>>8, l4.Addr().(*net.TCPAddr).Port&0xff)
	l4.(*net.TCPListener).SetDeadline(time.Now().Add(100 * time.Millisecond))
	if c, err := l4.Accept(); err == nil {
		c.Close()
		t.Error("server connected to 127.0.0.1 for an IPv6 client")
	}
	rc.must(200, "NOOP")
	rc.must(221, "QUIT")
}

func TestIPv6DualStack(t *testing.T) {
	needIPv6Loopback(t)
	ts := startServer(t, listenOn("[::]:0"))
	payload := randomBytes(256<<10 + 1)
	ts.write("alice/f.bin", payload)

	// IPv4 client on a dual-stack socket: it is seen as ::ffff:127.0.0.1,
	// which must be treated as 127.0.0.1 (PASV works, data check passes).
	rc := dialRaw(t, net.JoinHostPort("127.0.0.1", ts.Port()))
	rc.login("alice", "alice-secret")
	rc.must(200, "TYPE I")
	msg := rc.must(227, "PASV")
	ap := parse227(t, msg)
	if ap.Addr().String() != "127.0.0.1" {
		t.Errorf("PASV advertised %s, want 127.0.0.1", ap)
	}
	dc, err := net.DialTimeout("tcp4", ap.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dc.SetDeadline(time.Now().Add(10 * time.Second))
	rc.must(150, "RETR f.bin")
	if got := readAll(t, dc); !bytes.Equal(got, payload) {
		t.Fatalf("PASV download: %d bytes, want %d", len(got), len(payload))
	}
	rc.expect(226)
	rc.must(229, "EPSV 1")
	rc.must(522, "EPSV 2")
	dc = rc.epsv()
	rc.must(150, "STOR up.bin")
	dc.Write(payload)
	dc.Close()
	rc.expect(226)
	if !bytes.Equal(ts.read("alice/up.bin"), payload) {
		t.Fatal("EPSV upload differs")
	}
	// PORT to the client's own (IPv4) address is allowed.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	rc.must(200, "PORT 127,0,0,1,%d,%d", p>>8, p&0xff)
	rc.must(150, "RETR f.bin")
	l.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	ac, err := l.Accept()
	if err != nil {
		t.Fatalf("server did not connect for PORT: %v", err)
	}
	ac.SetDeadline(time.Now().Add(10 * time.Second))
	if got := readAll(t, ac); !bytes.Equal(got, payload) {
		t.Fatalf("PORT download: %d bytes, want %d", len(got), len(payload))
	}
	rc.expect(226)
	rc.must(221, "QUIT")

	// The log names the client as 127.0.0.1, not ::ffff:127.0.0.1.
	waitFor(t, func() bool { return strings.Contains(ts.logs.String(), `msg="session end"`) })
	if got := sessionClients(ts.logs.String()); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Errorf("sessions logged for clients %q, want [127.0.0.1]", got)
	}

	// And an IPv6 client on the same listener.
	rc6 := dialRaw(t, net.JoinHostPort("::1", ts.Port()))
	rc6.login("alice", "alice-secret")
	rc6.must(200, "TYPE I")
	rc6.must(425, "PASV")
	dc = rc6.epsv()
	rc6.must(150, "RETR f.bin")
	if got := readAll(t, dc); !bytes.Equal(got, payload) {
		t.Fatalf("IPv6 EPSV download: %d bytes, want %d", len(got), len(payload))
	}
	rc6.expect(226)
}
