package hatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/s3test"
)

// scenario is one part of TestHA. They run in order on one cluster (the
// set-up is the expensive part), each with users of its own.
type scenario struct {
	name string
	run  func(t *testing.T, c *cluster)
	// pending, when set, names what the scenario waits for (a branch
	// that shares that state through PostgreSQL): it is skipped with
	// that reason, unless pendingEnv is set (to see whether a merge made
	// it pass). Delete the field's value to enable it for good.
	pending string
}

// pendingEnv, set to 1, runs the pending scenarios too.
const pendingEnv = "CLOUDFTPD_HATEST_PENDING"

var scenarios = []scenario{
	{name: "UserAddedOnNode1LogsInOnNode3", run: testUserPropagates},
	{name: "ChangedPasswordRefusedEverywhere", run: testPasswordChange},
	{name: "KillNodeMidDownloadResumeElsewhere", run: testKillMidDownload},
	{name: "RollingRestartLosesNoUpload", run: testRollingRestart},
	{name: "QuotaFillsAcrossNodes", run: testQuotaAcrossNodes},
	{name: "BanOnNode2HoldsOnNode1", run: testBanAcrossNodes},
	{name: "EventsOfAKilledNodeDeliveredByAnother", run: testOutboxSurvivesNode},
}

// TestHA runs three cloudftpd nodes behind HAProxy, sharing users in
// PostgreSQL and files in S3, and shows what a partner sees when users
// change, when a node dies mid-transfer and when every node is
// restarted in turn (see the package doc for the topology).
func TestHA(t *testing.T) {
	start := time.Now()
	c := newCluster(t)
	t.Logf("cluster ready in %v", time.Since(start).Round(time.Millisecond))
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if sc.pending != "" && os.Getenv(pendingEnv) != "1" {
				t.Skipf("pending: %s (%s=1 runs it)", sc.pending, pendingEnv)
			}
			st := time.Now()
			sc.run(t, c)
			t.Logf("%s: %v", sc.name, time.Since(st).Round(time.Millisecond))
		})
	}
}

// addUser adds a user to the database with "cloudftpd user add" run on
// node i, as an operator would.
func (c *cluster) addUser(t *testing.T, i int, name, pass string) {
	t.Helper()
	if r := c.nodes[i].cli(t, pass+"\n", "user", "add", name, "--password-stdin"); !r.OK() {
		t.Fatalf("user add on n%d: %s", i, r)
	}
}

// setLimits sets a user's limits in SQL, as an operator may.
func (c *cluster) setLimits(t *testing.T, name, limits string) {
	t.Helper()
	c.pg.Exec(t, c.dsn, "UPDATE cloudftpd_users SET limits = $1::jsonb WHERE name = $2", limits, name)
}

// propagation bounds how long a change in the database may take to reach
// every node ("within a few seconds"; about one second when the machine
// is not loaded, see the logged times), and the ban's spread.
const propagation = 8 * time.Second

// loginsUntil logs in through the balancer until every node has answered
// PASS with want, or propagation is over. It returns, per node, how long
// after from the first such answer came, and fails on an answer that
// moves backwards (want, then something else, on the same node).
func (c *cluster) loginsUntil(t *testing.T, from time.Time, user, pass string, want int) map[string]time.Duration {
	t.Helper()
	seen := map[string]time.Duration{}
	for len(seen) < nodeCount {
		if time.Since(from) > propagation {
			t.Fatalf("after %v, nodes answering %d to %s's login: %v (want all %d)", propagation, want, user, seen, nodeCount)
		}
		res, err := tryLogin(c.tp.cli, cliAddr, balancerAddr, user, pass)
		if err != nil {
			t.Fatalf("login through the balancer: %v", err)
		}
		_, had := seen[res.node]
		switch {
		case res.code == want && !had:
			seen[res.node] = time.Since(from)
		case res.code != want && had:
			t.Fatalf("node %s answered %d to %s's login after it had answered %d", res.node, res.code, user, want)
		case res.code != want:
			time.Sleep(50 * time.Millisecond)
		}
	}
	return seen
}

func testUserPropagates(t *testing.T, c *cluster) {
	const user, pass = "partner-new", "partner-new-secret-1"
	// Not there yet: refused.
	res, err := tryLogin(c.tp.cli, cliAddr, balancerAddr, user, pass)
	if err != nil || res.code != 530 {
		t.Fatalf("login before the user exists: %+v %v, want 530", res, err)
	}
	c.addUser(t, 1, user, pass)
	added := time.Now()
	seen := c.loginsUntil(t, added, user, pass, 230)
	t.Logf("user added on n1; first successful login per node after: %v", seen)
	if _, ok := seen["n3"]; !ok {
		t.Fatalf("no login on n3: %v", seen)
	}
	// And the session works: an upload through one node is listed
	// through the others (one bucket).
	cl, err := c.dial(balancerAddr, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Quit()
	if err := cl.Stor("hello.txt", strings.NewReader("hello from "+cl.node())); err != nil {
		t.Fatalf("STOR: %v", err)
	}
	wrote := cl.node()
	for range nodeCount {
		other, err := c.dial(balancerAddr, user, pass)
		if err != nil {
			t.Fatal(err)
		}
		names, err := other.NameList("")
		node := other.node()
		other.Quit()
		if err != nil || len(names) != 1 || filepath.Base(names[0]) != "hello.txt" {
			t.Fatalf("NLST on %s after STOR on %s: %v %v", node, wrote, names, err)
		}
	}
}

func testPasswordChange(t *testing.T, c *cluster) {
	const user, oldPass, newPass = "partner-pw", "old-secret-1", "new-secret-2"
	c.addUser(t, 1, user, oldPass)
	c.loginsUntil(t, time.Now(), user, oldPass, 230)
	// Changed through node 2's command line, against the database.
	if r := c.nodes[2].cli(t, newPass+"\n", "user", "passwd", user, "--password-stdin"); !r.OK() {
		t.Fatalf("user passwd on n2: %s", r)
	}
	changed := time.Now()
	refused := c.loginsUntil(t, changed, user, oldPass, 530)
	t.Logf("password changed on n2; old password refused per node after: %v", refused)
	c.loginsUntil(t, time.Now(), user, newPass, 230)
}

// downloadSize and downloadRate make the download last a few seconds, so
// that the node can be killed while it runs.
const (
	downloadSize = 4 << 20
	downloadRate = "1MiB"
)

// curlArgs are curl's options for the balancer setup: PASV with the
// reply's address (EPSV would reuse the balancer's address, and curl
// ignores the PASV address by default).
func curlArgs(extra ...string) []string {
	return append([]string{"-sS", "-v", "--disable-epsv", "--no-ftp-skip-pasv-ip", "--connect-timeout", "5", "--max-time", "60"}, extra...)
}

var greetingRE = regexp.MustCompile(`< 220 cloudftpd ha node (n\d)`)

// pasvRE finds the address of curl's PASV reply, dataRE the data
// connection curl opened.
var pasvRE = regexp.MustCompile(`< 227 Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)`)
var dataRE = regexp.MustCompile(`Connecting to (\S+) \(\S+\) port (\d+)`)

// checkDataPath checks, from curl's -v output, that the node's PASV reply
// named its own public address and that curl's data connection went
// there, not through the balancer.
func checkDataPath(t *testing.T, verbose, node string) {
	t.Helper()
	i, _ := strconv.Atoi(strings.TrimPrefix(node, "n"))
	m := pasvRE.FindStringSubmatch(verbose)
	if m == nil {
		t.Fatalf("no PASV reply in curl's output:\n%s", verbose)
	}
	if got := strings.Join(m[1:5], "."); got != nodePublic(i) {
		t.Fatalf("%s's PASV reply names %s, want its own public address %s", node, got, nodePublic(i))
	}
	p1, _ := strconv.Atoi(m[5])
	p2, _ := strconv.Atoi(m[6])
	want := fmt.Sprintf("%s port %d", nodePublic(i), p1<<8|p2)
	for _, d := range dataRE.FindAllStringSubmatch(verbose, -1) {
		if d[1]+" port "+d[2] == want {
			return
		}
	}
	t.Fatalf("curl did not open its data connection to %s:\n%s", want, verbose)
}

var restRE = regexp.MustCompile(`> REST (\d+)`)

func testKillMidDownload(t *testing.T, c *cluster) {
	const user, pass = "partner-dl", "partner-dl-secret"
	c.addUser(t, 1, user, pass)
	c.setLimits(t, user, fmt.Sprintf(`{"download_rate": %q}`, downloadRate))
	c.loginsUntil(t, time.Now(), user, pass, 230)
	data := randomBytes(downloadSize)
	up, err := c.dial(balancerAddr, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Stor("big.bin", bytes.NewReader(data)); err != nil {
		t.Fatalf("STOR big.bin: %v", err)
	}
	up.Quit()
	// The rate is read at login: give the change time to arrive before
	// the download's session logs in (it was made before the upload).
	time.Sleep(time.Second)

	curl := clienttest.Need(t, "curl")
	work := t.TempDir()
	out := filepath.Join(work, "big.bin")
	src := fmt.Sprintf("ftp://%s:%s@%s/big.bin", user, pass, balancerAddr)

	// The first download, cut by killing its node.
	log := &clienttest.LogBuffer{}
	cmd := exec.Command(c.tp.ip, append([]string{"netns", "exec", c.tp.cli, curl}, curlArgs("-o", out, src)...)...)
	cmd.Dir = work
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var victim string
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := greetingRE.FindStringSubmatch(log.String()); m != nil {
			victim = m[1]
		}
		fi, _ := os.Stat(out)
		if victim != "" && fi != nil && fi.Size() >= 1<<20 {
			t.Logf("download on %s at %d of %d bytes: killing %s", victim, fi.Size(), downloadSize, victim)
			break
		}
		select {
		case err := <-done:
			t.Fatalf("download ended before the kill (err %v; is download_rate applied?):\n%s", err, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("download did not get 1 MiB in 15s:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkDataPath(t, log.String(), victim)
	vi, _ := strconv.Atoi(strings.TrimPrefix(victim, "n"))
	c.nodes[vi].kill(t)
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("curl reported success for a download whose node was killed:\n%s", log)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("curl did not notice its node dying in 30s:\n%s", log)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Size() >= downloadSize {
		t.Fatalf("after the kill the partial file is %v (%v), want part of %d bytes", fi, err, downloadSize)
	}
	cut := fi.Size()
	t.Logf("curl after the kill (%d bytes kept): %s", cut, lastLine(log.String()))

	// The client retries through the balancer with REST, as curl -C -
	// (or lftp's reget) does; the balancer sends it to a live node.
	var r clienttest.Result
	for attempt := 1; attempt <= 5; attempt++ {
		r = clienttest.Run(context.Background(), clienttest.Cmd{
			Prog: curl, Args: curlArgs("-C", "-", "-o", out, src), Dir: work,
			Wrap: c.tp.wrap(c.tp.cli), Timeout: 60 * time.Second,
		})
		if r.OK() {
			break
		}
		t.Logf("resume attempt %d failed: %s", attempt, lastLine(r.Stderr))
		time.Sleep(500 * time.Millisecond)
	}
	if !r.OK() {
		t.Fatalf("resume failed: %s", r)
	}
	m := greetingRE.FindStringSubmatch(r.Stderr)
	if m == nil || m[1] == victim {
		t.Fatalf("resume served by %v, want a node other than the killed %s:\n%s", m, victim, r.Stderr)
	}
	checkDataPath(t, r.Stderr, m[1])
	rest := restRE.FindStringSubmatch(r.Stderr)
	if rest == nil || rest[1] != strconv.FormatInt(cut, 10) {
		t.Fatalf("resume sent REST %v, want REST %d:\n%s", rest, cut, r.Stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha(got) != sha(data) {
		t.Fatalf("resumed file: %d bytes sha256 %s, want %d bytes %s", len(got), sha(got), len(data), sha(data))
	}
	t.Logf("resumed on %s from REST %d: sha256 matches", m[1], cut)

	// Bring the killed node back for the next scenarios.
	c.nodes[vi].start(t)
	c.lb.waitState(t, vi, "UP")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// uploader loops uploads through the balancer, reconnecting when its
// session is closed, and records what the server answered 226 to.
type uploader struct {
	id        int
	committed map[string]string // name -> sha256, for the 226s
	perNode   map[string]int    // 226s by the node that stored them
	failed    int
	firstErr  error // the first upload that failed, for the log
	reconnect int
}

func (u *uploader) run(ctx context.Context, c *cluster, user, pass string) {
	var cl *client
	defer func() {
		if cl != nil {
			cl.Quit()
		}
	}()
	for seq := 0; ctx.Err() == nil; {
		if cl == nil {
			var err error
			if cl, err = c.dial(balancerAddr, user, pass); err != nil {
				cl = nil
				u.reconnect++
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		seq++
		name := fmt.Sprintf("u%d-%04d.bin", u.id, seq)
		data := randomBytes(32<<10 + seq%7*4096)
		if err := cl.Stor(name, bytes.NewReader(data)); err != nil {
			// Not committed as far as the client knows: a drained
			// session's 421, or a connection refused mid-way.
			u.failed++
			if u.firstErr == nil {
				u.firstErr = fmt.Errorf("%s on %s: %w", name, cl.node(), err)
			}
			cl.Quit()
			cl = nil
			continue
		}
		u.committed[name] = sha(data)
		u.perNode[cl.node()]++
		time.Sleep(20 * time.Millisecond)
	}
}

func testRollingRestart(t *testing.T, c *cluster) {
	const user, pass = "partner-up", "partner-up-secret"
	c.addUser(t, 1, user, pass)
	c.loginsUntil(t, time.Now(), user, pass, 230)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	ups := make([]*uploader, 3)
	for i := range ups {
		ups[i] = &uploader{id: i, committed: map[string]string{}, perNode: map[string]int{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ups[i].run(ctx, c, user, pass)
		}()
	}
	time.Sleep(time.Second)
	for i := 1; i <= nodeCount; i++ {
		st := time.Now()
		c.nodes[i].restart(t)
		t.Logf("n%d restarted (SIGTERM, drain, start, UP at the balancer) in %v", i, time.Since(st).Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()

	committed := map[string]string{}
	perNode := map[string]int{}
	failed, reconnects := 0, 0
	for _, u := range ups {
		for k, v := range u.committed {
			committed[k] = v
		}
		for n, k := range u.perNode {
			perNode[n] += k
		}
		failed += u.failed
		reconnects += u.reconnect
		if u.firstErr != nil {
			t.Logf("client %d: first upload not committed: %v", u.id, u.firstErr)
		}
	}
	t.Logf("uploads: %d committed (226) %v, %d not, %d failed connection attempts", len(committed), perNode, failed, reconnects)
	for i := 1; i <= nodeCount; i++ {
		if perNode[fmt.Sprintf("n%d", i)] == 0 {
			t.Errorf("no upload was stored through n%d: the balancer did not spread the sessions", i)
		}
	}
	if len(committed) < 20 {
		t.Fatalf("only %d uploads committed during the rolling restart", len(committed))
	}

	// Every 226 is in the bucket with the bytes sent.
	stored := map[string]bool{}
	for _, k := range c.s3.Keys(t, "ftp/"+user+"/") {
		stored[strings.TrimPrefix(k, "ftp/"+user+"/")] = true
	}
	lost := 0
	for name, want := range committed {
		b, err := c.s3.Get(context.Background(), "ftp/"+user+"/"+name)
		if err != nil || sha(b) != want {
			lost++
			t.Errorf("committed upload %s: in the bucket %v (%v), sha256 %s want %s", name, stored[name], err, sha(b), want)
		}
	}
	if lost == 0 {
		t.Logf("all %d committed uploads are in the bucket with their sha256", len(committed))
	}

	// Exactly one upload.committed event for each, and none for an
	// upload that is not stored. Delivery to the audit sinks is
	// asynchronous: wait for it.
	var ev map[string]map[string]bool
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev = c.committedEvents(t, user)
		missing := 0
		for name := range committed {
			if len(ev["/"+name]) == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for name := range committed {
		if n := len(ev["/"+name]); n != 1 {
			t.Errorf("upload %s: %d upload.committed events, want 1", name, n)
		}
	}
	for p, ids := range ev {
		name := strings.TrimPrefix(p, "/")
		if !stored[name] {
			t.Errorf("upload.committed event(s) %v for %s, which is not in the bucket", ids, p)
		} else if _, ok := committed[name]; !ok {
			t.Logf("%s was stored and has an event, but its client did not get the 226", p)
		}
	}
}

// committedEvents reads every node's audit log and returns, per path,
// the distinct ids of user's upload.committed events (an event delivered
// twice, at least once, has one id).
func (c *cluster) committedEvents(t *testing.T, user string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for i := 1; i <= nodeCount; i++ {
		b, err := os.ReadFile(c.nodes[i].audit)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var e struct{ ID, Type, User, Path string }
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatalf("n%d audit log: %v: %s", i, err, line)
			}
			if e.Type != "upload.committed" || e.User != user {
				continue
			}
			if out[e.Path] == nil {
				out[e.Path] = map[string]bool{}
			}
			out[e.Path][e.ID] = true
		}
	}
	return out
}

// storOn uploads data as name on a session opened straight to node i
// (at its public address, without the balancer).
func (c *cluster) storOn(t *testing.T, i int, user, pass, name string, data []byte) error {
	t.Helper()
	cl, err := c.dial(nodeDirect(i), user, pass)
	if err != nil {
		t.Fatalf("login on n%d: %v", i, err)
	}
	defer cl.Quit()
	return cl.Stor(name, bytes.NewReader(data))
}

func testQuotaAcrossNodes(t *testing.T, c *cluster) {
	const user, pass = "partner-quota", "partner-quota-secret"
	c.addUser(t, 1, user, pass)
	c.setLimits(t, user, `{"quota_bytes": "1MiB"}`)
	c.loginsUntil(t, time.Now(), user, pass, 230)
	time.Sleep(time.Second) // the limit arrives with the user's row
	// 600 KiB through node 1 leaves 424 KiB: node 2 must refuse another
	// 600 KiB, and node 3 accept 300 KiB and then refuse 300 KiB more.
	if err := c.storOn(t, 1, user, pass, "a.bin", randomBytes(600<<10)); err != nil {
		t.Fatalf("first upload on n1: %v", err)
	}
	c.refused(t, user, "b.bin", c.storOn(t, 2, user, pass, "b.bin", randomBytes(600<<10)),
		"600 KiB on n2 past a 1 MiB quota holding 600 KiB from n1")
	if err := c.storOn(t, 3, user, pass, "c.bin", randomBytes(300<<10)); err != nil {
		t.Fatalf("300 KiB on n3 within the quota: %v", err)
	}
	c.refused(t, user, "d.bin", c.storOn(t, 2, user, pass, "d.bin", randomBytes(300<<10)),
		"300 KiB on n2 with 900 KiB used on n1 and n3")
}

// refused checks that an upload past the quota failed and left nothing.
// The client sees the 552, or, when the server stopped reading at the
// crossing while the client was still sending, a reset data connection
// (README, "Per-user limits").
func (c *cluster) refused(t *testing.T, user, name string, err error, what string) {
	t.Helper()
	var reply *textproto.Error
	switch {
	case err == nil:
		t.Fatalf("%s: accepted, want 552", what)
	case errors.As(err, &reply) && reply.Code != 552:
		t.Fatalf("%s: %v, want 552", what, err)
	}
	if _, herr := c.s3.Head(context.Background(), "ftp/"+user+"/"+name); !s3test.NotFound(herr) {
		t.Fatalf("%s: refused (%v), but the bucket has %s (%v)", what, err, name, herr)
	}
}

func testBanAcrossNodes(t *testing.T, c *cluster) {
	const user, pass = "partner-ban", "partner-ban-secret"
	c.addUser(t, 1, user, pass)
	c.loginsUntil(t, time.Now(), user, pass, 230)
	// The attacker guesses on node 2 (straight to it, so that the
	// guesses land there) until node 2 bans it: 2 points per failure,
	// threshold 10.
	// The ban closes the session it lands in (often while the failure
	// delay runs, so the guess gets no reply).
	cut := false
	for try := 0; try < 10 && !cut; try++ {
		res, err := tryLogin(c.tp.cli, attackerAddr, nodeDirect(2), user, "guess-"+strconv.Itoa(try))
		switch {
		case err != nil:
			cut = true
		case res.code == 230:
			t.Fatalf("guess %d on n2 logged in", try)
		}
	}
	if !cut {
		t.Fatal("n2 did not ban the attacker after 10 failed logins")
	}
	if res, err := tryLogin(c.tp.cli, attackerAddr, nodeDirect(2), user, pass); err == nil || res.node != "" {
		t.Fatalf("n2 after the ban: %+v %v, want the connection closed before the greeting", res, err)
	}
	// Node 1 holds the ban: straight to it, and through the balancer.
	deadline := time.Now().Add(propagation)
	for _, addr := range []string{nodeDirect(1), balancerAddr, balancerAddr, balancerAddr} {
		for {
			res, err := tryLogin(c.tp.cli, attackerAddr, addr, user, pass)
			if err != nil && res.node == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("attacker banned on n2 still gets %+v (%v) at %s after %v", res, err, addr, propagation)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The partner is not affected.
	c.loginsUntil(t, time.Now(), user, pass, 230)
}

// testOutboxSurvivesNode records events on node 1 while the webhook
// receiver refuses them, kills node 1 for good, and expects the other
// nodes to deliver them from the shared outbox, each exactly once. (With
// an outbox per node they would wait for node 1 to come back.)
func testOutboxSurvivesNode(t *testing.T, c *cluster) {
	const user, pass = "partner-ev", "partner-ev-secret"
	c.addUser(t, 1, user, pass)
	c.loginsUntil(t, time.Now(), user, pass, 230)
	c.hook.setRefuse(true)
	defer c.hook.setRefuse(false)
	const files = 5
	for k := range files {
		if err := c.storOn(t, 1, user, pass, fmt.Sprintf("ev-%d.bin", k), randomBytes(4096)); err != nil {
			t.Fatalf("upload %d on n1: %v", k, err)
		}
	}
	// Node 1 has tried (and been refused): the events are in the outbox.
	deadline := time.Now().Add(propagation)
	for _, n := c.hook.delivered(); n == 0; _, n = c.hook.delivered() {
		if time.Now().After(deadline) {
			t.Fatal("no delivery attempt reached the webhook receiver")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.nodes[1].kill(t)
	defer func() {
		c.nodes[1].start(t)
		c.lb.waitState(t, 1, "UP")
	}()
	c.hook.setRefuse(false)
	deadline = time.Now().Add(15 * time.Second)
	for {
		got, attempts := c.hook.delivered()
		done := 0
		for k := range files {
			if got[fmt.Sprintf("/ev-%d.bin", k)] >= 1 {
				done++
			}
		}
		if done == files {
			for k := range files {
				if n := got[fmt.Sprintf("/ev-%d.bin", k)]; n != 1 {
					t.Errorf("/ev-%d.bin: %d distinct events delivered, want 1", k, n)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after node 1 died, %d of %d events of its uploads delivered by the other nodes (%d attempts in all): %v", done, files, attempts, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
