package pgoutbox

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

// Both outbox stores are what the dispatcher delivers from.
var _ delivery.Outbox = (*Store)(nil)

// receiver is one webhook receiver for every node: it records which node
// (the URL's node parameter) delivered which event id, in arrival order.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []delivered
	// hold, when set, is asked for every request: true keeps it
	// unanswered until the request's connection goes away.
	hold func(node string, n int) bool
}

type delivered struct{ node, id string }

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		node, id := req.URL.Query().Get("node"), req.Header.Get(delivery.HeaderEventID)
		// Read to the end, so that the server notices a client that
		// goes away (the request's context ends).
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		n := 0
		for _, d := range r.got {
			if d.node == node {
				n++
			}
		}
		hold := r.hold != nil && r.hold(node, n)
		if !hold {
			r.got = append(r.got, delivered{node, id})
		}
		r.mu.Unlock()
		if hold {
			<-req.Context().Done() // the node is killed meanwhile
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// distinct is how many different event ids arrived.
func (r *receiver) distinct() int {
	seen := map[string]bool{}
	for _, d := range r.deliveries() {
		seen[d.id] = true
	}
	return len(seen)
}

// eventsConfig is every node's [events]: one webhook sink, its URL naming
// the node.
func eventsConfig(url, node string) events.Config {
	return events.Config{
		StateDir: "unused: the outbox is in PostgreSQL",
		Sinks: []events.SinkConfig{{
			Name: "hook", Kind: events.KindWebhook, URL: url + "?node=" + node, Secret: "0123456789abcdef0123456789",
			RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond,
		}},
	}
}

// dispatcherNode is one node's store and running dispatcher.
type dispatcherNode struct {
	store *Store
	d     *delivery.Dispatcher
	stop  func() // ends Run, closes the dispatcher and the store
}

func startNode(t *testing.T, dsn, name, url string, lease time.Duration, logs *clienttest.LogBuffer) *dispatcherNode {
	t.Helper()
	s := node(t, dsn, name, lease, logs)
	log := slog.New(slog.NewTextHandler(logs, nil)).With("node", name)
	d, err := delivery.New(context.Background(), s, eventsConfig(url, name), delivery.Options{Logger: log, Poll: 50 * time.Millisecond, PruneEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	var once sync.Once
	n := &dispatcherNode{store: s, d: d}
	n.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			d.Close()
			s.Close()
		})
	}
	t.Cleanup(n.stop)
	return n
}

// seqOrder is the outbox's event ids in seq order.
func seqOrder(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT id FROM cloudftpd_outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		out = append(out, id)
	}
	return out
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTwoNodesDeliverOnce: two nodes on one database record events
// concurrently and deliver to one webhook receiver: every event arrives
// exactly once, in the outbox's order. When the delivering node stops
// cleanly, the other carries on from its cursor at once, still exactly
// once.
func TestTwoNodesDeliverOnce(t *testing.T) {
	c := pgtest.Start(t)
	dsn := migrated(t, c)
	rcv := newReceiver(t)
	var logs clienttest.LogBuffer
	const lease = time.Second
	nodes := []*dispatcherNode{
		startNode(t, dsn, "a", rcv.srv.URL, lease, &logs),
		startNode(t, dsn, "b", rcv.srv.URL, lease, &logs),
	}

	const workers, each = 6, 25
	var wg sync.WaitGroup
	for w := range workers {
		n := nodes[w%2]
		wg.Go(func() {
			for i := range each {
				if err := n.d.Record(events.Event{Type: events.UploadCommitted, User: "alice", Path: fmt.Sprintf("/in/w%d-%d", w, i), Result: events.ResultOK}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := workers * each
	waitFor(t, "every event delivered", 30*time.Second, func() bool { return rcv.distinct() == total })
	time.Sleep(300 * time.Millisecond) // time for a duplicate to show
	got := rcv.deliveries()
	checkOnceInOrder(t, got, seqOrder(t, nodes[0].store))
	holder := got[0].node
	for _, d := range got {
		if d.node != holder {
			t.Fatalf("deliveries from both nodes (%s and %s) while both were up: the lease did not hold", holder, d.node)
		}
	}
	t.Logf("%d events recorded on two nodes, delivered once each by node %s", total, holder)

	// The holder stops (a rolling restart); the other goes on.
	survivor := nodes[1]
	if holder == "b" {
		nodes[0], survivor = nodes[1], nodes[0]
	}
	nodes[0].stop()
	stopped := time.Now()
	for i := range 20 {
		if err := survivor.d.Record(events.Event{Type: events.UploadCommitted, User: "bob", Path: fmt.Sprintf("/in/after-%d", i), Result: events.ResultOK}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the events recorded after the stop", 30*time.Second, func() bool { return rcv.distinct() == total+20 })
	t.Logf("the other node delivered the next events %v after the holder stopped (lease %v)", time.Since(stopped).Round(time.Millisecond), lease)
	time.Sleep(300 * time.Millisecond)
	got = rcv.deliveries()
	checkOnceInOrder(t, got, seqOrder(t, survivor.store))
	for _, d := range got[total:] {
		if d.node == holder {
			t.Fatalf("event %s delivered by the stopped node", d.id)
		}
	}
	if !strings.Contains(logs.String(), "handed over") {
		t.Errorf("no handover in the log:\n%s", logs.String())
	}
}

// checkOnceInOrder fails unless got holds every id of order once, in
// that order.
func checkOnceInOrder(t *testing.T, got []delivered, order []string) {
	t.Helper()
	var ids []string
	seen := map[string]int{}
	for _, d := range got {
		ids = append(ids, d.id)
		seen[d.id]++
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	if !slices.Equal(ids, order) {
		t.Errorf("deliveries not in the outbox's order:\n got %v\nwant %v", ids, order)
	}
}

// killChildEnv carries what the killed node of TestNodeKilledMidDelivery
// needs: the database and the receiver's URL.
const killChildEnv = "CLOUDFTPD_PGOUTBOX_KILL_CHILD"

// childBatch is the killed node's batch size: at most this many events
// are delivered twice.
const childBatch = 5

// TestNodeKilledMidDelivery: the node delivering a sink is killed with
// SIGKILL in the middle of a batch (a webhook request in flight). The
// other node takes the sink over once the lease has run out, from the
// cursor: every event arrives, and the only ones that arrive twice are
// those the dead node delivered after its last recorded progress, at
// most one batch.
func TestNodeKilledMidDelivery(t *testing.T) {
	if env := os.Getenv(killChildEnv); env != "" {
		killChild(env)
		return
	}
	c := pgtest.Start(t)
	dsn := migrated(t, c)
	rcv := newReceiver(t)
	const accepted = 12 // then the child's next request hangs until it dies
	held := make(chan struct{})
	var heldOnce sync.Once
	rcv.hold = func(node string, n int) bool {
		if node == "child" && n >= accepted {
			heldOnce.Do(func() { close(held) })
			return true
		}
		return false
	}
	const lease = time.Second

	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeKilledMidDelivery$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dsn+" "+rcv.srv.URL)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the child node ended before it was ready")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the child node did not get ready")
	}
	// The child holds the sink before node a starts.
	probe := pgtest.Pool(t, dsn)
	waitFor(t, "the child to take the sink's lease", 30*time.Second, func() bool {
		var holder string
		probe.QueryRow(context.Background(), `SELECT lease_holder FROM cloudftpd_outbox_sinks WHERE sink = 'hook'`).Scan(&holder)
		return holder == "child"
	})
	var logs clienttest.LogBuffer
	a := startNode(t, dsn, "a", rcv.srv.URL, lease, &logs)
	const total = 40
	for i := range total {
		if err := a.d.Record(events.Event{Type: events.UploadCommitted, User: "alice", Path: fmt.Sprintf("/in/f%02d", i), Result: events.ResultOK}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatalf("the child did not deliver %d events (got %v)", accepted, rcv.deliveries())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitFor(t, "node a to deliver everything", 30*time.Second, func() bool { return rcv.distinct() == total })
	took := time.Since(killed)
	time.Sleep(300 * time.Millisecond)

	got := rcv.deliveries()
	order := seqOrder(t, a.store)
	var fromChild, fromA []string
	for _, d := range got {
		if d.node == "child" {
			fromChild = append(fromChild, d.id)
		} else {
			fromA = append(fromA, d.id)
		}
	}
	if !slices.Equal(fromChild, order[:accepted]) {
		t.Fatalf("the child delivered %v, want the first %d in order", fromChild, accepted)
	}
	// The child recorded its progress after each batch: a starts from
	// there, repeating what the child delivered of the batch it was in
	// (the one holding the request that hung) and nothing before.
	resume := len(order)
	if len(fromA) > 0 {
		resume = slices.Index(order, fromA[0])
	}
	if resume < accepted+1-childBatch || resume > accepted || !slices.Equal(fromA, order[resume:]) {
		t.Fatalf("node a delivered %v,\nwant the events from the dead node's cursor (one of the %d before event %d) on, in order: %v",
			fromA, childBatch, accepted, order)
	}
	t.Logf("node a took over %v after the kill (lease %v): %d events delivered twice (of the dead node's unrecorded batch), none lost",
		took.Round(time.Millisecond), lease, accepted-resume)
	if took < lease/2 {
		t.Errorf("node a took over %v after the kill, before the lease (%v) could run out", took, lease)
	}
	if !strings.Contains(logs.String(), "lease ran out on another node") {
		t.Errorf("no takeover warning in the log:\n%s", logs.String())
	}
}

// killChild is the node TestNodeKilledMidDelivery kills: it delivers the
// sink "hook" in batches of childBatch until it is killed.
func killChild(env string) {
	dsn, url, _ := strings.Cut(env, " ")
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	pool, err := pgdb.Open(pgdb.Options{DSN: dsn})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	s, err := Open(ctx, pool, Options{Node: "child", Lease: time.Second})
	if err != nil {
		fail(err)
	}
	d, err := delivery.New(ctx, s, eventsConfig(url, "child"), delivery.Options{Poll: 50 * time.Millisecond, BatchSize: childBatch})
	if err != nil {
		fail(err)
	}
	go d.Run(ctx)
	os.Stdout.WriteString("ready\n")
	select {} // until killed
}

// TestRollingSinkChange: a node started with a config that lacks a sink
// another node delivers (a rolling config change) keeps that sink's place
// in the outbox rather than removing it, and says so.
func TestRollingSinkChange(t *testing.T) {
	c := pgtest.Start(t)
	dsn := migrated(t, c)
	rcv := newReceiver(t)
	var logs clienttest.LogBuffer
	a := startNode(t, dsn, "a", rcv.srv.URL, time.Second, &logs)
	if err := a.d.Record(events.Event{Type: events.LoginOK, User: "alice"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node a to deliver", 20*time.Second, func() bool { return rcv.distinct() == 1 })

	b := node(t, dsn, "b", time.Second, &logs)
	cfg := eventsConfig(rcv.srv.URL, "b")
	cfg.Sinks[0].Name = "renamed"
	d, err := delivery.New(context.Background(), b, cfg, delivery.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	names, err := b.Sinks(context.Background())
	if err != nil || !slices.Equal(names, []string{"hook", "renamed"}) {
		t.Fatalf("sinks after node b started without hook: %v, %v; want both kept", names, err)
	}
	if !strings.Contains(logs.String(), "another node delivers it") {
		t.Errorf("no log line for the kept sink:\n%s", logs.String())
	}
}
