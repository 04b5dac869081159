package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// TestPostgresOutboxEndToEnd: two servers with auth.store = "postgres"
// share the event outbox `db migrate` created: uploads through either
// node give exactly one webhook delivery each, and when one node shuts
// down the other delivers what comes next, still once each.
func TestPostgresOutboxEndToEnd(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
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

	cfgs := pgNodeConfigs(t, t.TempDir(), dsn, 2, "2s", fmt.Sprintf(`
[events]
lease = "2s"

[[events.sink]]
name = "portal"
kind = "webhook"
url = %q
secret = "0123456789abcdef0123456789"
types = ["upload.committed"]
retry_min = "10ms"
`, rcv.URL))
	cfgPath := cfgs[0]
	// Before the migration a node refuses to start, saying what to do.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if srv, err := server.New(t.Context(), cfg, server.Options{}); err == nil || !strings.Contains(err.Error(), "cloudftpd db migrate") {
		if srv != nil {
			srv.Close()
		}
		t.Fatalf("server on a database without the outbox tables: %v; want an error saying to run db migrate", err)
	}
	if out := cli(t, "", "db", "migrate", "--config", cfgPath); !strings.Contains(out, "applied 00002_outbox.sql") {
		t.Fatalf("db migrate did not apply the outbox migration: %q", out)
	}
	cli(t, "secret\n", "user", "add", "partner", "--config", cfgPath, "--password-stdin")
	nodes := []*testNode{startNode(t, cfgs[0]), startNode(t, cfgs[1])}
	for i, n := range nodes {
		if !strings.Contains(n.logs.String(), "the outbox is in PostgreSQL") {
			t.Fatalf("node %d does not use the shared outbox:\n%s", i+1, n.logs)
		}
	}

	upload := func(n *testNode, name string) {
		t.Helper()
		c := n.dial(t, "partner", "secret")
		defer c.Quit() // now, not at the end: node 1 shuts down before then
		if err := c.Stor(name, strings.NewReader("data of "+name)); err != nil {
			t.Fatalf("upload %s: %v\n%s", name, err, n.logs)
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
	if err := nodes[0].stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		name := fmt.Sprintf("after-%02d.txt", i)
		upload(nodes[1], name)
		want = append(want, "/"+name)
	}
	check(want)
}
