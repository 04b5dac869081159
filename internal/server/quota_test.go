package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// quotaBackends are where the quota tests store files: local disk and a
// real S3 gateway.
var quotaBackends = []backend{localDisk, s3Versitygw}

// quotaUsers writes a users file in which alice (home "alice") has the
// given quotas, and points cfg at it and at a state directory of its own
// (for the control socket and the state store). It returns a function
// that rewrites the file with other quotas.
func withQuota(t *testing.T, quotaBytes, quotaFiles int64) (func(*config.Config), func(quotaBytes, quotaFiles int64)) {
	t.Helper()
	usersFile := filepath.Join(t.TempDir(), "users.toml")
	write := func(qb, qf int64) {
		text := fmt.Sprintf(`[[user]]
name = "alice"
password_hash = %q
home = "alice"
permissions = ["all"]
quota_bytes = %d
quota_files = %d
`, hashFor(t, "alice-secret"), qb, qf)
		if err := os.WriteFile(usersFile, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(quotaBytes, quotaFiles)
	stateDir := t.TempDir()
	return func(c *config.Config) {
		c.Auth.UsersFile = usersFile
		c.Server.StateDir = stateDir
		c.Events.StateDir = "" // follows server.state_dir
	}, write
}

func controlClient(ts *testServer) *control.Client {
	return &control.Client{SocketPath: ts.cfg.ControlSocket()}
}

// liveUsage is alice's usage as the running server holds it.
func liveUsage(t *testing.T, ts *testServer) control.QuotaUsage {
	t.Helper()
	users, err := controlClient(ts).QuotaUsage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.User == "alice" {
			return u
		}
	}
	t.Fatalf("the server holds no usage for alice: %+v", users)
	return control.QuotaUsage{}
}

// stored sums the files of alice's home as the backend holds them.
func stored(t *testing.T, ts *testServer) (tree map[string]string, bytes, files int64) {
	t.Helper()
	tree = ts.store.tree(t, "alice")
	for _, v := range tree {
		if v != "<dir>" {
			bytes += int64(len(v))
			files++
		}
	}
	return tree, bytes, files
}

// slowReader hands out its data 8 KiB at a time with a pause, so that
// parallel uploads overlap on the server instead of finishing one by one.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 8<<10)])
}

// code552 reports whether err carries the server's 552 reply.
func code552(err error) (string, bool) {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code == 552 {
		return te.Msg, true
	}
	return "", false
}

// TestQuotaParallelUploads: 20 clients upload at once, together far past
// alice's quota; 5 of them replace files she has. At the end she stores
// no more than the quota, every file the server acknowledged is complete
// and exactly what was sent, every refused upload got 552 with the
// figures, no partial or temporary file is left, refused replacements
// left the old file as it was, and the server's figure is what the
// backend holds.
func TestQuotaParallelUploads(t *testing.T) {
	forBackends(t, quotaBackends, func(t *testing.T, b backend) {
		const quota = 1 << 20
		mutate, _ := withQuota(t, quota, 0)
		ts := startServerOn(t, b, mutate)
		olds := map[string][]byte{}
		for i := range 5 {
			name := fmt.Sprintf("old%d.bin", i)
			olds[name] = randomBytes(40<<10 + i)
			ts.write("alice/"+name, olds[name])
		}

		type result struct {
			name    string
			data    []byte
			err     error
			refusal string
		}
		results := make([]result, 20)
		conns := make([]*ftp.ServerConn, 20)
		for i := range conns {
			conns[i], _ = dialJlaffaye(t, ts, "alice", "alice-secret")
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, c := range conns {
			name := fmt.Sprintf("new%02d.bin", i)
			if i < 5 {
				name = fmt.Sprintf("old%d.bin", i) // a replacement, larger than the old file
			}
			data := randomBytes(100<<10 + 7919*i)
			results[i] = result{name: name, data: data}
			wg.Go(func() {
				<-start
				results[i].err = c.Stor(name, slowReader{bytes.NewReader(data)})
			})
		}
		close(start)
		wg.Wait()

		tree, sum, files := stored(t, ts)
		if sum > quota {
			t.Errorf("alice stores %d bytes, past her quota of %d", sum, quota)
		}
		committed, refused := 0, 0
		for _, r := range results {
			got, exists := tree[r.name]
			if r.err == nil {
				committed++
				if got != string(r.data) {
					t.Errorf("%s: acknowledged, but the stored file has %d bytes, not the %d sent (or other content)", r.name, len(got), len(r.data))
				}
				continue
			}
			msg, ok := code552(r.err)
			if !ok {
				t.Errorf("%s: refused with %v, want 552", r.name, r.err)
				continue
			}
			refused++
			if !strings.HasPrefix(msg, "Quota exceeded: ") || !strings.Contains(msg, "of 1 MiB used") || !strings.HasSuffix(msg, "Upload discarded.") {
				t.Errorf("%s: 552 text %q", r.name, msg)
			}
			if old, isOld := olds[r.name]; isOld {
				if got != string(old) {
					t.Errorf("%s: refused replacement changed the old file (%d bytes, want the old %d)", r.name, len(got), len(old))
				}
			} else if exists {
				t.Errorf("%s: refused, yet a file of %d bytes is stored", r.name, len(got))
			}
		}
		for name := range tree {
			if _, ok := olds[name]; ok {
				continue
			}
			if !strings.HasPrefix(name, "new") {
				t.Errorf("unexpected file %q in the home (a partial or temporary upload?)", name)
			}
		}
		t.Logf("%d uploads committed, %d refused with 552; %d bytes in %d files stored", committed, refused, sum, files)
		if committed == 0 || refused == 0 {
			t.Errorf("%d committed and %d refused: the test wants both", committed, refused)
		}
		u := liveUsage(t, ts)
		if u.Bytes != sum || u.Files != files || u.ReservedBytes != 0 || u.ReservedFiles != 0 {
			t.Errorf("server's usage %+v; the backend holds %d bytes in %d files", u, sum, files)
		}
		// The same sessions go on: a replacement whose delta fits works.
		name := "old0.bin"
		if _, ok := tree[name]; ok {
			smaller := randomBytes(len(tree[name]) - 1000)
			if err := conns[0].Stor(name, bytes.NewReader(smaller)); err != nil {
				t.Fatalf("replacing %s with a smaller file: %v", name, err)
			}
			if got := ts.read("alice/" + name); !bytes.Equal(got, smaller) {
				t.Errorf("%s after the replacement: %d bytes", name, len(got))
			}
			if u2 := liveUsage(t, ts); u2.Bytes != sum-1000 || u2.Files != files {
				t.Errorf("usage after the replacement %+v, want %d bytes", u2, sum-1000)
			}
		}
	})
}

// TestQuotaReplaceAndFiles: with curl as the client, a replacement whose
// delta fits goes through at a full quota, one whose delta does not gets
// 552 and leaves the old file, and a full file count refuses new files
// but not replacements; DELE and RNTO onto a file give space back.
func TestQuotaReplaceAndFiles(t *testing.T) {
	clienttest.Need(t, "curl")
	forBackends(t, quotaBackends, func(t *testing.T, b backend) {
		mutate, _ := withQuota(t, 300<<10, 3)
		ts := startServerOn(t, b, mutate)
		a, bb := randomBytes(100<<10), randomBytes(150<<10)
		ts.write("alice/a.bin", a)
		ts.write("alice/b.bin", bb)
		dir := t.TempDir()
		put := func(name string, data []byte) (string, error) {
			src := filepath.Join(dir, "upload")
			if err := os.WriteFile(src, data, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("curl", "-sS", "-v", "--max-time", "30", "-T", src,
				fmt.Sprintf("ftp://alice:alice-secret@%s/%s", ts.Addr, name))
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		// 250 KiB of 300 KiB used. a.bin grows by 50 KiB: fits exactly.
		a2 := randomBytes(150 << 10)
		if out, err := put("a.bin", a2); err != nil {
			t.Fatalf("replacement within quota: %v\n%s", err, out)
		}
		if !bytes.Equal(ts.read("alice/a.bin"), a2) {
			t.Fatal("a.bin is not the replacement")
		}
		// Full now; growing b.bin by one byte does not fit.
		out, err := put("b.bin", randomBytes(150<<10+1))
		if err == nil || !strings.Contains(out, "552 Quota exceeded: 300 KiB of 300 KiB used") {
			t.Fatalf("replacement past quota: %v\n%s", err, out)
		}
		if !bytes.Equal(ts.read("alice/b.bin"), bb) {
			t.Fatal("the refused replacement changed b.bin")
		}
		// A file of the same size replaces it at a full quota.
		b2 := randomBytes(150 << 10)
		if out, err := put("b.bin", b2); err != nil {
			t.Fatalf("same-size replacement at a full quota: %v\n%s", err, out)
		}
		// Make room: delete a.bin, move b.bin onto... a new name, then
		// onto itself a copy: RNTO onto a file frees the replaced one.
		c, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
		if err := c.Delete("a.bin"); err != nil {
			t.Fatal(err)
		}
		small := randomBytes(10 << 10)
		for _, n := range []string{"c1", "c2"} {
			if err := c.Stor(n, bytes.NewReader(small)); err != nil {
				t.Fatalf("STOR %s: %v", n, err)
			}
		}
		// Three files of three: a new one is refused at once...
		if out, err := put("c3", small); err == nil || !strings.Contains(out, "552 Quota exceeded: 3 of 3 files used.") {
			t.Fatalf("fourth file: %v\n%s", err, out)
		}
		if ts.store.exists(t, "alice/c3") {
			t.Error("the refused fourth file exists")
		}
		// ...a replacement is not...
		if err := c.Stor("c1", bytes.NewReader(small[:5000])); err != nil {
			t.Fatalf("replacement at a full file count: %v", err)
		}
		// ...and renaming c2 onto c1 frees one.
		if err := c.Rename("c2", "c1"); err != nil {
			t.Fatal(err)
		}
		u := liveUsage(t, ts)
		_, sum, files := stored(t, ts)
		if u.Bytes != sum || u.Files != files || files != 2 {
			t.Errorf("usage %+v; the backend holds %d bytes in %d files (want 2)", u, sum, files)
		}
		if err := c.Stor("c3", bytes.NewReader(small)); err != nil {
			t.Fatalf("a new file after the rename freed one: %v", err)
		}
	})
}

// TestQuotaScanAndRestart: usage is written to the state store and
// survives a restart (the stored figure is used, not a new scan); files
// changed behind the server's back are counted by `quota scan`, run
// against the running server through the control socket and with the
// server stopped.
func TestQuotaScanAndRestart(t *testing.T) {
	forBackends(t, quotaBackends, func(t *testing.T, b backend) {
		const quota = 1 << 20
		mutate, _ := withQuota(t, quota, 0)
		ts := startServerOn(t, b, mutate)
		ts.write("alice/d/e/seed.bin", randomBytes(100<<10))
		c, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
		if err := c.Stor("up.bin", bytes.NewReader(randomBytes(200<<10))); err != nil {
			t.Fatal(err)
		}
		if u := liveUsage(t, ts); u.Bytes != 300<<10 || u.Files != 2 || u.Scanned == nil {
			t.Fatalf("usage after the first scan and an upload: %+v", u)
		}
		c.Quit()

		// Behind the server's back: 500 KiB more.
		ts.write("alice/behind.bin", randomBytes(500<<10))
		ts = restart(t, ts)
		// The stored 300 KiB is in force: 600 KiB more fit (a scan would
		// have found 800 KiB and refused).
		c, _ = dialJlaffaye(t, ts, "alice", "alice-secret")
		if err := c.Stor("more.bin", bytes.NewReader(randomBytes(600<<10))); err != nil {
			t.Fatalf("upload within the stored usage after a restart: %v", err)
		}
		if u := liveUsage(t, ts); u.Bytes != 900<<10 || u.Files != 3 {
			t.Fatalf("usage after the restart: %+v, want the stored figure plus the upload", u)
		}

		// quota scan through the running server finds everything.
		_, sum, files := stored(t, ts)
		got, err := controlClient(ts).ScanQuota(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got.Bytes != sum || got.Files != files || got.Bytes != 1400<<10 {
			t.Fatalf("scan: %+v; the backend holds %d bytes in %d files", got, sum, files)
		}
		// ...and the server enforces it at once: alice is over her quota.
		err = c.Stor("x.bin", bytes.NewReader([]byte("x")))
		if msg, ok := code552(err); !ok || !strings.Contains(msg, "1.3 MiB of 1 MiB used") {
			t.Fatalf("upload after the scan: %v", err)
		}
		if _, err := controlClient(ts).ScanQuota(t.Context(), "nobody"); !errors.Is(err, control.ErrUnknownUser) {
			t.Errorf("scan of an unknown user: %v", err)
		}
		c.Quit()

		// With the server stopped: the scan writes the state store and
		// the next start uses it.
		shutdown(t, ts)
		ts.write("alice/behind.bin", nil) // 500 KiB fewer
		off, err := server.ScanQuotaOffline(t.Context(), ts.cfg, "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		if off.Bytes != 900<<10 || off.Files != files {
			t.Fatalf("offline scan: %+v, want %d bytes in %d files", off, 900<<10, files)
		}
		ts = restartStopped(t, ts)
		c, _ = dialJlaffaye(t, ts, "alice", "alice-secret")
		if err := c.Stor("last.bin", bytes.NewReader(randomBytes(100<<10))); err != nil {
			t.Fatalf("upload within the offline scan's figure: %v", err)
		}
		if u := liveUsage(t, ts); u.Bytes != 1000<<10 {
			t.Fatalf("usage after the offline scan and a restart: %+v", u)
		}
	})
}

// logger is a logger like the one ts's server got.
func (ts *testServer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.MultiWriter(ts.logs, testLogWriter{ts.t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// shutdown stops ts's server.
func shutdown(t *testing.T, ts *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// restart stops ts's server and starts a new one on the same config,
// storage and state directory.
func restart(t *testing.T, ts *testServer) *testServer {
	t.Helper()
	shutdown(t, ts)
	return restartStopped(t, ts)
}

func restartStopped(t *testing.T, ts *testServer) *testServer {
	t.Helper()
	cfg := cloneConfig(ts.cfg)
	srv, err := server.New(t.Context(), cfg, server.Options{Logger: ts.logger()})
	if err != nil {
		t.Fatal(err)
	}
	serveUntilCleanup(t, srv)
	n := *ts
	n.srv, n.cfg, n.Addr = srv, cfg, srv.Addrs()[0].String()
	return &n
}

// TestQuotaResume: APPE and REST+STOR count the file's new size against
// the quota, on S3 too where they write a new object. An APPE that would
// cross the quota is refused with 552: on local disk what fitted stays in
// the file (it writes in place), on S3 the new object is never published
// and the file stays as it was; the usage is the file's size either way.
// One that fits, and a resume that shortens the file, are counted as the
// file now is.
func TestQuotaResume(t *testing.T) {
	forBackends(t, quotaBackends, func(t *testing.T, b backend) {
		const quota = 1 << 20
		mutate, _ := withQuota(t, quota, 0)
		ts := startServerOn(t, b, mutate)
		old := randomBytes(600 << 10)
		ts.write("alice/f.bin", old)
		c, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
		if _, ok := code552(c.Append("f.bin", bytes.NewReader(randomBytes(500<<10)))); !ok {
			t.Error("an APPE past the quota was not refused with 552")
		}
		got := ts.read("alice/f.bin")
		switch {
		case b.isS3() && !bytes.Equal(got, old):
			t.Fatalf("the refused APPE left %d bytes, want the %d there before", len(got), len(old))
		case !b.isS3() && (len(got) != quota || !bytes.Equal(got[:len(old)], old)):
			t.Fatalf("the refused APPE left %d bytes, want the old ones and what fitted, %d", len(got), quota)
		}
		if u := liveUsage(t, ts); u.Bytes != int64(len(got)) {
			t.Errorf("usage after the refused APPE: %+v, want the file's %d", u, len(got))
		}
		// A resume that shortens the file, then an APPE that fits.
		tail := randomBytes(300 << 10)
		check(t, "StorFrom", c.StorFrom("f.bin", bytes.NewReader(tail[:1000]), 100<<10))
		want := append(old[:100<<10:100<<10], tail[:1000]...)
		if got := ts.read("alice/f.bin"); !bytes.Equal(got, want) {
			t.Fatalf("after the resume: %d bytes, want %d", len(got), len(want))
		}
		if u := liveUsage(t, ts); u.Bytes != int64(len(want)) || u.Files != 1 {
			t.Errorf("usage after the resume: %+v, want %d in 1 file", u, len(want))
		}
		check(t, "Append", c.Append("f.bin", bytes.NewReader(tail)))
		want = append(want, tail...)
		if got := ts.read("alice/f.bin"); !bytes.Equal(got, want) {
			t.Fatalf("after the APPE: %d bytes, want %d", len(got), len(want))
		}
		if u := liveUsage(t, ts); u.Bytes != int64(len(want)) || u.Files != 1 {
			t.Errorf("usage after the APPE: %+v, want %d in 1 file", u, len(want))
		}
	})
}
