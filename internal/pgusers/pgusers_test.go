package pgusers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestMigrate: migrating twice changes nothing the second time, and
// several migrations at once (as several nodes starting together) leave
// one schema and no error.
func TestMigrate(t *testing.T) {
	c := pgtest.Start(t)
	ctx := context.Background()
	dsn := c.NewDatabase(t)

	const nodes = 4
	var wg sync.WaitGroup
	applied := make([][]string, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		pool := pgtest.Pool(t, dsn) // a pool each: separate sessions, as separate processes
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = pgdb.Migrate(ctx, pool, nil)
		}()
	}
	wg.Wait()
	count := map[string]int{}
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("migration %d: %v", i, errs[i])
		}
		for _, m := range applied[i] {
			count[m]++
		}
	}
	if count["00001_users.sql"] != 1 {
		t.Fatalf("migrations applied: %v, want 00001_users.sql among them", applied)
	}
	for m, n := range count {
		if n != 1 {
			t.Fatalf("%s applied %d times (%v): exactly one node applies each", m, n, applied)
		}
	}
	pool := pgtest.Pool(t, dsn)
	again, err := pgdb.Migrate(ctx, pool, nil)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate: applied %v, err %v; want nothing", again, err)
	}
	cur, newest, err := pgdb.SchemaVersion(ctx, pool)
	if err != nil || cur != newest || cur < 1 {
		t.Fatalf("schema version %d of %d (err %v)", cur, newest, err)
	}
}

func TestStoreEdits(t *testing.T) {
	c := pgtest.Start(t)
	ctx := context.Background()
	_, pool := c.Migrated(t)
	s := NewStore(pool)

	if err := s.Add(ctx, auth.UserEntry{Name: "alice", PasswordHash: hash(t, "pw"), Permissions: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, auth.UserEntry{Name: "alice", PasswordHash: hash(t, "pw"), Permissions: []string{"read"}}); !errors.Is(err, ErrExists) {
		t.Fatalf("second add: %v, want ErrExists", err)
	}
	for _, bad := range []auth.UserEntry{
		{Name: "bob", PasswordHash: "plain", Permissions: []string{"read"}},
		{Name: "bob", PasswordHash: hash(t, "x"), Permissions: []string{"fly"}},
		{Name: "bob", PasswordHash: hash(t, "x"), Permissions: []string{"all"}, Home: "../etc"},
		{Name: "bob", PasswordHash: hash(t, "x"), Permissions: []string{"all"}, LimitsEntry: auth.LimitsEntry{AllowedNetworks: []string{"nowhere"}}},
	} {
		if err := s.Add(ctx, bad); err == nil {
			t.Errorf("add %+v: accepted", bad)
		}
	}
	err := s.SetLimits(ctx, "alice", func(l *auth.LimitsEntry) {
		l.MaxSessions = 3
		l.QuotaBytes = 1 << 30
		l.Dirs = []auth.DirEntry{{Path: "/in", AllowedPatterns: []string{"*.csv"}, Retention: auth.Age(30 * 24 * time.Hour)}}
		l.Folders = []auth.FolderEntry{{Path: "/partner", Volume: "bucket", Target: "acme", Permissions: []string{"upload"}}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetLimits(ctx, "alice", func(l *auth.LimitsEntry) { l.MaxSessions = -1 }); err == nil {
		t.Fatal("negative max_sessions accepted")
	}
	e, err := s.Get(ctx, "alice")
	if err != nil || e == nil {
		t.Fatalf("get: %v %v", e, err)
	}
	if e.MaxSessions != 3 || e.QuotaBytes != 1<<30 || len(e.Dirs) != 1 || e.Dirs[0].Retention != auth.Age(30*24*time.Hour) {
		t.Fatalf("limits did not round-trip: %+v", e.LimitsEntry)
	}
	if u, err := auth.EntryUser(e); err != nil || len(u.Limits.Folders) != 1 || u.Limits.Folders[0] != (auth.Folder{Path: "/partner", Volume: "bucket", Target: "acme", Perms: auth.PermUpload}) {
		t.Fatalf("folders did not round-trip: %+v, %v", u.Limits.Folders, err)
	}
	if err := s.SetLimits(ctx, "alice", func(l *auth.LimitsEntry) {
		l.Folders = []auth.FolderEntry{{Path: "/x", Target: "../y", Permissions: []string{"read"}}}
	}); err == nil {
		t.Fatal("a folder target with .. accepted")
	}
	if err := s.SetPassword(ctx, "nobody", hash(t, "x")); !errors.Is(err, ErrNoUser) {
		t.Fatalf("passwd of unknown: %v", err)
	}
	if err := s.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "alice"); !errors.Is(err, ErrNoUser) {
		t.Fatalf("second delete: %v", err)
	}
	if l, err := s.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("list after delete: %v %v", l, err)
	}
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAuthenticatorFollowsChanges: two authenticators (two nodes) see
// a change made through the Store, and one made by hand in SQL, within
// a moment through NOTIFY; the poll (LISTEN of no use) catches one too.
func TestAuthenticatorFollowsChanges(t *testing.T) {
	c := pgtest.Start(t)
	ctx := context.Background()
	dsn, pool := c.Migrated(t)
	s := NewStore(pool)
	if err := s.Add(ctx, auth.UserEntry{Name: "alice", PasswordHash: hash(t, "one"), Permissions: []string{"all"}, TLS: "required",
		LimitsEntry: auth.LimitsEntry{Dirs: []auth.DirEntry{{Path: "/old", Retention: auth.Age(time.Hour)}}}}); err != nil {
		t.Fatal(err)
	}
	// A long poll: changes must arrive by notification.
	nodes := []*Authenticator{
		NewAuthenticator(pgtest.Pool(t, dsn), Options{PollInterval: time.Minute}),
		NewAuthenticator(pgtest.Pool(t, dsn), Options{PollInterval: time.Minute}),
	}
	for _, a := range nodes {
		a.Start(ctx)
		t.Cleanup(func() { a.Close() })
	}
	login := func(a *Authenticator, name, pw string) error {
		_, err := a.Authenticate(ctx, name, pw)
		return err
	}
	for i, a := range nodes {
		waitFor(t, 10*time.Second, "users loaded", a.Ready)
		if err := login(a, "alice", "one"); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if err := login(a, "alice", "two"); !errors.Is(err, auth.ErrBadCredentials) || errors.Is(err, auth.ErrUnknownUser) {
			t.Fatalf("node %d wrong password: %v", i, err)
		}
		if err := login(a, "mallory", "x"); !errors.Is(err, auth.ErrUnknownUser) {
			t.Fatalf("node %d unknown user: %v", i, err)
		}
		if p := a.ControlTLSPolicy("alice"); p != "required" {
			t.Fatalf("tls policy %q", p)
		}
		users, err := a.ListUsers(ctx)
		if err != nil || len(users) != 1 || users[0].Limits.Dirs[0].Retention != time.Hour {
			t.Fatalf("list: %+v %v", users, err)
		}
	}
	if err := s.SetPassword(ctx, "alice", hash(t, "two")); err != nil {
		t.Fatal(err)
	}
	for i, a := range nodes {
		waitFor(t, 3*time.Second, "new password in effect", func() bool { return login(a, "alice", "two") == nil })
		if err := login(a, "alice", "one"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("node %d: old password after change: %v", i, err)
		}
	}
	// By hand, as an operator would.
	c.Exec(t, dsn, `INSERT INTO cloudftpd_users (name, password_hash, permissions, limits) VALUES ('bob', $1, '{read}', '{"max_sessions": 2, "quota_bytes": 1048576}')`, hash(t, "b"))
	c.Exec(t, dsn, `DELETE FROM cloudftpd_users WHERE name = 'alice'`)
	for _, a := range nodes {
		waitFor(t, 3*time.Second, "insert and delete in effect", func() bool {
			return login(a, "bob", "b") == nil && errors.Is(login(a, "alice", "two"), auth.ErrUnknownUser)
		})
		u, _ := a.Authenticate(ctx, "bob", "b")
		if u.Limits.MaxSessions != 2 || u.Limits.QuotaBytes != 1<<20 || u.Perms != auth.PermList|auth.PermDownload {
			t.Fatalf("bob: %+v", u)
		}
	}
	// A row that does not validate is left out, the others stay.
	c.Exec(t, dsn, `INSERT INTO cloudftpd_users (name, password_hash, permissions, limits) VALUES ('carol', $1, '{read}', '{"max_sesions": 2}')`, hash(t, "c"))
	waitFor(t, 3*time.Second, "reload after carol", func() bool { return nodes[0].snap.Load().version >= 4 })
	if err := login(nodes[0], "carol", "c"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Fatalf("carol with a bad limits key: %v", err)
	}
	if err := login(nodes[0], "bob", "b"); err != nil {
		t.Fatal(err)
	}
}

// TestAuthenticatorPolls: with notifications out of the picture (a
// change made while the listener cannot hear it is simulated by
// bumping the counter without NOTIFY), the poll reloads.
func TestAuthenticatorPolls(t *testing.T) {
	c := pgtest.Start(t)
	ctx := context.Background()
	dsn, _ := c.Migrated(t)
	a := NewAuthenticator(pgtest.Pool(t, dsn), Options{PollInterval: 300 * time.Millisecond})
	a.Start(ctx)
	defer a.Close()
	waitFor(t, 10*time.Second, "ready", a.Ready)
	// Triggers off for this session: a change no one is notified of,
	// then the counter moved by hand.
	c.Exec(t, dsn, `SET session_replication_role = replica;
		INSERT INTO cloudftpd_users (name, password_hash, permissions) VALUES ('dave', '`+hash(t, "d")+`', '{all}');
		UPDATE cloudftpd_users_version SET version = version + 1`)
	waitFor(t, 3*time.Second, "poll reload", func() bool {
		_, err := a.Authenticate(ctx, "dave", "d")
		return err == nil
	})
}

// TestAuthenticatorDatabaseDown: a stopped database makes logins fail
// with ErrUnavailable (not bad credentials) at once and logs it once;
// they work again when it is back.
func TestAuthenticatorDatabaseDown(t *testing.T) {
	c := pgtest.Start(t)
	ctx := context.Background()
	dsn, pool := c.Migrated(t)
	if err := NewStore(pool).Add(ctx, auth.UserEntry{Name: "alice", PasswordHash: hash(t, "pw"), Permissions: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	var logs clienttest.LogBuffer
	a := NewAuthenticator(pgtest.Pool(t, dsn), Options{PollInterval: time.Second, Timeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	a.Start(ctx)
	defer a.Close()
	waitFor(t, 10*time.Second, "ready", a.Ready)
	c.Stop()
	waitFor(t, 3*time.Second, "down noticed", func() bool { return !a.Ready() })
	start := time.Now()
	_, err := a.Authenticate(ctx, "alice", "pw")
	if !errors.Is(err, auth.ErrUnavailable) || errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("login with the database down: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("refusal took %v: must not wait for the database", d)
	}
	time.Sleep(1500 * time.Millisecond) // retries
	if n := strings.Count(logs.String(), "user database unavailable"); n != 1 {
		t.Fatalf("%d error lines for one outage, want 1:\n%s", n, logs.String())
	}
	c.Start()
	waitFor(t, 10*time.Second, "recovered", a.Ready)
	if _, err := a.Authenticate(ctx, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("reachable again")) {
		t.Fatalf("no recovery line:\n%s", logs.String())
	}
}
