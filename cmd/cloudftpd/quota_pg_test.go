package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

// paced hands out its data 8 KiB at a time with a pause, so that
// parallel uploads overlap on the servers instead of finishing one by
// one.
type paced struct{ r io.Reader }

func (p paced) Read(b []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return p.r.Read(b[:min(len(b), 8<<10)])
}

// onDisk sums the committed files of dir (uploads in progress are
// ".cloudftpd-upload-*" names), by name.
func onDisk(t *testing.T, dir string) (files map[string][]byte, sum int64) {
	t.Helper()
	files = map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted while we looked
			}
			t.Fatal(err)
		}
		files[e.Name()] = b
		sum += int64(len(b))
	}
	return files, sum
}

// aliceInDB is alice's row and the sum of the live leases.
func aliceInDB(ctx context.Context, dsn string) (bytes, files, leased int64, err error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, 0, 0, err
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT u.bytes, u.files, coalesce((SELECT sum(bytes) FROM cloudftpd_quota_leases l
		WHERE l.user_name = u.user_name AND l.expires_at > now()), 0)
		FROM cloudftpd_quota_usage u WHERE u.user_name = 'alice'`).Scan(&bytes, &files, &leased)
	return bytes, files, leased, err
}

func is552(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code == 552
}

// TestQuotaAcrossNodes: with auth.store = "postgres", two servers (two
// nodes) share one database and one storage directory. 20 real FTP
// clients upload at once, spread over both, together far past alice's
// quota: at no moment do the files stored plus the room leased exceed
// it, the uploads refused get 552, and afterwards the usage in the
// database is what the disk holds (and what `cloudftpd user list`
// shows). A deletion on one node frees room for an upload on the
// other, and `cloudftpd quota scan` agrees.
func TestQuotaAcrossNodes(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	dir := t.TempDir()
	cfgs := pgNodeConfigs(t, dir, dsn, 2, "5s", "")
	home := filepath.Join(dir, "files", "alice")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	const quota = 2 << 20
	cli(t, "", "db", "migrate", "--config", cfgs[0])
	cli(t, "alice-secret\n", "user", "add", "alice", "--config", cfgs[0], "--password-stdin", "--home", "alice")
	pg.Exec(t, dsn, `UPDATE cloudftpd_users SET limits = jsonb_build_object('quota_bytes', $1::bigint) WHERE name = 'alice'`, quota)
	nodes := []*testNode{startNode(t, cfgs[0]), startNode(t, cfgs[1])}

	const clients = 20
	conns := make([]*ftp.ServerConn, clients)
	for i := range conns {
		conns[i] = nodes[i%2].dial(t, "alice", "alice-secret")
	}
	datas := make([][]byte, clients)
	errs := make([]error, clients)
	for i := range datas {
		datas[i] = make([]byte, 100<<10+7919*i)
		rand.Read(datas[i])
	}

	// A watcher checks all along that neither the disk nor the database
	// (usage plus the nodes' leases) goes past the quota.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		var bad error
		for {
			select {
			case <-stop:
				watched <- bad
				return
			case <-time.After(10 * time.Millisecond):
			}
			if _, sum := onDisk(t, home); sum > quota && bad == nil {
				bad = fmt.Errorf("%d bytes on disk, past the quota of %d", sum, quota)
			}
			b, _, leased, err := aliceInDB(ctx, dsn)
			if err == nil && b+leased > quota && bad == nil {
				bad = fmt.Errorf("database: %d used + %d leased, past the quota of %d", b, leased, quota)
			}
		}
	}()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			<-start
			errs[i] = c.Stor(fmt.Sprintf("new%02d.bin", i), paced{bytes.NewReader(datas[i])})
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	if err := <-watched; err != nil {
		t.Error(err)
	}

	files, sum := onDisk(t, home)
	committed := [2]int{}
	refused := 0
	for i, err := range errs {
		name := fmt.Sprintf("new%02d.bin", i)
		got, exists := files[name]
		switch {
		case err == nil:
			committed[i%2]++
			if !bytes.Equal(got, datas[i]) {
				t.Errorf("%s: acknowledged by node %d, but %d bytes stored of %d sent", name, i%2+1, len(got), len(datas[i]))
			}
		case is552(err):
			refused++
			if exists {
				t.Errorf("%s: refused, yet %d bytes are stored", name, len(got))
			}
		default:
			t.Errorf("%s: %v, want success or 552", name, err)
		}
	}
	t.Logf("committed %v (node 1, node 2), %d refused with 552; %d bytes in %d files", committed, refused, sum, len(files))
	// Which node's uploads win the race for the room is timing; both
	// commit below, one after the other.
	if committed[0]+committed[1] == 0 || refused == 0 {
		t.Errorf("committed %v and refused %d: the test wants both", committed, refused)
	}
	assertDB := func(when string) {
		t.Helper()
		files, sum := onDisk(t, home)
		b, f, leased, err := aliceInDB(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if b != sum || f != int64(len(files)) || leased != 0 {
			t.Fatalf("%s: database has %d bytes in %d files (%d leased); the disk holds %d bytes in %d files",
				when, b, f, leased, sum, len(files))
		}
	}
	assertDB("after the parallel uploads")

	// Node 1 stores a file, node 2 fills the quota to the byte; a byte
	// more is refused on either.
	c1, c2 := nodes[0].dial(t, "alice", "alice-secret"), nodes[1].dial(t, "alice", "alice-secret")
	if err := c1.Stor("node1.bin", bytes.NewReader(make([]byte, 1000))); err != nil {
		t.Fatalf("node 1: a small upload under the quota: %v", err)
	}
	files, sum = onDisk(t, home)
	if rest := quota - sum; rest > 0 {
		if err := c2.Stor("fill.bin", bytes.NewReader(make([]byte, rest))); err != nil {
			t.Fatalf("node 2: filling the last %d bytes: %v", rest, err)
		}
	}
	for i, c := range []*ftp.ServerConn{c1, c2} {
		if err := c.Stor("one-more.bin", strings.NewReader("x")); !is552(err) {
			t.Fatalf("node %d: a byte past the quota: %v, want 552", i+1, err)
		}
	}
	// A deletion on node 1 makes room for node 2 at once.
	var victim string
	for name := range files {
		victim = name
		break
	}
	if err := c1.Delete(victim); err != nil {
		t.Fatal(err)
	}
	if err := c2.Stor("after-delete.bin", bytes.NewReader(make([]byte, len(files[victim])))); err != nil {
		t.Fatalf("node 2: upload into the room node 1 freed (%d bytes): %v", len(files[victim]), err)
	}
	assertDB("after the deletion")

	// A scan agrees with what the nodes recorded.
	out := cli(t, "", "quota", "scan", "alice", "--config", cfgs[0])
	_, sum = onDisk(t, home)
	if !strings.Contains(out, "alice: 2 MiB in") {
		t.Errorf("quota scan: %q, want the full quota (%d bytes on disk)", out, sum)
	}
	assertDB("after the scan")
	// With no server answering, the command scans and writes the database
	// itself.
	out = cli(t, "", "quota", "scan", "alice", "--config", cfgs[1], "--socket", filepath.Join(dir, "no-such.sock"))
	if !strings.Contains(out, "alice: 2 MiB in") || !strings.Contains(out, "written to the database") {
		t.Errorf("quota scan with no server: %q", out)
	}
	assertDB("after the scan with no server")
	if out := cli(t, "", "user", "list", "--config", cfgs[1]); !strings.Contains(out, "2 MiB / 2 MiB") {
		t.Errorf("user list does not show the usage of the database (2 MiB of 2 MiB):\n%s", out)
	}
}
