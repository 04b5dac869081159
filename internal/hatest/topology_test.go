package hatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// Addresses of the topology (see the package doc): documentation ranges
// and a private /24, only inside the namespaces the test creates.
const (
	cliAddr      = "203.0.113.20" // the partner
	attackerAddr = "203.0.113.66" // a second address of cli, scored by the defender
	rtrCli       = "203.0.113.1"
	rtrLAN       = "10.88.0.1" // rtr on the bridge; the relays listen here
	lbAddr       = "10.88.0.10"
	lbPublic     = "198.51.100.10" // the balancer's public address
)

// nodeCount is the number of cloudftpd nodes.
const nodeCount = 3

// nodeAddr is node i's (1-based) private address, nodePublic its public
// one, which its PASV replies carry.
func nodeAddr(i int) string   { return fmt.Sprintf("10.88.0.%d", 10+i) }
func nodePublic(i int) string { return fmt.Sprintf("198.51.100.%d", 10+i) }

// dialTimeout bounds every TCP connection attempt of the test.
const dialTimeout = 3 * time.Second

// nsPrefix starts the name of every namespace the test creates, so stale
// ones from killed runs can be recognised: cfha-<pid>-<random>-<role>.
const nsPrefix = "cfha-"

// topology is the set of namespaces of one test run.
type topology struct {
	ip      string
	rtr, lb string
	cli     string
	nodes   [nodeCount + 1]string // 1-based
}

// newTopology builds the namespaces, veths, the bridge, routes and NAT
// rules, and removes them all when the test ends.
func newTopology(t *testing.T) *topology {
	t.Helper()
	if os.Geteuid() != 0 {
		clienttest.Unavailable(t, "HA test: needs root to create network namespaces (euid %d)", os.Geteuid())
	}
	tp := &topology{ip: clienttest.Need(t, "ip")}
	clienttest.Need(t, "iptables")
	removeStaleNamespaces(t, tp.ip)

	var rnd [2]byte
	rand.Read(rnd[:])
	base := fmt.Sprintf("%s%d-%s-", nsPrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	tp.rtr, tp.lb, tp.cli = base+"rtr", base+"lb", base+"cli"
	all := []string{tp.rtr, tp.lb, tp.cli}
	for i := 1; i <= nodeCount; i++ {
		tp.nodes[i] = fmt.Sprintf("%sn%d", base, i)
		all = append(all, tp.nodes[i])
	}
	t.Cleanup(func() {
		for _, ns := range all {
			if r := runCmd(tp.ip, "netns", "del", ns); !r.OK() && !strings.Contains(r.Stderr, "No such file") {
				t.Errorf("cleanup: %s", r)
			}
		}
	})
	if r := runCmd(tp.ip, "netns", "add", tp.rtr); !r.OK() {
		clienttest.Unavailable(t, "HA test: cannot create a network namespace:\n%s", r)
	}
	for _, ns := range all[1:] {
		tp.must(t, "", "netns", "add", ns)
	}
	for _, ns := range all {
		tp.must(t, ns, "link", "set", "lo", "up")
	}

	// The client's link.
	tp.must(t, tp.rtr, "link", "add", "to-cli", "type", "veth", "peer", "name", "eth0", "netns", tp.cli)
	tp.must(t, tp.rtr, "addr", "add", rtrCli+"/24", "dev", "to-cli")
	tp.must(t, tp.rtr, "link", "set", "to-cli", "up")
	tp.must(t, tp.cli, "addr", "add", cliAddr+"/24", "dev", "eth0")
	tp.must(t, tp.cli, "addr", "add", attackerAddr+"/24", "dev", "eth0")
	tp.must(t, tp.cli, "link", "set", "eth0", "up")
	tp.must(t, tp.cli, "route", "add", "default", "via", rtrCli)

	// The private network: a bridge in rtr, one port per member.
	tp.must(t, tp.rtr, "link", "add", "br0", "type", "bridge")
	tp.must(t, tp.rtr, "addr", "add", rtrLAN+"/24", "dev", "br0")
	tp.must(t, tp.rtr, "link", "set", "br0", "up")
	members := map[string]string{tp.lb: lbAddr}
	for i := 1; i <= nodeCount; i++ {
		members[tp.nodes[i]] = nodeAddr(i)
	}
	n := 0
	for ns, addr := range members {
		n++
		port := fmt.Sprintf("p%d", n)
		tp.must(t, tp.rtr, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		tp.must(t, tp.rtr, "link", "set", port, "master", "br0")
		tp.must(t, tp.rtr, "link", "set", port, "up")
		tp.must(t, ns, "addr", "add", addr+"/24", "dev", "eth0")
		tp.must(t, ns, "link", "set", "eth0", "up")
		tp.must(t, ns, "route", "add", "default", "via", rtrLAN)
	}

	// 1:1 NAT as on EC2: each public address belongs to one private one.
	// Replies go back through rtr (every member's default route), where
	// conntrack undoes the translation.
	tp.inNS(t, tp.rtr, "sysctl", "-w", "net.ipv4.ip_forward=1")
	nat := map[string]string{lbPublic: lbAddr}
	for i := 1; i <= nodeCount; i++ {
		nat[nodePublic(i)] = nodeAddr(i)
	}
	for pub, priv := range nat {
		tp.inNS(t, tp.rtr, "iptables", "-w", "5", "-t", "nat", "-A", "PREROUTING", "-i", "to-cli", "-d", pub, "-j", "DNAT", "--to-destination", priv)
	}
	return tp
}

// must runs "ip [-n ns] args..." and fails the test on error.
func (tp *topology) must(t *testing.T, ns string, args ...string) {
	t.Helper()
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if r := runCmd(tp.ip, args...); !r.OK() {
		t.Fatalf("topology: %s", r)
	}
}

// inNS runs a program inside ns and fails the test on error.
func (tp *topology) inNS(t *testing.T, ns, prog string, args ...string) clienttest.Result {
	t.Helper()
	r := tp.run(ns, "", prog, args...)
	if !r.OK() {
		t.Fatalf("topology: %s", r)
	}
	return r
}

// run runs prog inside namespace ns, in dir, with clienttest.Run's limits.
func (tp *topology) run(ns, dir, prog string, args ...string) clienttest.Result {
	return clienttest.Run(context.Background(), clienttest.Cmd{
		Prog: prog, Args: args, Dir: dir, Wrap: []string{tp.ip, "netns", "exec", ns},
	})
}

// wrap is the command prefix that runs a program inside ns.
func (tp *topology) wrap(ns string) []string { return []string{tp.ip, "netns", "exec", ns} }

func runCmd(prog string, args ...string) clienttest.Result {
	return clienttest.Run(context.Background(), clienttest.Cmd{Prog: prog, Args: args})
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
			continue
		}
		t.Logf("removing stale namespace %s", e.Name())
		runCmd(ip, "netns", "del", e.Name())
	}
}
