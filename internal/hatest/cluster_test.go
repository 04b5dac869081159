package hatest

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
	"github.com/cloudftpd/cloudftpd/internal/s3test"
)

// Ports inside the topology.
const (
	ftpPort     = "21"
	metricsPort = "9121"
	pgPort      = "5432" // the relay to PostgreSQL on rtrLAN
	s3Port      = "7070" // the relay to versitygw on rtrLAN
	bucket      = "ha-exchange"
)

// cluster is the whole setup: topology, shared services, balancer, nodes.
type cluster struct {
	tp    *topology
	bin   string // the cloudftpd binary
	pg    *pgtest.Cluster
	dsn   string // the users' database, from the test's side
	s3    *s3test.Server
	lb    *balancer
	hook  *hookReceiver
	nodes [nodeCount + 1]*node // 1-based
}

// newCluster builds everything and returns once the balancer sees every
// node up.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	clienttest.Need(t, "haproxy")
	clienttest.Need(t, "curl")
	tp := newTopology(t)
	c := &cluster{tp: tp}
	c.s3 = s3test.Versitygw(t, bucket)
	c.pg = pgtest.Start(t)
	c.dsn = c.pg.NewDatabase(t)
	c.bin = buildServer(t, t.TempDir())

	// The nodes reach the services at rtrLAN, as they would reach RDS
	// and an S3 endpoint in the VPC.
	s3u, err := url.Parse(c.s3.URL)
	if err != nil {
		t.Fatal(err)
	}
	relay(t, tp.rtr, net.JoinHostPort(rtrLAN, s3Port), s3u.Host)
	relay(t, tp.rtr, net.JoinHostPort(rtrLAN, pgPort), fmt.Sprintf("127.0.0.1:%d", c.pg.Port))
	c.hook = startHookReceiver(t, tp)

	dsnURL, err := url.Parse(c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(dsnURL.Path, "/")
	for i := 1; i <= nodeCount; i++ {
		c.nodes[i] = c.newNode(t, i, dbName)
	}
	// Every node may run the migration at start-up; they serialise on an
	// advisory lock. Run it from two at once to show it.
	errs := make(chan string, 2)
	for _, i := range []int{1, 2} {
		go func() {
			r := c.nodes[i].cli(t, "", "db", "migrate")
			if !r.OK() {
				errs <- r.String()
				return
			}
			errs <- ""
		}()
	}
	for range 2 {
		if e := <-errs; e != "" {
			t.Fatalf("db migrate: %s", e)
		}
	}
	for i := 1; i <= nodeCount; i++ {
		c.nodes[i].start(t)
	}
	c.lb = startBalancer(t, tp)
	for i := 1; i <= nodeCount; i++ {
		c.lb.waitState(t, i, "UP")
	}
	return c
}

// buildTimeout bounds "go build"; in CI the build cache may hold only
// the race-enabled packages of the test run.
const buildTimeout = 2 * time.Minute

// buildServer builds cmd/cloudftpd into dir, with -race when the test
// binary has it, so both share the build cache.
func buildServer(t *testing.T, dir string) string {
	t.Helper()
	goProg := clienttest.Need(t, "go")
	bin := filepath.Join(dir, "cloudftpd")
	args := []string{"build", "-o", bin}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				args = append(args, "-race")
			}
		}
	}
	args = append(args, "github.com/cloudftpd/cloudftpd/cmd/cloudftpd")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goProg, args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// node is one cloudftpd process in its namespace, restartable.
type node struct {
	i      int
	c      *cluster
	ns     string
	dir    string
	config string
	audit  string                // the audit sink's file: upload.committed events
	log    *clienttest.LogBuffer // every run's output, in order
	cmd    *exec.Cmd             // the current run; nil when stopped
	exited chan struct{}
}

// nodeConfig is a node's cloudftpd.toml. The node listens on its private
// address; the balancer connects there with PROXY v2 and the node's PASV
// replies carry its public address, so that data connections go straight
// to it.
const nodeConfig = `# written by internal/hatest
[server]
banner = "cloudftpd ha node n%[1]d"
idle_timeout = "60s"
data_timeout = "10s"
stall_timeout = "20s"
login_failure_delay = "10ms"
drain_delay = "1s"       # > the balancer's inter 300ms x fall 2
shutdown_grace = "15s"
state_dir = "state"

[[listener]]
address = "%[2]s:21"
passive_ports = "50000-50019"
proxy_protocol = true
proxy_trusted = ["%[3]s/32"]

  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "%[4]s"

[storage]
backend = "s3"
bucket = %[5]q
prefix = "ftp/"
region = %[6]q
endpoint = "http://%[7]s:%[8]s"
path_style = true

[auth]
store = "postgres"

[auth.postgres]
dsn = "postgres://postgres@%[7]s:%[9]s/%[10]s?sslmode=disable"
poll_interval = "2s"

[defender]
threshold = 10
allow = ["%[11]s/32"]    # the partner; the attacker address is scored

[events]
lease = "3s"             # a dead node's sinks are taken over after this (default 10s)

[[events.sink]]
name = "audit"
kind = "audit"
path = "audit.jsonl"
types = ["upload.committed"]

[[events.sink]]
name = "partner-portal"
kind = "webhook"
url = "http://%[7]s:%[13]s/events"
secret = %[14]q
types = ["upload.committed"]
users = ["partner-ev*"]
timeout = "2s"
retry_min = "200ms"
retry_max = "1s"

[log]
level = "debug"

[metrics]
address = "%[2]s:%[12]s"
`

func (c *cluster) newNode(t *testing.T, i int, dbName string) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{i: i, c: c, ns: c.tp.nodes[i], dir: dir, config: filepath.Join(dir, "cloudftpd.toml"),
		audit: filepath.Join(dir, "audit.jsonl"), log: &clienttest.LogBuffer{}}
	cfg := fmt.Sprintf(nodeConfig, i, nodeAddr(i), lbAddr, nodePublic(i), bucket, s3test.Region,
		rtrLAN, s3Port, pgPort, dbName, cliAddr, metricsPort, hookPort, hookSecret)
	if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n.cmd != nil {
			n.stop(t)
		}
		if t.Failed() {
			t.Logf("node n%d config:\n%s\nnode n%d log:\n%s", i, cfg, i, n.log)
		}
	})
	return n
}

// env is what a node's processes get: versitygw's credentials through
// the standard AWS chain, and no instance metadata lookups.
func (n *node) env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + n.c.s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + n.c.s3.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s3test.Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// cli runs "cloudftpd ARGS --config NODE-CONFIG" in the node's namespace,
// as an operator on that node would.
func (n *node) cli(t *testing.T, stdin string, args ...string) clienttest.Result {
	t.Helper()
	args = append(args, "--config", n.config)
	return clienttest.Run(context.Background(), clienttest.Cmd{
		Prog: n.c.bin, Args: args, Stdin: stdin, Dir: n.dir, Env: n.env(), Wrap: n.c.tp.wrap(n.ns),
	})
}

// start runs the node and waits until its /healthz answers 200.
func (n *node) start(t *testing.T) {
	t.Helper()
	if n.cmd != nil {
		t.Fatalf("node n%d already runs", n.i)
	}
	fmt.Fprintf(n.log, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	// "ip netns exec" execs cloudftpd in place, so signals reach it.
	cmd := exec.Command(n.c.tp.ip, "netns", "exec", n.ns, n.c.bin, "serve", "--config", n.config)
	cmd.Dir = n.dir
	cmd.Env = append(os.Environ(), n.env()...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node n%d: %v", n.i, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	n.cmd, n.exited = cmd, exited

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			n.cmd = nil
			t.Fatalf("node n%d exited at start-up (%v):\n%s", n.i, cmd.ProcessState, n.log)
		default:
		}
		code, body, err := n.health()
		if err == nil && code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node n%d not ready after 20s: %d %q %v\n%s", n.i, code, body, err, n.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// health asks the node's /healthz from the balancer's namespace, as the
// balancer's check does.
func (n *node) health() (int, string, error) {
	hc := http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DialContext: dialer{ns: n.c.tp.lb}.DialContext, DisableKeepAlives: true},
	}
	resp, err := hc.Get("http://" + net.JoinHostPort(nodeAddr(n.i), metricsPort) + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text())
	}
	return resp.StatusCode, b.String(), nil
}

// stop sends SIGTERM and waits for a clean exit: the node drains
// (drain_delay), closes its listeners and lets transfers finish.
func (n *node) stop(t *testing.T) {
	t.Helper()
	fmt.Fprintf(n.log, "---- SIGTERM %s\n", time.Now().Format(time.RFC3339Nano))
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		if code := n.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("node n%d: exit %d after SIGTERM", n.i, code)
		}
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
		t.Errorf("node n%d did not exit within 30s of SIGTERM", n.i)
	}
	n.cmd = nil
}

// kill ends the node with SIGKILL, as a crash or a lost instance.
func (n *node) kill(t *testing.T) {
	t.Helper()
	fmt.Fprintf(n.log, "---- SIGKILL %s\n", time.Now().Format(time.RFC3339Nano))
	n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// restart stops the node with SIGTERM, starts it again and waits until
// the balancer sends it clients.
func (n *node) restart(t *testing.T) {
	t.Helper()
	n.stop(t)
	n.start(t)
	n.c.lb.waitState(t, n.i, "UP")
}

// balancer is HAProxy in the lb namespace.
type balancer struct {
	stats string // its admin socket (a Unix socket: no namespace)
	log   *clienttest.LogBuffer
}

// haproxyConfig sends the control port to the nodes with PROXY v2 and
// checks each node's /healthz on its metrics port (which gets no PROXY
// header). Only the control port goes through the balancer: data
// connections go to each node's own public address. A connection that
// finds its node dead (refused) is sent to another one (redispatch).
const haproxyConfig = `global
  log stdout format raw local0
  stats socket %[1]s mode 600 level admin
defaults
  mode tcp
  log global
  option tcplog
  timeout connect 2s
  timeout client 2m
  timeout server 2m
  retries 2
  option redispatch 1
frontend ftp_control
  bind %[2]s:21
  default_backend cloudftpd
backend cloudftpd
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  default-server send-proxy-v2 check port %[3]s inter 300ms fall 2 rise 2
%[4]s`

func startBalancer(t *testing.T, tp *topology) *balancer {
	t.Helper()
	prog := clienttest.Need(t, "haproxy")
	dir := t.TempDir()
	b := &balancer{stats: filepath.Join(dir, "admin.sock"), log: &clienttest.LogBuffer{}}
	var servers strings.Builder
	for i := 1; i <= nodeCount; i++ {
		fmt.Fprintf(&servers, "  server n%d %s:%s\n", i, nodeAddr(i), ftpPort)
	}
	cfgText := fmt.Sprintf(haproxyConfig, b.stats, lbAddr, metricsPort, servers.String())
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tp.ip, "netns", "exec", tp.lb, prog, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = b.log, b.log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy config:\n%s\nhaproxy log:\n%s", cfgText, b.log)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("haproxy exited: %v\n%s", cmd.ProcessState, b.log)
		default:
		}
		if _, err := b.states(); err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy's admin socket does not answer\n%s", b.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// states returns the check state of every node ("UP", "DOWN", "UP 1/2",
// ...) from "show stat" on the admin socket, by server name.
func (b *balancer) states() (map[string]string, error) {
	c, err := net.DialTimeout("unix", b.stats, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return nil, err
	}
	r := csv.NewReader(c)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("haproxy: empty show stat")
	}
	status := -1
	for i, h := range rows[0] {
		if h == "status" {
			status = i
		}
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) > status && status >= 0 && row[0] == "cloudftpd" && strings.HasPrefix(row[1], "n") {
			out[row[1]] = row[status]
		}
	}
	return out, nil
}

// waitState waits until the balancer reports node i in state want.
func (b *balancer) waitState(t *testing.T, i int, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := b.states()
		if err == nil && st[fmt.Sprintf("n%d", i)] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy: node n%d not %s after 15s: %v %v\n%s", i, want, st, err, b.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hookPort is the webhook receiver's port on rtrLAN.
const hookPort = "8088"

// hookSecret signs the webhook requests (the receiver does not check
// signatures: the server tests do).
const hookSecret = "hatest-webhook-secret-0123456789"

// hookReceiver is the nodes' webhook sink: an HTTP server of the test
// process listening in the rtr namespace. While refusing, it answers 503
// to every event, so that events stay undelivered in the outbox.
type hookReceiver struct {
	mu       sync.Mutex
	refuse   bool
	attempts int
	ids      map[string]map[string]bool // path -> distinct event ids delivered
}

func startHookReceiver(t *testing.T, tp *topology) *hookReceiver {
	t.Helper()
	h := &hookReceiver{ids: map[string]map[string]bool{}}
	var ln net.Listener
	err := inNetns(tp.rtr, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(rtrLAN, hookPort))
		return err
	})
	if err != nil {
		t.Fatalf("webhook receiver: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var e struct{ ID, Type, Path string }
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	if h.refuse {
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	if h.ids[e.Path] == nil {
		h.ids[e.Path] = map[string]bool{}
	}
	h.ids[e.Path][e.ID] = true
	w.WriteHeader(http.StatusNoContent)
}

// setRefuse makes the receiver refuse (503) or accept events.
func (h *hookReceiver) setRefuse(refuse bool) {
	h.mu.Lock()
	h.refuse = refuse
	h.mu.Unlock()
}

// delivered returns how many distinct events each path got.
func (h *hookReceiver) delivered() (map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for p, ids := range h.ids {
		out[p] = len(ids)
	}
	return out, h.attempts
}
