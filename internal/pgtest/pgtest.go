// Package pgtest starts throw-away PostgreSQL servers for tests, with
// Debian's postgresql package (initdb and pg_ctl under
// /usr/lib/postgresql/VERSION/bin, or on PATH). Each Cluster is a new data
// directory on a free loopback port, stopped and removed when the test
// ends. A test can Stop and Start it to see what the server does while
// the database is down.
//
// PostgreSQL refuses to run as root; when the tests run as root the
// cluster runs as the package's "postgres" account (runuser). When
// PostgreSQL is missing the test is skipped, or failed under CI=true
// (clienttest.Unavailable); .ci/run installs it.
//
// It is imported only by _test.go files.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
)

// Cluster is a running (or stopped) PostgreSQL server.
type Cluster struct {
	Port int
	dir  string // data directory, logfile beside it
	bin  string // directory of initdb and pg_ctl
	as   string // account to run as ("" for the current one)
	t    testing.TB
}

// Start initialises a cluster in a new directory and starts it on a free
// port of 127.0.0.1, with trust authentication for the superuser
// "postgres". It is stopped and removed when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := findBin(t)
	c := &Cluster{bin: bin, t: t}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			clienttest.Unavailable(t, "running as root and there is no postgres account to run PostgreSQL as")
		}
		c.as = "postgres"
	}
	// Not t.TempDir: its parents are private to root, and the server may
	// run as another account.
	base, err := os.MkdirTemp("", "cloudftpd-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if c.as != "" {
		u, _ := user.Lookup(c.as)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	c.dir = filepath.Join(base, "data")
	c.run("initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	_, port, _ := net.SplitHostPort(clienttest.FreeAddr(t))
	c.Port, _ = strconv.Atoi(port)
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\nmax_connections = 50\n", c.Port, base)
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(conf)
	f.Close()
	c.Start()
	t.Cleanup(func() { c.pgctl("stop", "-m", "immediate") })
	return c
}

// findBin finds the newest installed PostgreSQL's programs.
func findBin(t testing.TB) string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	clienttest.Unavailable(t, "PostgreSQL not installed (initdb not on PATH nor in /usr/lib/postgresql/*/bin)")
	return ""
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// run runs one of the cluster's programs as the cluster's account.
func (c *Cluster) run(prog string, args ...string) {
	c.t.Helper()
	if out, err := c.command(prog, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}

func (c *Cluster) command(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, prog)
	if c.as != "" {
		return exec.Command("runuser", append([]string{"-u", c.as, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (c *Cluster) pgctl(args ...string) error {
	out, err := c.command("pg_ctl", append([]string{"-D", c.dir, "-w", "-t", "30"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the (stopped) server and waits until it accepts
// connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.pgctl("start", "-l", filepath.Join(filepath.Dir(c.dir), "log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(c.dir), "log"))
		c.t.Fatalf("%v\nserver log:\n%s", err, log)
	}
}

// Stop stops the server at once, dropping its connections as a crash
// would.
func (c *Cluster) Stop() {
	c.t.Helper()
	if err := c.pgctl("stop", "-m", "immediate"); err != nil {
		c.t.Fatal(err)
	}
}

// DSN is the URL of database db as the superuser.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// NewDatabase creates an empty database with a random name and returns
// its DSN.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	c.Exec(t, c.DSN("postgres"), "CREATE DATABASE "+name)
	return c.DSN(name)
}

// Exec runs SQL statements against dsn, failing the test on an error.
func (c *Cluster) Exec(t testing.TB, dsn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Pool returns a pool for dsn (see pgdb.Open), closed when t ends.
func Pool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Open(pgdb.Options{DSN: dsn, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Migrated creates a database with cloudftpd's schema (pgdb.Migrate) and
// returns its DSN and a pool for it, closed when t ends.
func (c *Cluster) Migrated(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	dsn := c.NewDatabase(t)
	pool := Pool(t, dsn)
	if _, err := pgdb.Migrate(context.Background(), pool, nil); err != nil {
		t.Fatal(err)
	}
	return dsn, pool
}
