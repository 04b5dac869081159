package server_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// retentionUsers: alice keeps everything 2 days except /keep (30 days);
// bob only has a rule for /incoming (1 day).
const retentionUsers = `
[[user]]
name = "alice"
password_hash = %[1]q
permissions = ["all"]
retention = "2d"
  [[user.dir]]
  path = "/keep"
  retention = "30d"

[[user]]
name = "bob"
password_hash = %[2]q
permissions = ["all"]
  [[user.dir]]
  path = "/incoming"
  retention = "1d"
`

// startClockedServer starts a server like startServerOn, with the users
// of retentionUsers, an audit log, /metrics, a retention sweep every
// 50ms and the clock now.
func startClockedServer(t *testing.T, b backend, now func() time.Time) (*testServer, string) {
	t.Helper()
	root := t.TempDir()
	usersFile := filepath.Join(t.TempDir(), "users.toml")
	if err := os.WriteFile(usersFile, fmt.Appendf(nil, retentionUsers, hashFor(t, "alice-secret"), hashFor(t, "bob-secret")), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg, err := config.Parse(fmt.Appendf(nil, `
[server]
state_dir = %q
data_timeout = "5s"

[[listener]]
address = "127.0.0.1:0"

[storage]
backend = "local"
root = %q

[auth]
users_file = %q

[metrics]
address = "127.0.0.1:0"

[retention]
interval = "50ms"

[[events.sink]]
name = "audit"
kind = "audit"
path = %q
`, t.TempDir(), root, usersFile, audit))
	if err != nil {
		t.Fatal(err)
	}
	var st store = diskStore{root: root}
	if b.isS3() {
		st = useS3(t, cfg, b.s3(t, s3Bucket))
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &clienttest.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(t.Context(), cfg, server.Options{Logger: logger, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	serveUntilCleanup(t, srv)
	return &testServer{t: t, srv: srv, cfg: cfg, Addr: srv.Addrs()[0].String(), Root: root, backend: b, store: st, logs: logs}, audit
}

// TestRetentionSweep uploads files with a real client (jlaffaye/ftp),
// lets the server's own sweep run, and moves its clock three days on:
// alice's and bob's files older than their most specific rule are
// deleted, each with a file.expired event in the audit log and a log
// line; files under alice's longer /keep rule and outside bob's
// /incoming stay, as do the directories, and the client's listings show
// it.
func TestRetentionSweep(t *testing.T) {
	forBackends(t, []backend{localDisk, s3Versitygw}, func(t *testing.T, b backend) {
		var offset atomic.Int64
		ts, audit := startClockedServer(t, b, func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })

		upload := func(c *ftp.ServerConn, name string) {
			t.Helper()
			if dir := filepath.Dir(name); dir != "/" {
				c.MakeDir(dir) // may exist
			}
			if err := c.Stor(name, bytes.NewReader([]byte("data of "+name))); err != nil {
				t.Fatalf("STOR %s: %v", name, err)
			}
		}
		alice, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
		for _, f := range []string{"/a.txt", "/sub/b.txt", "/keep/k.txt"} {
			upload(alice, f)
		}
		bob, _ := dialJlaffaye(t, ts, "bob", "bob-secret")
		for _, f := range []string{"/top.txt", "/incoming/x.txt", "/other/o.txt"} {
			upload(bob, f)
		}

		// Passes with the real clock: everything is new and stays.
		sweeps := strings.Count(ts.logs.String(), "retention: sweep done")
		waitFor(t, func() bool { return strings.Count(ts.logs.String(), "retention: sweep done") >= sweeps+2 })
		if n := strings.Count(ts.logs.String(), "expired file deleted"); n != 0 {
			t.Fatalf("new files deleted:\n%s", ts.logs)
		}

		offset.Store(int64(3 * 24 * time.Hour))
		want := []string{"alice/a.txt", "alice/sub/b.txt", "bob/incoming/x.txt"}
		var got []events.Event
		waitFor(t, func() bool {
			got = nil
			for _, e := range readAudit(t, audit) {
				if e.Type == events.Expired {
					got = append(got, e)
				}
			}
			return len(got) >= len(want)
		})
		var paths []string
		for _, e := range got {
			paths = append(paths, e.User+e.Path)
			if e.Storage != b.storageName() || e.Object == "" || e.ModTime.IsZero() || e.Session != "" || e.Size == 0 || e.ID == "" {
				t.Errorf("event %+v", e)
			}
		}
		slices.Sort(paths)
		if !slices.Equal(paths, want) {
			t.Errorf("expired %v, want %v", paths, want)
		}
		for _, rel := range want {
			if ts.store.exists(t, rel) {
				t.Errorf("%s still stored", rel)
			}
		}
		for _, rel := range []string{"alice/keep/k.txt", "bob/top.txt", "bob/other/o.txt"} {
			if !ts.store.exists(t, rel) {
				t.Errorf("%s deleted", rel)
			}
		}
		names := func(c *ftp.ServerConn, dir string) []string {
			t.Helper()
			es, err := c.List(dir)
			if err != nil {
				t.Fatalf("LIST %s: %v", dir, err)
			}
			var out []string
			for _, e := range es {
				out = append(out, e.Name)
			}
			slices.Sort(out)
			return out
		}
		if got := names(alice, "/"); !slices.Equal(got, []string{"keep", "sub"}) {
			t.Errorf("alice's LIST /: %v, want the directories keep and sub", got)
		}
		if got := names(alice, "/sub"); len(got) != 0 {
			t.Errorf("alice's LIST /sub: %v, want empty", got)
		}
		if got := names(bob, "/incoming"); len(got) != 0 {
			t.Errorf("bob's LIST /incoming: %v, want empty", got)
		}
		if !strings.Contains(ts.logs.String(), "user=bob path=/incoming/x.txt age=72h") {
			t.Errorf("deletion not logged with user, path and age:\n%s", ts.logs)
		}
		wantSample(t, scrape(t, ts), "cloudftpd_retention_deleted_total", "3")
	})
}

// storageName is the backend's name in events.
func (b backend) storageName() string {
	if b.isS3() {
		return "s3"
	}
	return "local"
}
