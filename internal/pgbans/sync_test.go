package pgbans

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

// TestSync runs the two-node tests on one PostgreSQL server, each in a
// database of its own.
func TestSync(t *testing.T) {
	c := pgtest.Start(t)
	for _, tc := range []struct {
		name string
		f    func(*testing.T, *pgtest.Cluster)
	}{
		{"BanOnAHoldsOnB", testBanOnAHoldsOnB},
		{"UnbanPropagates", testUnbanPropagates},
		{"ScoresAddUp", testScoresAddUp},
		{"ListenerKilled", testListenerKilled},
		{"PollCatchesMissedNotification", testPollCatchesMissedNotification},
		{"StartsFromTheDatabase", testStartsFromTheDatabase},
		{"DatabaseDown", testDatabaseDown},
		{"AllowedRefused", testAllowedRefused},
		{"LocalBanThenUnban", testLocalBanThenUnban},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, c) })
	}
}

// syncLog is a concurrency-safe log buffer.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// node is one node's defender and its Sync.
type node struct {
	name string
	d    *defender.Defender
	s    *Sync
	log  *syncLog
	// closed counts the OnBan calls by prefix (the server closes the
	// banned prefix's sessions there).
	mu     sync.Mutex
	closed map[netip.Prefix]int
}

func (n *node) onBans(p netip.Prefix) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed[p]
}

// startNode starts a node on dsn: the default limits, with the allow
// list empty so that test addresses are scored.
func startNode(t *testing.T, dsn, name string, opts Options) *node {
	t.Helper()
	n := &node{name: name, log: &syncLog{}, closed: map[netip.Prefix]int{}}
	logger := slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := defender.New(defender.Config{Logger: logger, OnBan: func(b defender.Ban) {
		n.mu.Lock()
		n.closed[b.Prefix]++
		n.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	opts.Node, opts.Logger = name, logger
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Second
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 200 * time.Millisecond
	}
	n.d, n.s = d, New(pgtest.Pool(t, dsn), d, opts)
	d.SetShare(n.s)
	ctx, cancel := context.WithCancel(context.Background())
	n.s.Start(ctx)
	t.Cleanup(func() {
		cancel()
		n.s.Close()
		d.Close()
		if t.Failed() {
			t.Logf("log of node %s:\n%s", name, n.log)
		}
	})
	waitFor(t, 10*time.Second, name+" reads the bans", n.s.Ready)
	return n
}

// waitFor polls cond every 10ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func guess(d *defender.Defender, a netip.Addr, n int) {
	for range n {
		d.Score(a, defender.LoginFailed)
	}
}

// testBanOnAHoldsOnB: five failed logins on node A ban the address there
// at once, and node B refuses it within two seconds (the notification),
// closing its sessions there too; B lists the ban as A's.
func testBanOnAHoldsOnB(t *testing.T, c *pgtest.Cluster) {
	dsn, _ := c.Migrated(t)
	a, b := startNode(t, dsn, "a", Options{}), startNode(t, dsn, "b", Options{PollInterval: time.Minute})
	attacker := netip.MustParseAddr("203.0.113.7")
	guess(a.d, attacker, 5)
	if a.d.Admit(attacker) {
		t.Fatal("A admits the address it banned")
	}
	took := waitFor(t, 2*time.Second, "B refuses the address A banned", func() bool { return !b.d.Admit(attacker) })
	t.Logf("ban on A enforced on B after %v", took.Round(time.Millisecond))
	bans := b.d.Bans()
	if len(bans) != 1 || bans[0].Node != "a" || !strings.Contains(bans[0].Reason, "login_failed x5") {
		t.Errorf("B's bans: %+v", bans)
	}
	if b.onBans(bans[0].Prefix) != 1 {
		t.Errorf("B's OnBan calls for the ban: %d, want 1", b.onBans(bans[0].Prefix))
	}
	if n := strings.Count(b.log.String(), `msg="defender: banned"`); n != 1 {
		t.Errorf("B logged %d bans, want 1", n)
	}
	if n := strings.Count(a.log.String(), `msg="defender: banned"`); n != 1 {
		t.Errorf("A logged %d bans, want 1 (its own, not again from the database)", n)
	}
	listed, err := b.s.Bans(context.Background())
	if err != nil || len(listed) != 1 || listed[0].Node != "a" {
		t.Errorf("the database's bans: %+v %v", listed, err)
	}
}

// testUnbanPropagates: a ban by hand through B and its removal through A
// reach the other node within two seconds.
func testUnbanPropagates(t *testing.T, c *pgtest.Cluster) {
	dsn, _ := c.Migrated(t)
	a, b := startNode(t, dsn, "a", Options{PollInterval: time.Minute}), startNode(t, dsn, "b", Options{PollInterval: time.Minute})
	ctx := context.Background()
	net := netip.MustParsePrefix("198.51.100.0/24")
	inside := netip.MustParseAddr("198.51.100.20")
	ban, err := b.s.Ban(ctx, net, time.Hour, "scanner network")
	if err != nil {
		t.Fatal(err)
	}
	if !ban.Manual || ban.Node != "b" || ban.Until.Sub(ban.Since) != time.Hour {
		t.Errorf("ban: %+v", ban)
	}
	if b.d.Admit(inside) {
		t.Error("B admits inside its own ban")
	}
	took := waitFor(t, 2*time.Second, "A refuses the network B banned", func() bool { return !a.d.Admit(inside) })
	t.Logf("ban by hand on B enforced on A after %v", took.Round(time.Millisecond))

	if err := a.s.Unban(ctx, netip.MustParsePrefix("198.51.100.20/32")); !errors.Is(err, defender.ErrNotBanned) || !strings.Contains(err.Error(), "198.51.100.0/24") {
		t.Errorf("unban of an address inside the ban: %v", err)
	}
	if err := a.s.Unban(ctx, net); err != nil {
		t.Fatal(err)
	}
	if !a.d.Admit(inside) {
		t.Error("A still refuses after its unban")
	}
	took = waitFor(t, 2*time.Second, "B admits again after A's unban", func() bool { return b.d.Admit(inside) })
	t.Logf("unban on A effective on B after %v", took.Round(time.Millisecond))
	if err := b.s.Unban(ctx, net); !errors.Is(err, defender.ErrNotBanned) {
		t.Errorf("second unban: %v, want ErrNotBanned", err)
	}
}

// testScoresAddUp: an attacker spreading its guesses over two nodes (3
// failed logins on A, 2 on B: 6 + 4 points, under the threshold on each)
// is banned on both at the threshold of the two together, once.
func testScoresAddUp(t *testing.T, c *pgtest.Cluster) {
	dsn, pool := c.Migrated(t)
	a, b := startNode(t, dsn, "a", Options{}), startNode(t, dsn, "b", Options{})
	attacker := netip.MustParseAddr("2001:db8:1:2::99")
	guess(a.d, attacker, 3)
	guess(b.d, attacker, 2)
	if !a.d.Admit(attacker) || !b.d.Admit(attacker) {
		t.Fatal("banned by one node's points alone")
	}
	took := waitFor(t, 3*time.Second, "both nodes refuse the spread attacker", func() bool {
		return !a.d.Admit(attacker) && !b.d.Admit(attacker)
	})
	t.Logf("6 points on A + 4 on B: banned on both after %v", took.Round(time.Millisecond))
	var rows int
	var reason string
	if err := pool.QueryRow(context.Background(), `SELECT count(*), max(reason) FROM cloudftpd_bans`).Scan(&rows, &reason); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || reason != "10 points in 5m0s on 2 nodes" {
		t.Errorf("%d ban rows, reason %q; want one, \"10 points in 5m0s on 2 nodes\"", rows, reason)
	}
	if bans := a.d.Bans(); len(bans) != 1 || bans[0].Prefix != netip.MustParsePrefix("2001:db8:1:2::/64") {
		t.Errorf("A's bans: %+v, want the /64", bans)
	}
}

// testListenerKilled: B's listening session is killed in the database
// (pg_terminate_backend) and a ban is made on A meanwhile; B connects
// again, reads the bans afresh and refuses the address within two
// seconds.
func testListenerKilled(t *testing.T, c *pgtest.Cluster) {
	dsn, pool := c.Migrated(t)
	a, b := startNode(t, dsn, "a", Options{}), startNode(t, dsn, "b", Options{PollInterval: time.Minute})
	ctx := context.Background()
	loads := b.s.loads.Load()
	var killed int
	if err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
		ListenerName("b")).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("killed %d listening sessions of B (%v), want 1", killed, err)
	}
	if _, err := a.s.Ban(ctx, netip.MustParsePrefix("192.0.2.66/32"), time.Hour, "while B was away"); err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("192.0.2.66")
	took := waitFor(t, 2*time.Second, "B refuses after losing its listener", func() bool { return !b.d.Admit(addr) })
	t.Logf("B caught up %v after its listener was killed", took.Round(time.Millisecond))
	if b.s.loads.Load() <= loads {
		t.Error("B did not read the bans afresh")
	}
	if !strings.Contains(b.log.String(), "ban database unavailable") {
		t.Error("B did not log the lost connection")
	}
}

// testPollCatchesMissedNotification: a ban written without its
// notification (triggers disabled, counter bumped by hand, as if the
// notification were lost) reaches B by its poll.
func testPollCatchesMissedNotification(t *testing.T, c *pgtest.Cluster) {
	dsn, _ := c.Migrated(t)
	b := startNode(t, dsn, "b", Options{PollInterval: 300 * time.Millisecond})
	c.Exec(t, dsn, `SET session_replication_role = replica;
		INSERT INTO cloudftpd_bans (prefix, reason, until, forget, node) VALUES ('192.0.2.77/32', 'by SQL', now() + interval '1 hour', now() + interval '25 hours', 'sql');
		UPDATE cloudftpd_bans_version SET version = version + 1`)
	addr := netip.MustParseAddr("192.0.2.77")
	took := waitFor(t, 2*time.Second, "B refuses the ban it was not notified of", func() bool { return !b.d.Admit(addr) })
	t.Logf("poll found the ban after %v", took.Round(time.Millisecond))
}

// testStartsFromTheDatabase: a node started after the bans were made
// refuses them from its first read, including a ban made in SQL by hand.
func testStartsFromTheDatabase(t *testing.T, c *pgtest.Cluster) {
	dsn, _ := c.Migrated(t)
	c.Exec(t, dsn, `INSERT INTO cloudftpd_bans (prefix, reason) VALUES ('203.0.113.0/24', 'by SQL, forever')`)
	n := startNode(t, dsn, "late", Options{})
	if n.d.Admit(netip.MustParseAddr("203.0.113.200")) {
		t.Error("a node started after the ban admits it")
	}
}

// testDatabaseDown: with PostgreSQL stopped, A still bans on its own; the
// ban and the points scored meanwhile reach the database and B once it
// is back.
func testDatabaseDown(t *testing.T, c *pgtest.Cluster) {
	dsn, _ := c.Migrated(t)
	a := startNode(t, dsn, "a", Options{PollInterval: 500 * time.Millisecond})
	b := startNode(t, dsn, "b", Options{PollInterval: 500 * time.Millisecond})
	c.Stop()
	banned, scored := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
	guess(a.d, banned, 5)
	guess(a.d, scored, 3)
	if a.d.Admit(banned) {
		t.Fatal("A admits what it banned while the database is down")
	}
	time.Sleep(700 * time.Millisecond) // A tries, fails, keeps them
	c.Start()
	guess(b.d, scored, 2)
	took := waitFor(t, 10*time.Second, "B refuses both addresses after the database is back", func() bool {
		return !b.d.Admit(banned) && !b.d.Admit(scored)
	})
	t.Logf("caught up %v after the restart", took.Round(time.Millisecond))
	if !strings.Contains(a.log.String(), "ban database reachable again") {
		t.Error("A did not log the recovery")
	}
}

// testAllowedRefused: a ban of a prefix inside the node's allow list is
// refused before the database is asked.
func testAllowedRefused(t *testing.T, c *pgtest.Cluster) {
	dsn, _ := c.Migrated(t)
	d, err := defender.New(defender.Config{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := New(pgtest.Pool(t, dsn), d, Options{Node: "a"})
	if _, err := s.Ban(context.Background(), netip.MustParsePrefix("10.1.0.0/16"), 0, ""); !errors.Is(err, defender.ErrAllowed) {
		t.Errorf("ban inside the allow list: %v, want ErrAllowed", err)
	}
}

// testLocalBanThenUnban: a ban and its removal made on A's defender in a
// row (as the state-file path of the control API would) end with no ban
// anywhere: the ban's write does not bring it back on A.
func testLocalBanThenUnban(t *testing.T, c *pgtest.Cluster) {
	dsn, pool := c.Migrated(t)
	a, b := startNode(t, dsn, "a", Options{}), startNode(t, dsn, "b", Options{})
	p := netip.MustParsePrefix("192.0.2.99/32")
	for range 20 {
		if _, err := a.d.Ban(p, time.Hour, ""); err != nil {
			t.Fatal(err)
		}
		if err := a.d.Unban(p); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 3*time.Second, "the queue written", func() bool {
		a.s.mu.Lock()
		defer a.s.mu.Unlock()
		return len(a.s.queue) == 0 && len(a.s.held) == 0
	})
	var rows int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM cloudftpd_bans`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d ban rows (%v), want none", rows, err)
	}
	time.Sleep(200 * time.Millisecond) // notifications of the last writes
	if !a.d.Admit(p.Addr()) || !b.d.Admit(p.Addr()) {
		t.Errorf("banned after ban+unban: A admits %v, B admits %v", a.d.Admit(p.Addr()), b.d.Admit(p.Addr()))
	}
}
