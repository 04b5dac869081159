package server_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

// TestEventMetrics scrapes the dispatcher's per-sink counters from
// /metrics while a real session makes events: an audit log delivers
// everything; a webhook that fails its first two requests retries and
// then delivers what its filter (logins) queued; a webhook that is down
// with a backlog of 1 drops.
func TestEventMetrics(t *testing.T) {
	var flakyCalls atomic.Int64
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if flakyCalls.Add(1) <= 2 {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer flaky.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	const secret = "a-shared-secret-of-some-length"
	ts := startServer(t, func(c *config.Config) {
		c.Server.StateDir = t.TempDir()
		c.Metrics.Address = "127.0.0.1:0"
		c.Events.Sinks = []events.SinkConfig{
			{Name: "audit", Kind: events.KindAudit, Path: audit},
			{Name: "flaky", Kind: events.KindWebhook, URL: flaky.URL, Secret: secret, Types: []events.Type{"login.*"},
				RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond},
			{Name: "down", Kind: events.KindWebhook, URL: down.URL, Secret: secret, MaxBacklog: 1,
				RetryMin: time.Minute, RetryMax: time.Minute},
		}
	})
	before := scrape(t, ts)
	for _, sink := range []string{`kind="audit",sink="audit"`, `kind="webhook",sink="flaky"`, `kind="webhook",sink="down"`} {
		for _, c := range []string{"queued", "delivered", "retried", "failed", "dropped"} {
			wantSample(t, before, "cloudftpd_events_"+c+"_total{"+sink+"}", "0")
		}
		wantSample(t, before, "cloudftpd_events_backlog{"+sink+"}", "0")
	}

	bad := dialRaw(t, ts.Addr)
	bad.must(331, "USER alice")
	bad.must(530, "PASS wrong")
	bad.must(221, "QUIT")
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	rc.must(200, "TYPE I")
	rc.stor(rc.epsv(), "report.csv", []byte("id,amount\n1,100\n"))
	rc.must(257, "MKD reports")
	rc.must(221, "QUIT")

	// login.failed, session.ended, login.succeeded, upload.committed,
	// dir.created, session.ended: 6, of which 2 logins.
	const all, logins = "6", "2"
	var got map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = scrape(t, ts)
		if got[`cloudftpd_events_delivered_total{kind="audit",sink="audit"}`] == all &&
			got[`cloudftpd_events_delivered_total{kind="webhook",sink="flaky"}`] == logins &&
			got[`cloudftpd_events_dropped_total{kind="webhook",sink="down"}`] != "0" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantSample(t, got, `cloudftpd_events_queued_total{kind="audit",sink="audit"}`, all)
	wantSample(t, got, `cloudftpd_events_delivered_total{kind="audit",sink="audit"}`, all)
	wantSample(t, got, `cloudftpd_events_retried_total{kind="audit",sink="audit"}`, "0")
	wantSample(t, got, `cloudftpd_events_queued_total{kind="webhook",sink="flaky"}`, logins)
	wantSample(t, got, `cloudftpd_events_delivered_total{kind="webhook",sink="flaky"}`, logins)
	wantSample(t, got, `cloudftpd_events_retried_total{kind="webhook",sink="flaky"}`, "2")
	wantSample(t, got, `cloudftpd_events_queued_total{kind="webhook",sink="down"}`, all)
	wantSample(t, got, `cloudftpd_events_delivered_total{kind="webhook",sink="down"}`, "0")
	if n, _ := strconv.Atoi(got[`cloudftpd_events_dropped_total{kind="webhook",sink="down"}`]); n < 1 {
		t.Errorf("down sink dropped %d events, want some (max_backlog = 1)", n)
	}
	if n, _ := strconv.Atoi(got[`cloudftpd_events_retried_total{kind="webhook",sink="down"}`]); n < 1 {
		t.Errorf("down sink retried %d times, want at least once", n)
	}
	if got := flakyCalls.Load(); got != 4 {
		t.Errorf("flaky webhook got %d requests, want 2 failed + 2 delivered", got)
	}
}
