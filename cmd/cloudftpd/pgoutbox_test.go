package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

// TestPostgresOutboxEndToEnd: two servers with auth.store = "postgres"
// share the event outbox `db migrate` created: uploads through either
// node give exactly one webhook delivery each, and when one node shuts
// down the other delivers what comes next, still once each.
func TestPostgresOutboxEndToEnd(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "files")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[string][]string{} // upload path -> event ids delivered
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e struct{ Path string }
		json.Unmarshal(body, &e)
		mu.Lock()
		got[e.Path] = append(got[e.Path], r.Header.Get(delivery.HeaderEventID))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	cfgPath := filepath.Join(dir, "node1.toml")
	cfgText := fmt.Sprintf(`
[server]
login_failure_delay = "10ms"
state_dir = "state-NODE"

[[listener]]
address = "127.0.0.1:0"
passive_ports = %q

[storage]
backend = "local"
root = %q

[auth]
store = "postgres"

[auth.postgres]
dsn = %q
timeout = "2s"

[events]
lease = "2s"

[[events.sink]]
name = "portal"
kind = "webhook"
url = %q
secret = "0123456789abcdef0123456789"
types = ["upload.committed"]
retry_min = "10ms"
`, clienttest.FreeRange(t, 20), root, dsn, rcv.URL)
	for _, node := range []string{"1", "2"} {
		if err := os.WriteFile(filepath.Join(dir, "node"+node+".toml"), []byte(strings.ReplaceAll(cfgText, "NODE", node)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out := cli(t, "", "db", "migrate", "--config", cfgPath); !strings.Contains(out, "applied 00002_outbox.sql") {
		t.Fatalf("db migrate did not apply the outbox migration: %q", out)
	}
	cli(t, "secret\n", "user", "add", "partner", "--config", cfgPath, "--password-stdin")
	nodes := []*pgNode{startPGNode(t, cfgPath), startPGNode(t, filepath.Join(dir, "node2.toml"))}
	for i, n := range nodes {
		if !strings.Contains(n.logs.String(), "the outbox is in PostgreSQL") {
			t.Fatalf("node %d does not use the shared outbox:\n%s", i+1, n.logs)
		}
	}

	upload := func(n *pgNode, name string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := ftp.Dial(n.addr, ftp.DialWithTimeout(5*time.Second))
			if err == nil {
				err = c.Login("partner", "secret")
				if err == nil {
					err = c.Stor(name, strings.NewReader("data of "+name))
				}
				c.Quit()
			}
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("upload %s: %v\n%s", name, err, n.logs)
			}
			time.Sleep(100 * time.Millisecond) // users still loading
		}
	}
	check := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= len(want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // time for a duplicate to show
		mu.Lock()
		defer mu.Unlock()
		for _, p := range want {
			if len(got[p]) != 1 {
				t.Errorf("upload %s: %d deliveries %v, want exactly one", p, len(got[p]), got[p])
			}
		}
		if len(got) != len(want) {
			t.Errorf("deliveries for %d paths, want %d: %v", len(got), len(want), got)
		}
	}

	var want []string
	for i := range 10 {
		name := fmt.Sprintf("both-%02d.txt", i)
		upload(nodes[i%2], name)
		want = append(want, "/"+name)
	}
	check(want)

	// Node 1 stops (a rolling restart): node 2 delivers what follows.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[0].srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		name := fmt.Sprintf("after-%02d.txt", i)
		upload(nodes[1], name)
		want = append(want, "/"+name)
	}
	check(want)
}
