package nattest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// Addresses of the topology. Only documentation ranges and a private /16,
// and only inside the namespaces the test creates.
const (
	srvAddr   = "10.77.0.10"    // the server's only address, like an EC2 private IP
	rtrSrv    = "10.77.0.1"     // router, toward srv (srv's default route)
	rtrVPN    = "10.77.1.1"     // router, toward the VPN client
	vpnAddr   = "10.77.1.20"    // VPN client, routed to srv without NAT
	elasticIP = "198.51.100.10" // the public address rtr NATs 1:1 to srvAddr
	rtrInet   = "203.0.113.1"   // router, toward the internet client
	inetAddr  = "203.0.113.20"  // internet client, reaches srv only via elasticIP
)

// execTimeout bounds waiting for the server process; every command the
// tests run is bounded by clienttest.DefaultTimeout.
const execTimeout = clienttest.DefaultTimeout

// nsPrefix starts the name of every namespace the tests create, so stale
// ones from killed runs can be recognised: cfnat-<pid>-<random>-<role>.
const nsPrefix = "cfnat-"

// dialEnv asks TestMain to act as a TCP probe instead of running tests: the
// test binary re-executes itself with "ip netns exec" to dial from inside a
// namespace (see dialFrom).
const dialEnv = "CLOUDFTPD_NATTEST_DIAL"

func TestMain(m *testing.M) {
	if addr := os.Getenv(dialEnv); addr != "" {
		os.Exit(dialProbe(addr))
	}
	os.Exit(m.Run())
}

// dialProbe connects to addr ("host:port,timeout") and exits 0 when the
// connection is established, 1 when it is not.
func dialProbe(arg string) int {
	addr, tmo, _ := strings.Cut(arg, ",")
	d, err := time.ParseDuration(tmo)
	if err != nil {
		d = 2 * time.Second
	}
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		fmt.Println("dial failed:", err)
		return 1
	}
	fmt.Println("connected", c.LocalAddr(), "->", c.RemoteAddr())
	c.Close()
	return 0
}

// runCmd runs a program in dir with stdin, the limits and environment of
// clienttest.Run (timeout, private HOME, no proxy settings), and without
// dialEnv, which would turn a re-executed test binary into the probe.
func runCmd(dir, stdin, prog string, args ...string) clienttest.Result {
	return runWrapped(nil, dir, stdin, prog, args...)
}

// runWrapped is runCmd with prog run through wrap ("ip netns exec NS").
func runWrapped(wrap []string, dir, stdin, prog string, args ...string) clienttest.Result {
	return clienttest.Run(context.Background(), clienttest.Cmd{
		Prog: prog, Args: args, Stdin: stdin, Dir: dir,
		Unset: []string{dialEnv}, Wrap: wrap,
	})
}

// topology is the set of namespaces of one test run.
type topology struct {
	ip                  string // path of the ip program
	srv, rtr, inet, vpn string // namespace names
}

// Interface names. Each lives in its own namespace, so they need no
// unique suffix: nothing is ever created in the host's namespace.
const (
	rtrToSrv  = "to-srv"
	rtrToInet = "to-inet"
	rtrToVPN  = "to-vpn"
	clientIf  = "eth0" // srv's, inet's and vpn's side of their veth
)

// newTopology builds the namespaces, veths, routes and NAT rules, and
// removes them all when the test ends, whether it passed or not.
func newTopology(t *testing.T) *topology {
	t.Helper()
	if os.Geteuid() != 0 {
		clienttest.Unavailable(t, "network test: needs root to create network namespaces (euid %d)", os.Geteuid())
	}
	tp := &topology{ip: clienttest.Need(t, "ip")}
	clienttest.Need(t, "iptables")

	removeStaleNamespaces(t, tp.ip)
	var rnd [2]byte
	rand.Read(rnd[:])
	base := fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	tp.srv, tp.rtr, tp.inet, tp.vpn = base+"srv", base+"rtr", base+"inet", base+"vpn"
	all := []string{tp.srv, tp.rtr, tp.inet, tp.vpn}
	for _, ns := range all {
		// A leftover with the same name (same pid and random suffix) is
		// unlikely but would make "netns add" fail.
		runCmd("", "", tp.ip, "netns", "del", ns)
	}
	t.Cleanup(func() {
		for _, ns := range all {
			// Deleting a namespace destroys its veth ends, and with
			// them their peers; its iptables rules go with it.
			if r := runCmd("", "", tp.ip, "netns", "del", ns); !r.OK() && !strings.Contains(r.Stderr, "No such file") {
				t.Errorf("cleanup: %s", r)
			}
		}
	})
	if r := runCmd("", "", tp.ip, "netns", "add", tp.srv); !r.OK() {
		clienttest.Unavailable(t, "network test: cannot create a network namespace:\n%s", r)
	}
	for _, ns := range all[1:] {
		tp.must(t, "", "netns", "add", ns)
	}
	for _, ns := range all {
		tp.must(t, ns, "link", "set", "lo", "up")
	}

	// One veth pair per link, created inside rtr with its peer moved
	// straight into the other namespace.
	for _, l := range []struct{ rtrIf, peerNS, rtrCIDR, peerCIDR string }{
		{rtrToSrv, tp.srv, rtrSrv + "/24", srvAddr + "/24"},
		{rtrToInet, tp.inet, rtrInet + "/24", inetAddr + "/24"},
		{rtrToVPN, tp.vpn, rtrVPN + "/24", vpnAddr + "/24"},
	} {
		tp.must(t, tp.rtr, "link", "add", l.rtrIf, "type", "veth", "peer", "name", clientIf, "netns", l.peerNS)
		tp.must(t, tp.rtr, "addr", "add", l.rtrCIDR, "dev", l.rtrIf)
		tp.must(t, tp.rtr, "link", "set", l.rtrIf, "up")
		tp.must(t, l.peerNS, "addr", "add", l.peerCIDR, "dev", clientIf)
		tp.must(t, l.peerNS, "link", "set", clientIf, "up")
	}
	// rtr owns the Elastic IP on its internet side, in its own public
	// subnet, like the EC2 edge does.
	tp.must(t, tp.rtr, "addr", "add", "198.51.100.1/24", "dev", rtrToInet)
	tp.must(t, tp.rtr, "addr", "add", elasticIP+"/32", "dev", rtrToInet)

	// srv replies to everyone through rtr, so conntrack un-NATs replies
	// to the internet client. The internet client has a default route
	// (the internet), the VPN client a route to the server's network.
	tp.must(t, tp.srv, "route", "add", "default", "via", rtrSrv)
	tp.must(t, tp.inet, "route", "add", "default", "via", rtrInet)
	tp.must(t, tp.vpn, "route", "add", "10.77.0.0/16", "via", rtrVPN)

	tp.inNS(t, tp.rtr, "sysctl", "-w", "net.ipv4.ip_forward=1")
	// 1:1 NAT as on EC2: everything to the Elastic IP goes to srv, and
	// srv's own connections toward the internet leave from the Elastic IP.
	// Both rules name the internet-side interface, so vpn<->srv traffic is
	// routed untouched.
	tp.iptables(t, "-t", "nat", "-A", "PREROUTING", "-i", rtrToInet, "-d", elasticIP, "-j", "DNAT", "--to-destination", srvAddr)
	tp.iptables(t, "-t", "nat", "-A", "POSTROUTING", "-o", rtrToInet, "-s", srvAddr, "-j", "SNAT", "--to-source", elasticIP)
	// The internet does not route private addresses: from the internet
	// side only DNATed connections, and replies to srv's own (SNATed)
	// ones, may reach 10.77.0.0/16. Packets are dropped, not rejected, so
	// a client that tries the private address hangs, as it does on EC2.
	tp.iptables(t, "-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	tp.iptables(t, "-A", "FORWARD", "-i", rtrToInet, "-d", "10.77.0.0/16", "-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP")
	return tp
}

// must runs "ip [-n ns] args..." and fails the test on error.
func (tp *topology) must(t *testing.T, ns string, args ...string) {
	t.Helper()
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if r := runCmd("", "", tp.ip, args...); !r.OK() {
		t.Fatalf("topology: %s", r)
	}
}

// inNS runs a program inside ns and fails the test on error.
func (tp *topology) inNS(t *testing.T, ns string, prog string, args ...string) clienttest.Result {
	t.Helper()
	r := tp.run(ns, "", "", prog, args...)
	if !r.OK() {
		t.Fatalf("topology: %s", r)
	}
	return r
}

// iptables adds a rule in rtr, waiting for the xtables lock (shared by
// every namespace of the machine) for a few seconds at most.
func (tp *topology) iptables(t *testing.T, args ...string) {
	t.Helper()
	tp.inNS(t, tp.rtr, "iptables", append([]string{"-w", "5"}, args...)...)
}

// run runs prog inside namespace ns (see runCmd).
func (tp *topology) run(ns, dir, stdin, prog string, args ...string) clienttest.Result {
	return runWrapped([]string{tp.ip, "netns", "exec", ns}, dir, stdin, prog, args...)
}

// dialFrom reports whether a TCP connection to addr can be established
// from inside ns within timeout. The test binary itself is the probe.
func (tp *topology) dialFrom(t *testing.T, ns, addr string, timeout time.Duration) (bool, clienttest.Result) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := clienttest.Run(context.Background(), clienttest.Cmd{
		Prog:    self,
		Env:     []string{dialEnv + "=" + addr + "," + timeout.String()},
		Timeout: timeout + 5*time.Second,
		Wrap:    []string{tp.ip, "netns", "exec", ns},
	})
	return r.OK(), r
}

// removeStaleNamespaces deletes namespaces left by test processes that
// no longer exist (killed before their cleanup ran).
func removeStaleNamespaces(t *testing.T, ip string) {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			continue // its creator still runs
		}
		t.Logf("removing stale namespace %s", e.Name())
		runCmd("", "", ip, "netns", "del", e.Name())
	}
}
