package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
)

// TestEventsEndToEnd runs a server with an audit log and a webhook and
// a real client: a committed upload, an aborted one, a failed login, a
// rename and a deletion each reach both sinks once, with the fields the
// schema documents; the webhook's signatures verify.
func TestEventsEndToEnd(t *testing.T) {
	const secret = "a-shared-secret-of-some-length"
	recv := newSignedReceiver(t, secret)
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	ts := startServer(t, func(c *config.Config) {
		c.Server.StateDir = t.TempDir()
		c.Events.Sinks = []events.SinkConfig{
			{Name: "audit", Kind: events.KindAudit, Path: audit},
			{Name: "hook", Kind: events.KindWebhook, URL: recv.URL, Secret: secret, RetryMin: 50 * time.Millisecond},
		}
	})

	bad := dialRaw(t, ts.Addr)
	bad.must(331, "USER alice")
	bad.must(530, "PASS wrong")

	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	rc.must(200, "TYPE I")
	rc.stor(rc.epsv(), "report.csv", []byte("id,amount\n1,100\n"))
	// An upload aborted half-way: an event that it failed, none that it
	// was stored.
	dc := rc.epsv()
	rc.must(150, "STOR partial.csv")
	dc.Write([]byte("half of it"))
	rc.must(426, "ABOR") // the STOR's reply, then ABOR's
	rc.expect(226)
	dc.Close()
	rc.must(350, "RNFR report.csv")
	rc.must(250, "RNTO orders.csv")
	rc.must(250, "DELE orders.csv")
	rc.must(221, "QUIT")

	want := map[events.Type]int{events.LoginFailed: 1, events.LoginOK: 1, events.UploadCommitted: 1, events.UploadFailed: 1, events.Rename: 1, events.Delete: 1}
	var got []events.Event
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = readAudit(t, audit)
		if countTypes(got, want) && len(recv.events()) == len(got) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !countTypes(got, want) {
		t.Fatalf("audit log: %v, want at least %v", types(got), want)
	}
	hooked := recv.events()
	for _, e := range got {
		if e.Schema != events.SchemaVersion || e.ID == "" || e.Time.IsZero() || e.Client != "127.0.0.1" || e.Listener != "127.0.0.1:0" {
			t.Errorf("%s: common fields missing: %+v", e.Type, e)
		}
		if _, ok := hooked[e.ID]; !ok {
			t.Errorf("%s %s reached the audit log but not the webhook", e.Type, e.ID)
		}
		switch e.Type {
		case events.UploadCommitted:
			wantObj := filepath.Join(ts.Root, "alice", "report.csv")
			if e.Path != "/report.csv" || e.Size != 16 || e.Result != events.ResultOK || e.Object != wantObj || e.Storage != "local" || e.TransferType != "binary" || e.User != "alice" {
				t.Errorf("upload.committed: %+v (object want %s)", e, wantObj)
			}
		case events.UploadFailed:
			if e.Path != "/partial.csv" || e.Result == events.ResultOK {
				t.Errorf("upload.failed: %+v", e)
			}
		case events.Rename:
			if e.OldPath != "/report.csv" || e.Path != "/orders.csv" {
				t.Errorf("file.renamed: %+v", e)
			}
		case events.LoginFailed:
			if e.User != "alice" || e.Reason != "bad password" {
				t.Errorf("login.failed: %+v", e)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(ts.Root, "alice", "partial.csv")); err == nil {
		t.Error("the aborted upload was stored")
	}
}

func readAudit(t *testing.T, path string) []events.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []events.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func countTypes(got []events.Event, want map[events.Type]int) bool {
	n := map[events.Type]int{}
	for _, e := range got {
		n[e.Type]++
	}
	for k, v := range want {
		if n[k] != v {
			return false
		}
	}
	return true
}

func types(got []events.Event) []events.Type {
	var out []events.Type
	for _, e := range got {
		out = append(out, e.Type)
	}
	return out
}

// signedReceiver is a webhook endpoint that checks each request's
// signature the way a receiver should and keeps the events by id
// (deliveries are at least once).
type signedReceiver struct {
	URL string
	mu  sync.Mutex
	got map[string]events.Event
}

func newSignedReceiver(t *testing.T, secret string) *signedReceiver {
	rc := &signedReceiver{got: map[string]events.Event{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(delivery.HeaderTimestamp), 10, 64)
		if !strings.Contains(r.Header.Get(delivery.HeaderSignature), delivery.Signature([]byte(secret), ts, body)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var e events.Event
		if err := json.Unmarshal(body, &e); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		rc.got[e.ID] = e
		rc.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

// events returns a copy of what arrived, by id.
func (rc *signedReceiver) events() map[string]events.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]events.Event, len(rc.got))
	for k, v := range rc.got {
		out[k] = v
	}
	return out
}
