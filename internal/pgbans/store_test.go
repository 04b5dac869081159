package pgbans

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

// TestStore runs the Store's tests on one PostgreSQL server, each in a
// database of its own.
func TestStore(t *testing.T) {
	c := pgtest.Start(t)
	t.Run("StoreBans", func(t *testing.T) { testStoreBans(t, c) })
	t.Run("AddScoresAggregate", func(t *testing.T) { testAddScoresAggregate(t, c) })
	t.Run("AddScoresWindow", func(t *testing.T) { testAddScoresWindow(t, c) })
	t.Run("AddScoresConcurrentBansOnce", func(t *testing.T) { testAddScoresConcurrentBansOnce(t, c) })
	t.Run("Publish", func(t *testing.T) { testPublish(t, c) })
	t.Run("Prune", func(t *testing.T) { testPrune(t, c) })
	t.Run("NoSchema", func(t *testing.T) { testNoSchema(t, c) })
}

var limits = defender.Limits{Threshold: 10, Window: 5 * time.Minute, BanTime: 15 * time.Minute, MaxBanTime: 24 * time.Hour}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// testStoreBans: bans by hand are written, listed, escalated, replaced
// and lifted as the defender does them for one node.
func testStoreBans(t *testing.T, c *pgtest.Cluster) {
	_, pool := c.Migrated(t)
	ctx := context.Background()
	st := NewStore(pool, "node-a")

	b, err := st.Ban(ctx, pfx("203.0.113.7/32"), 0, "first", limits)
	if err != nil {
		t.Fatal(err)
	}
	if b.Strikes != 1 || !b.Manual || b.Node != "node-a" || b.Reason != "first" {
		t.Errorf("first ban: %+v", b)
	}
	if d := b.Until.Sub(b.Since); d != limits.BanTime {
		t.Errorf("first ban lasts %v, want ban_time %v", d, limits.BanTime)
	}
	// Again while remembered: a second strike, twice as long.
	b, err = st.Ban(ctx, pfx("203.0.113.7/32"), 0, "second", limits)
	if err != nil {
		t.Fatal(err)
	}
	if d := b.Until.Sub(b.Since); b.Strikes != 2 || d != 2*limits.BanTime || b.Reason != "second" {
		t.Errorf("second ban: strikes %d, %v, %q; want 2, %v", b.Strikes, d, b.Reason, 2*limits.BanTime)
	}
	if _, err := st.Ban(ctx, pfx("198.51.100.0/24"), defender.Forever, "net", limits); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Ban(ctx, pfx("2001:db8::/64"), 90*time.Minute, "", limits); err != nil {
		t.Fatal(err)
	}
	bans, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bans {
		got = append(got, b.Prefix.String())
	}
	if want := "198.51.100.0/24 203.0.113.7/32 2001:db8::/64"; strings.Join(got, " ") != want {
		t.Errorf("List: %v, want %s", got, want)
	}
	if !bans[0].Until.IsZero() {
		t.Errorf("forever ban has an end: %v", bans[0].Until)
	}
	if d := bans[2].Until.Sub(bans[2].Since); d != 90*time.Minute {
		t.Errorf("ban of 90m lasts %v", d)
	}

	// Unban: lifted; a second time, not banned; inside a wider ban, named.
	if err := st.Unban(ctx, pfx("203.0.113.7/32")); err != nil {
		t.Fatal(err)
	}
	if err := st.Unban(ctx, pfx("203.0.113.7/32")); !errors.Is(err, defender.ErrNotBanned) {
		t.Errorf("second unban: %v, want ErrNotBanned", err)
	}
	err = st.Unban(ctx, pfx("198.51.100.9/32"))
	if !errors.Is(err, defender.ErrNotBanned) || !strings.Contains(err.Error(), "198.51.100.0/24") {
		t.Errorf("unban inside a wider ban: %v", err)
	}
	// Unban forgot the strikes: the next ban is a first one.
	if b, _ := st.Ban(ctx, pfx("203.0.113.7/32"), 0, "", limits); b.Strikes != 1 {
		t.Errorf("ban after unban: strikes %d, want 1", b.Strikes)
	}
}

// testAddScoresAggregate: points from two nodes add up within the
// window, the ban is made once at the threshold and spends them, and the
// reason says how many nodes saw the attack.
func testAddScoresAggregate(t *testing.T, c *pgtest.Cluster) {
	_, pool := c.Migrated(t)
	ctx := context.Background()
	a, b := NewStore(pool, "a"), NewStore(pool, "b")
	p, other := pfx("203.0.113.9/32"), pfx("203.0.113.10/32")

	if made, err := a.AddScores(ctx, []Score{{p, 6}, {other, 2}}, limits); err != nil || len(made) != 0 {
		t.Fatalf("first batch: %v %v", made, err)
	}
	made, err := b.AddScores(ctx, []Score{{p, 4}}, limits)
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != 1 || made[0].Prefix != p || made[0].Manual || made[0].Node != "b" || made[0].Strikes != 1 {
		t.Fatalf("ban at 10 points: %+v", made)
	}
	if want := "10 points in 5m0s on 2 nodes"; made[0].Reason != want {
		t.Errorf("reason %q, want %q", made[0].Reason, want)
	}
	// Banned: more points change nothing, and started from zero.
	if made, err := a.AddScores(ctx, []Score{{p, 20}}, limits); err != nil || len(made) != 0 {
		t.Errorf("points against a banned prefix: %v %v", made, err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM cloudftpd_bans`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d ban rows (%v), want 1", n, err)
	}
	// The other prefix still has its 2 points.
	if made, err := b.AddScores(ctx, []Score{{other, 8}}, limits); err != nil || len(made) != 1 {
		t.Errorf("second prefix at 2+8 points: %v %v", made, err)
	}
}

// testAddScoresWindow: points older than the window do not count.
func testAddScoresWindow(t *testing.T, c *pgtest.Cluster) {
	_, pool := c.Migrated(t)
	ctx := context.Background()
	st := NewStore(pool, "a")
	lim := limits
	lim.Window = 600 * time.Millisecond
	p := pfx("192.0.2.1/32")
	if _, err := st.AddScores(ctx, []Score{{p, 9}}, lim); err != nil {
		t.Fatal(err)
	}
	time.Sleep(800 * time.Millisecond)
	made, err := st.AddScores(ctx, []Score{{p, 9}}, lim)
	if err != nil || len(made) != 0 {
		t.Fatalf("9 + 9 points a window apart: %v %v, want no ban", made, err)
	}
	if made, err := st.AddScores(ctx, []Score{{p, 1}}, lim); err != nil || len(made) != 1 {
		t.Fatalf("9 + 1 points within the window: %v %v, want a ban", made, err)
	}
}

// testAddScoresConcurrentBansOnce: eight nodes add the points that cross
// the threshold at the same moment; exactly one ban is made.
func testAddScoresConcurrentBansOnce(t *testing.T, c *pgtest.Cluster) {
	dsn, _ := c.Migrated(t)
	ctx := context.Background()
	const nodes = 8
	p := pfx("198.51.100.77/32")
	var wg sync.WaitGroup
	made := make([][]defender.Ban, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	for i := range nodes {
		st := NewStore(pgtest.Pool(t, dsn), string(rune('a'+i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// 3 points each, with a neighbour in the batch so rows lock in order.
			made[i], errs[i] = st.AddScores(ctx, []Score{{pfx("198.51.100.76/32"), 1}, {p, 3}}, limits)
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		total += len(made[i])
	}
	if total != 1 {
		t.Fatalf("%d bans made by %d nodes crossing the threshold together, want 1: %v", total, nodes, made)
	}
}

// testPublish: an automatic ban of a node is written once; a node that
// bans a prefix banned already gets the database's ban, escalated from
// the strikes the database remembers.
func testPublish(t *testing.T, c *pgtest.Cluster) {
	_, pool := c.Migrated(t)
	ctx := context.Background()
	a, b := NewStore(pool, "a"), NewStore(pool, "b")
	now := time.Now()
	local := defender.Ban{Prefix: pfx("203.0.113.50/32"), Reason: "10 points in 5m0s: login_failed x5", Since: now, Until: now.Add(limits.BanTime), Strikes: 1}
	got, err := a.Publish(ctx, local, limits)
	if err != nil {
		t.Fatal(err)
	}
	if got.Node != "a" || got.Reason != local.Reason || got.Strikes != 1 || got.Manual {
		t.Errorf("published: %+v", got)
	}
	again, err := b.Publish(ctx, local, limits)
	if err != nil {
		t.Fatal(err)
	}
	if again.Node != "a" || !again.Since.Equal(got.Since) {
		t.Errorf("second node's ban of a banned prefix: %+v, want a's %+v", again, got)
	}
	// Ended, but remembered: the next automatic ban is a second strike.
	if _, err := pool.Exec(ctx, `UPDATE cloudftpd_bans SET until = now() - interval '1 second', forget = now() + interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	third, err := b.Publish(ctx, local, limits)
	if err != nil {
		t.Fatal(err)
	}
	if third.Strikes != 2 || third.Until.Sub(third.Since) != 2*limits.BanTime || third.Node != "b" {
		t.Errorf("ban after a remembered one: %+v, want strike 2 for %v", third, 2*limits.BanTime)
	}
	// A manual ban keeps the node's length.
	man := defender.Ban{Prefix: pfx("192.0.2.0/24"), Since: now, Until: now.Add(time.Hour), Manual: true, Strikes: 1}
	if got, err := a.Publish(ctx, man, limits); err != nil || !got.Manual || got.Until.Sub(got.Since) != time.Hour {
		t.Errorf("manual publish: %+v %v", got, err)
	}
}

// testPrune: bans whose strikes are forgotten and scores that left the
// window are deleted; bans in force and remembered ones stay.
func testPrune(t *testing.T, c *pgtest.Cluster) {
	_, pool := c.Migrated(t)
	ctx := context.Background()
	st := NewStore(pool, "a")
	if _, err := pool.Exec(ctx, `INSERT INTO cloudftpd_bans (prefix, until, forget) VALUES
		('192.0.2.1/32', now() - interval '2 hours', now() - interval '1 hour'),
		('192.0.2.2/32', now() - interval '2 hours', now() + interval '1 hour'),
		('192.0.2.3/32', now() + interval '1 hour', now() + interval '2 hours'),
		('192.0.2.4/32', NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO cloudftpd_ban_scores (prefix, updated) VALUES
		('192.0.2.5/32', now() - interval '1 hour'), ('192.0.2.6/32', now())`); err != nil {
		t.Fatal(err)
	}
	n, err := st.Prune(ctx, limits.Window)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d rows (%v), want 2", n, err)
	}
	var left string
	pool.QueryRow(ctx, `SELECT string_agg(prefix::text, ' ' ORDER BY prefix) FROM (SELECT prefix FROM cloudftpd_bans UNION ALL SELECT prefix FROM cloudftpd_ban_scores) x`).Scan(&left)
	if want := "192.0.2.2/32 192.0.2.3/32 192.0.2.4/32 192.0.2.6/32"; left != want {
		t.Errorf("left: %s, want %s", left, want)
	}
	// Get sees the remembered ban, List only the ones in force.
	if b, err := st.Get(ctx, pfx("192.0.2.2/32")); err != nil || b == nil || b.Until.After(time.Now()) {
		t.Errorf("Get of a remembered ban: %+v %v", b, err)
	}
	if bans, _ := st.List(ctx); len(bans) != 2 {
		t.Errorf("List: %v, want the 2 in force", bans)
	}
}

// testNoSchema: a database never migrated gives an error that says what
// to do.
func testNoSchema(t *testing.T, c *pgtest.Cluster) {
	pool := pgtest.Pool(t, c.NewDatabase(t))
	_, err := NewStore(pool, "a").List(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cloudftpd db migrate") {
		t.Errorf("List on an empty database: %v", err)
	}
}
