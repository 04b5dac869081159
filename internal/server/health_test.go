package server_test

// Running behind a load balancer: /healthz and the drain on shutdown, and
// TCP keepalive on control connections. Real sockets, a real HTTP client,
// jlaffaye/ftp for the transfers; the keepalive is read back from the
// kernel, from the server's own accepted socket.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudftpd/cloudftpd/internal/config"
)

// getHealth does GET /healthz and returns the status code and body.
func getHealth(addr net.Addr) (int, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr.String() + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// TestHealthzDrain: on Shutdown /healthz flips to 503 "draining" at once;
// the node still greets new clients during server.drain_delay and refuses
// them after it; a download running all along completes intact; idle
// sessions get 421 when the listeners close.
func TestHealthzDrain(t *testing.T) {
	t.Parallel()
	const drainDelay = time.Second
	const size = 1 << 20 // 2 s at the listener's 512 KiB/s
	ts := startServer(t, func(c *config.Config) {
		c.Metrics.Address = "127.0.0.1:0"
		c.Server.DrainDelay = config.Duration(drainDelay)
		c.Listeners[0].DownloadRate = 512 << 10
	})
	payload := randomBytes(size)
	ts.write("alice/big.bin", payload)
	maddr := ts.srv.MetricsAddr()
	if code, body, err := getHealth(maddr); err != nil || code != http.StatusOK || body != "ready" {
		t.Fatalf("GET /healthz while serving: %d %q %v, want 200 ready", code, body, err)
	}

	c := loginJlaffaye(t, ts, "alice")
	r, err := c.Retr("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 64<<10)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	idle := dialRaw(t, ts.Addr)
	idle.login("bob", "bob-secret")

	start := time.Now()
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), drainDelay+20*time.Second)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()

	// 503 at once, well before the drain delay is over.
	var code int
	var body string
	for time.Since(start) < drainDelay/2 {
		if code, body, err = getHealth(maddr); err == nil && code == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code != http.StatusServiceUnavailable || body != "draining" {
		t.Fatalf("GET /healthz %v into the shutdown: %d %q %v, want 503 draining", time.Since(start), code, body, err)
	}
	if !ts.srv.Draining() {
		t.Error("Draining() = false during the drain")
	}
	// The balancer has not noticed yet: a client it sends now is served.
	late := dialRaw(t, ts.Addr)
	if d := time.Since(start); d >= drainDelay {
		t.Fatalf("the check took %v, past the drain delay: the test proves nothing", d)
	}
	late.login("bob", "bob-secret")
	late.must(257, "PWD")

	// After the delay the listener closes: connections are refused.
	var refusedAt time.Duration
	for time.Since(start) < drainDelay+5*time.Second {
		conn, err := net.DialTimeout("tcp", ts.Addr, time.Second)
		if err != nil {
			refusedAt = time.Since(start)
			break
		}
		conn.Close()
		time.Sleep(20 * time.Millisecond)
	}
	switch {
	case refusedAt == 0:
		t.Fatal("listener still accepting 5s after the drain delay")
	case refusedAt < drainDelay:
		t.Errorf("connections refused %v into the shutdown, before drain_delay %v", refusedAt, drainDelay)
	}
	t.Logf("503 at once; connections refused after %v (drain_delay %v)", refusedAt, drainDelay)
	// The idle sessions, the one accepted during the drain too, end then.
	idle.expect(421)
	late.expect(421)
	// Still draining while the transfer finishes.
	if code, body, err := getHealth(maddr); err != nil || code != http.StatusServiceUnavailable || body != "draining" {
		t.Errorf("GET /healthz during the grace: %d %q %v, want 503 draining", code, body, err)
	}

	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("download cut by the shutdown: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("download not completed (226) during the shutdown: %v", err)
	}
	if sha256.Sum256(append(got, rest...)) != sha256.Sum256(payload) {
		t.Fatal("download corrupted by the shutdown")
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, _, err := getHealth(maddr); err == nil {
		t.Error("/healthz still answering after Shutdown returned")
	}
}

// TestHealthzNoDrainDelay: with the default drain_delay (0) the
// listeners close at once, and /healthz says draining while transfers
// finish.
func TestHealthzNoDrainDelay(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(c *config.Config) {
		c.Metrics.Address = "127.0.0.1:0"
		c.Listeners[0].DownloadRate = 512 << 10
	})
	ts.write("alice/f.bin", randomBytes(1<<20))
	c := loginJlaffaye(t, ts, "alice")
	r, err := c.Retr("f.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- ts.srv.Shutdown(ctx)
	}()
	deadline := time.Now().Add(time.Second)
	for {
		conn, err := net.DialTimeout("tcp", ts.Addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting 1s into a shutdown with no drain delay")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body, err := getHealth(ts.srv.MetricsAddr()); err != nil || code != http.StatusServiceUnavailable || body != "draining" {
		t.Errorf("GET /healthz during the grace: %d %q %v, want 503 draining", code, body, err)
	}
	if n, err := io.Copy(io.Discard, r); err != nil || n != 1<<20-4096 {
		t.Fatalf("download during shutdown: %d bytes, %v", n, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// serverSocket finds, among this process's file descriptors, the server's
// accepted socket of the control connection whose client end is client:
// its local address is the listener's and its peer is client's local
// address. The test reads the kernel's state of that socket; nothing in
// the server is exposed for it.
func serverSocket(t *testing.T, listenAddr string, client net.Conn) int {
	t.Helper()
	lport := portOf(t, listenAddr)
	cport := client.LocalAddr().(*net.TCPAddr).Port
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); !strings.HasPrefix(link, "socket:") {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			continue
		}
		pa, err := syscall.Getpeername(fd)
		if err != nil {
			continue
		}
		if inetPort(sa) == lport && inetPort(pa) == cport {
			return fd
		}
	}
	t.Fatalf("no server socket for the control connection from port %d", cport)
	return -1
}

func portOf(t *testing.T, hostport string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func inetPort(sa syscall.Sockaddr) int {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return a.Port
	case *syscall.SockaddrInet6:
		return a.Port
	}
	return -1
}

type keepaliveOpts struct {
	on                    bool
	idle, interval, count int
}

func readKeepalive(t *testing.T, fd int) keepaliveOpts {
	t.Helper()
	get := func(level, opt int, name string) int {
		v, err := syscall.GetsockoptInt(fd, level, opt)
		if err != nil {
			t.Fatalf("getsockopt %s: %v", name, err)
		}
		return v
	}
	return keepaliveOpts{
		on:       get(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, "SO_KEEPALIVE") != 0,
		idle:     get(syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, "TCP_KEEPIDLE"),
		interval: get(syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, "TCP_KEEPINTVL"),
		count:    get(syscall.IPPROTO_TCP, unix.TCP_KEEPCNT, "TCP_KEEPCNT"),
	}
}

// TestControlKeepaliveSockopts: server.control_keepalive is what the
// kernel holds for the accepted control socket: Go's 15 s by default, the
// configured value (whole seconds, rounded up), or off; and a reload
// changes it for connections accepted after it.
func TestControlKeepaliveSockopts(t *testing.T) {
	t.Parallel()
	dur := func(d time.Duration) *config.Duration { c := config.Duration(d); return &c }
	for _, tc := range []struct {
		name string
		set  *config.Duration
		want keepaliveOpts
	}{
		{"default", nil, keepaliveOpts{true, 15, 15, 9}},
		{"60s", dur(time.Minute), keepaliveOpts{true, 60, 60, 9}},
		{"rounded up", dur(1500 * time.Millisecond), keepaliveOpts{true, 2, 2, 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(c *config.Config) { c.Server.ControlKeepalive = tc.set })
			rc := dialRaw(t, ts.Addr)
			if got := readKeepalive(t, serverSocket(t, ts.Addr, rc.conn)); got != tc.want {
				t.Errorf("keepalive of the accepted control socket = %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("off and reload", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) { c.Server.ControlKeepalive = dur(0) })
		before := dialRaw(t, ts.Addr)
		if got := readKeepalive(t, serverSocket(t, ts.Addr, before.conn)); got.on {
			t.Errorf("control_keepalive = 0: SO_KEEPALIVE is on (%+v)", got)
		}
		ts.reload(func(c *config.Config) { c.Server.ControlKeepalive = dur(30 * time.Second) })
		after := dialRaw(t, ts.Addr)
		if got := readKeepalive(t, serverSocket(t, ts.Addr, after.conn)); got != (keepaliveOpts{true, 30, 30, 9}) {
			t.Errorf("after a reload to 30s: %+v", got)
		}
		if got := readKeepalive(t, serverSocket(t, ts.Addr, before.conn)); got.on {
			t.Errorf("a reload changed the keepalive of a connection accepted before it: %+v", got)
		}
	})
}

// keepaliveProbesSent is the network namespace's count of keepalive
// probes sent (TcpExt TCPKeepAlive in /proc/net/netstat).
func keepaliveProbesSent(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		t.Skipf("no /proc/net/netstat: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			if n == "TCPKeepAlive" {
				v, err := strconv.ParseInt(values[j], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatal("no TcpExt TCPKeepAlive in /proc/net/netstat")
	return 0
}

// TestControlKeepaliveProbesDuringTransfer: a control connection that
// says nothing while a 3-second download runs is probed by the server
// every control_keepalive, and the client's kernel answers: the server
// socket's last received ACK stays recent while no byte crosses the
// control connection, and the probes are counted by the kernel. With
// keepalive off the same silence leaves the last ACK as old as the
// transfer.
func TestControlKeepaliveProbesDuringTransfer(t *testing.T) {
	t.Parallel()
	const size = 3 << 19 // 1.5 MiB: 3 s at 512 KiB/s
	for _, tc := range []struct {
		name      string
		keepalive time.Duration
	}{{"1s", time.Second}, {"off", 0}} {
		// One after the other: the kernel's probe counter is the whole
		// network namespace's.
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(c *config.Config) {
				d := config.Duration(tc.keepalive)
				c.Server.ControlKeepalive = &d
				c.Listeners[0].DownloadRate = 512 << 10
			})
			payload := randomBytes(size)
			ts.write("alice/slow.bin", payload)
			rc := dialRaw(t, ts.Addr)
			rc.login("alice", "alice-secret")
			rc.must(200, "TYPE I")
			fd := serverSocket(t, ts.Addr, rc.conn)
			dc := rc.pasv()
			probesBefore := keepaliveProbesSent(t)
			rc.must(150, "RETR slow.bin")
			// From here the control connection is silent both ways
			// until 226; the data flows at 512 KiB/s.
			got := make(chan []byte, 1)
			go func() { b, _ := io.ReadAll(dc); got <- b }()
			time.Sleep(2500 * time.Millisecond)
			info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				t.Fatalf("TCP_INFO: %v", err)
			}
			probes := keepaliveProbesSent(t) - probesBefore
			lastAck := time.Duration(info.Last_ack_recv) * time.Millisecond
			lastData := time.Duration(info.Last_data_recv) * time.Millisecond
			t.Logf("2.5s into the download: control socket's last ACK %v ago, last data %v ago, unanswered probes %d; keepalive probes sent in this network namespace: %d",
				lastAck, lastData, info.Probes, probes)
			if lastData < 2*time.Second {
				t.Fatalf("the control connection received data %v ago: it was not idle, the test proves nothing", lastData)
			}
			if tc.keepalive > 0 {
				if lastAck > 1500*time.Millisecond {
					t.Errorf("keepalive 1s: the last ACK on the idle control connection is %v old: no probes answered", lastAck)
				}
				// Namespace-wide, so only a floor: other processes'
				// probes can add to it, never take from it.
				if probes < 1 {
					t.Errorf("keepalive 1s: the kernel counted %d keepalive probes", probes)
				}
				if info.Probes != 0 {
					t.Errorf("%d probes unanswered", info.Probes)
				}
			} else if lastAck < 2*time.Second {
				t.Errorf("keepalive off: an ACK arrived %v ago on the silent control connection", lastAck)
			}
			b := <-got
			dc.Close()
			rc.expect(226)
			if !bytes.Equal(b, payload) {
				t.Fatalf("download: %d bytes, want %d", len(b), size)
			}
			rc.must(221, "QUIT")
		})
	}
}
