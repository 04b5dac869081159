package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

// TestPostgresUsersEndToEnd: with auth.store = "postgres", `db migrate`
// creates the schema (and a second run finds nothing to do), a user
// added with `cloudftpd user add` logs in with a real FTP client on two
// running servers, a password changed with `cloudftpd user passwd` is
// refused at the next login on the other server within seconds, a
// deleted user is gone everywhere, and a stopped database gives 421 and
// a log line, until it is back.
func TestPostgresUsersEndToEnd(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	cfgs := pgNodeConfigs(t, t.TempDir(), dsn, 2, "2s", "")
	cfgPath := cfgs[0]

	if out := cli(t, "", "db", "migrate", "--config", cfgPath); !strings.Contains(out, "applied") {
		t.Fatalf("first migrate: %q", out)
	}
	if out := cli(t, "", "db", "migrate", "--config", cfgPath); !strings.Contains(out, "schema up to date") {
		t.Fatalf("second migrate: %q", out)
	}
	node1, node2 := startNode(t, cfgs[0]), startNode(t, cfgs[1])

	cli(t, "first-secret\n", "user", "add", "partner", "--config", cfgPath, "--password-stdin", "--max-sessions", "4")
	if out := cli(t, "", "user", "list", "--config", cfgPath); !strings.Contains(out, "partner") {
		t.Fatalf("user list: %q", out)
	}
	// Directory rules and sizes round-trip through the database: what
	// `user set` prints is read back from it.
	if out := cli(t, "", "user", "set", "partner", "--config", cfgPath, "--dir", "/incoming", "--denied-patterns", "*.exe", "--quota-files", "100"); !strings.Contains(out, "quota_files 100, dir /incoming (denied_patterns *.exe)") {
		t.Fatalf("user set --dir against the database: %q", out)
	}
	for i, n := range []*testNode{node1, node2} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := n.login(t, "partner", "first-secret")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: user added by the CLI cannot log in: %v\n%s", i+1, err, n.logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The password changes; node 2, which logged in with the old one a
	// moment ago (its verification is cached), refuses it within seconds.
	cli(t, "second-secret\n", "user", "passwd", "partner", "--config", cfgPath, "--password-stdin")
	changed := time.Now()
	for node2.login(t, "partner", "first-secret") == nil {
		if time.Since(changed) > 5*time.Second {
			t.Fatal("node 2 still accepts the old password 5s after the change")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("old password refused on node 2 %v after the change", time.Since(changed).Round(time.Millisecond))
	if err := node2.login(t, "partner", "second-secret"); err != nil {
		t.Fatalf("new password on node 2: %v", err)
	}
	if err := node1.login(t, "partner", "first-secret"); err == nil || !strings.Contains(err.Error(), "530") {
		t.Fatalf("old password on node 1: %v, want 530", err)
	}

	// The database goes away: 421, not 530, and a log line saying why.
	pg.Stop()
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for {
		start := time.Now()
		err = node1.login(t, "partner", "second-secret")
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("login with the database down took %v", d)
		}
		if err != nil && strings.Contains(err.Error(), "421") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "421") {
		t.Fatalf("login with the database down: %v, want 421", err)
	}
	if !strings.Contains(node1.logs.String(), "user database unavailable") {
		t.Fatalf("no log line for the database going down:\n%s", node1.logs)
	}
	pg.Start()
	deadline = time.Now().Add(10 * time.Second)
	for node1.login(t, "partner", "second-secret") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("node 1 did not recover with the database back:\n%s", node1.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}

	cli(t, "", "user", "del", "partner", "--config", cfgPath)
	deadline = time.Now().Add(5 * time.Second)
	for node2.login(t, "partner", "second-secret") == nil {
		if time.Now().After(deadline) {
			t.Fatal("deleted user still logs in on node 2")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
