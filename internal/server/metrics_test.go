package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// scrape reads the server's /metrics and returns its sample lines by
// series ("name{labels}" -> value).
func scrape(t *testing.T, ts *testServer) map[string]string {
	t.Helper()
	addr := ts.srv.MetricsAddr()
	if addr == nil {
		t.Fatal("no metrics endpoint")
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(body), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		out[l[:i]] = l[i+1:]
	}
	return out
}

func wantSample(t *testing.T, got map[string]string, series, value string) {
	t.Helper()
	if v, ok := got[series]; !ok || v != value {
		t.Errorf("%s = %q (present %v), want %s", series, v, ok, value)
	}
}

// TestMetrics drives sessions that log in, fail to, transfer and run out
// of passive ports, and checks the counters Prometheus would read.
func TestMetrics(t *testing.T) {
	ports := clienttest.FreeRange(t, 1)
	ts := startServer(t, func(c *config.Config) {
		c.Metrics.Address = "127.0.0.1:0"
		c.Listeners[0].PassivePorts = ports
	})
	before := scrape(t, ts)
	wantSample(t, before, `cloudftpd_transfers_total{command="RETR",result="ok"}`, "0")
	wantSample(t, before, `cloudftpd_logins_total{result="failed"}`, "0")

	bad := dialRaw(t, ts.Addr)
	bad.must(331, "USER alice")
	bad.must(530, "PASS wrong")

	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	payload := []byte(strings.Repeat("metrics ", 1000))
	rc.stor(rc.pasv(), "m.txt", payload)
	dc := rc.pasv()
	rc.must(150, "RETR m.txt")
	if got := readAll(t, dc); len(got) != len(payload) {
		t.Fatalf("RETR: %d bytes, want %d", len(got), len(payload))
	}
	rc.expect(226)

	// The one passive port waits for rc; a second session from the same
	// address finds none free.
	rc.must(227, "PASV")
	other := dialRaw(t, ts.Addr)
	other.login("bob", "bob-secret")
	other.must(425, "PASV")

	got := scrape(t, ts)
	wantSample(t, got, `cloudftpd_logins_total{result="ok"}`, "2")
	wantSample(t, got, `cloudftpd_logins_total{result="failed"}`, "1")
	wantSample(t, got, `cloudftpd_transfers_total{command="STOR",result="ok"}`, "1")
	wantSample(t, got, `cloudftpd_transfers_total{command="RETR",result="ok"}`, "1")
	wantSample(t, got, `cloudftpd_transfer_bytes_total{direction="in"}`, "8000")
	wantSample(t, got, `cloudftpd_transfer_bytes_total{direction="out"}`, "8000")
	wantSample(t, got, `cloudftpd_transfer_duration_seconds_count{direction="in"}`, "1")
	wantSample(t, got, `cloudftpd_passive_ports_exhausted_total`, "1")
	wantSample(t, got, `cloudftpd_sessions`, "3")
	wantSample(t, got, `cloudftpd_sessions_total`, "3")
	wantSample(t, got, `cloudftpd_passive_ports_open`, "1")
	wantSample(t, got, `cloudftpd_pasv_private_address_total`, "0")
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}
