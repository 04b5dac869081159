package server_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
	"github.com/cloudftpd/cloudftpd/internal/pgusers"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// sharedDefenceDB is a migrated database on pg holding alice.
func sharedDefenceDB(t *testing.T, pg *pgtest.Cluster) string {
	t.Helper()
	dsn := pg.NewDatabase(t)
	pool, err := pgdb.Open(pgdb.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	if _, err := pgdb.Migrate(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	if err := pgusers.NewStore(pool).Add(ctx, auth.UserEntry{Name: "alice", PasswordHash: hashFor(t, "alice-secret"), Home: "alice", Permissions: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// sharedNode starts a node whose users, bans and scores are in dsn, with
// a state directory of its own and loopback clients scored.
func sharedNode(t *testing.T, dsn, name string) *testServer {
	t.Helper()
	return startServerWith(t, localDisk, func(c *config.Config) {
		c.Server.StateDir = t.TempDir()
		c.Server.LoginFailureDelay = config.Duration(10 * time.Millisecond)
		c.Defender.Allow = []string{}
		c.Auth.UsersFile = ""
		c.Auth.Store = config.StorePostgres
		c.Auth.Postgres = config.PostgresUsers{DSN: dsn, PollInterval: config.Duration(time.Second), Timeout: config.Duration(2 * time.Second)}
		c.Metrics.Address = "127.0.0.1:0"
	}, server.Options{Node: name})
}

// waitUntil polls cond every 20ms until it holds, failing after within.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// failLogins fails n logins of alice from one address in one connection
// (at most max_login_failures: the last one is answered 421).
func failLogins(t *testing.T, from, addr string, n int) {
	t.Helper()
	rc := dialRawFrom(t, from, addr)
	defer rc.conn.Close()
	for range n {
		rc.must(331, "USER alice")
		if code, msg := rc.cmd("PASS wrong"); code != 530 && code != 421 {
			t.Fatalf("PASS wrong: %d %s", code, msg)
		}
	}
}

// bannedIn reports whether the shared bans, as a node's control socket
// lists them, cover addr.
func bannedIn(t *testing.T, ts *testServer, addr string) bool {
	t.Helper()
	bans, err := (&control.Client{SocketPath: ts.cfg.ControlSocket()}).ListBans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr(addr)
	for _, b := range bans {
		if b.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

// TestSharedBansAcrossNodes: two servers on one PostgreSQL database (the
// users there, auth.store = "postgres"). Failed FTP logins on node A get
// the client refused at accept on node B, without a greeting, within two
// seconds, while another client logs in on B; the ban lifted through B's
// control socket lets the client in on A again; and a client spreading
// its failed logins over the two nodes (6 points on A, 4 on B: under the
// threshold of 10 on each) is banned on both.
func TestSharedBansAcrossNodes(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := sharedDefenceDB(t, pg)
	a, b := sharedNode(t, dsn, "node-a"), sharedNode(t, dsn, "node-b")
	const attacker, partner, spreader = "127.0.0.21", "127.0.0.22", "127.0.0.23"

	// max_login_failures = 3 closes a connection after 3 failures, 6
	// points: a second connection reaches 10 and is cut by the ban.
	for i := 0; i < 4 && greeted(t, attacker, a.Addr); i++ {
		guessUntilClosed(t, attacker, a.Addr, 3)
	}
	if greeted(t, attacker, a.Addr) {
		t.Fatal("node A greets the address it banned")
	}
	took := waitUntil(t, 2*time.Second, "node B refuses the address banned on A", func() bool { return !greeted(t, attacker, b.Addr) })
	t.Logf("failed logins on A: refused at accept on B %v later", took.Round(time.Millisecond))
	rc := dialRawFrom(t, partner, b.Addr)
	rc.login("alice", "alice-secret")
	rc.conn.Close()
	if !strings.Contains(b.logs.String(), `msg="defender: banned" prefix=127.0.0.21/32`) {
		t.Errorf("node B logged no ban line for the ban learnt from A:\n%s", b.logs)
	}

	cl := control.Client{SocketPath: b.cfg.ControlSocket()}
	bans, err := cl.ListBans(context.Background())
	if err != nil || len(bans) != 1 || bans[0].Node != "node-a" || !strings.Contains(bans[0].Reason, "login_failed") {
		t.Fatalf("bans listed on B: %+v %v", bans, err)
	}
	if err := cl.Unban(context.Background(), netip.MustParsePrefix(attacker+"/32")); err != nil {
		t.Fatal(err)
	}
	took = waitUntil(t, 2*time.Second, "node A lets the address in after the unban on B", func() bool { return greeted(t, attacker, a.Addr) })
	t.Logf("unban on B: greeted on A %v later", took.Round(time.Millisecond))

	// 3 failed logins on A, 2 on B, each under the threshold.
	failLogins(t, spreader, a.Addr, 3)
	failLogins(t, spreader, b.Addr, 2)
	took = waitUntil(t, 4*time.Second, "the spread attacker banned in the database", func() bool { return bannedIn(t, a, spreader) })
	t.Logf("6 points on A + 4 on B: banned %v after the last failure", took.Round(time.Millisecond))
	waitUntil(t, 2*time.Second, "both nodes refuse the spread attacker", func() bool {
		return !greeted(t, spreader, a.Addr) && !greeted(t, spreader, b.Addr)
	})
	bans, _ = cl.ListBans(context.Background())
	if len(bans) != 1 || !strings.HasSuffix(bans[0].Reason, "on 2 nodes") {
		t.Errorf("bans: %+v, want the spread attacker's, scored on 2 nodes", bans)
	}

	// A ban by hand through A's socket, "forever", is B's too.
	if _, err := (&control.Client{SocketPath: a.cfg.ControlSocket()}).Ban(context.Background(), netip.MustParsePrefix("127.0.0.24/32"), defender.Forever, "by hand"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*time.Second, "node B refuses the address banned by hand on A", func() bool { return !greeted(t, "127.0.0.24", b.Addr) })

	// A reload that keeps the database keeps sharing.
	b.reload(nil)
	if _, err := (&control.Client{SocketPath: a.cfg.ControlSocket()}).Ban(context.Background(), netip.MustParsePrefix("127.0.0.25/32"), time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*time.Second, "node B, reloaded, refuses a ban made on A", func() bool { return !greeted(t, "127.0.0.25", b.Addr) })
	if strings.Contains(b.logs.String(), "no longer shared") {
		t.Error("the reload stopped sharing the bans")
	}

	wantSample(t, scrape(t, b), "cloudftpd_defender_shared_ready", "1")

	// The database down: the nodes keep their bans; the socket says 503.
	pg.Stop()
	_, err = cl.ListBans(context.Background())
	var apiErr *control.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 503 || !strings.Contains(err.Error(), "ban database is not reachable") {
		t.Errorf("ban list with the database down: %v, want a 503", err)
	}
	if greeted(t, spreader, b.Addr) || greeted(t, "127.0.0.24", a.Addr) {
		t.Error("a node forgot its bans when the database went down")
	}
	waitUntil(t, 3*time.Second, "B's metrics say its bans are not current", func() bool {
		return scrape(t, b)["cloudftpd_defender_shared_ready"] == "0"
	})
}
