package delivery

import (
	"bufio"
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

const testSecret = "0123456789abcdef-test-secret"

// receiver is a webhook endpoint that checks each request the way a
// receiver should (signature over "t.body", fresh timestamp, header id =
// body id) and counts receipts per id. mode says how it answers.
type receiver struct {
	t      *testing.T
	secret []byte

	mu      sync.Mutex
	mode    string // "ok", "503", "hang"
	hangFor time.Duration
	first   []string       // ids in order of first receipt
	seen    map[string]int // receipts per id
	bad     []string
}

func newReceiver(t *testing.T, mode string) *receiver {
	return &receiver{t: t, secret: []byte(testSecret), mode: mode, seen: map[string]int{}}
}

func (rc *receiver) setMode(m string) {
	rc.mu.Lock()
	rc.mode = m
	rc.mu.Unlock()
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := verify(rc.secret, r.Header, body, time.Now()); err != nil {
		rc.mu.Lock()
		rc.bad = append(rc.bad, err.Error())
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID != r.Header.Get(HeaderEventID) || string(e.Type) != r.Header.Get(HeaderEventType) {
		rc.mu.Lock()
		rc.bad = append(rc.bad, fmt.Sprintf("body %q does not match headers %v (%v)", body, r.Header, err))
		rc.mu.Unlock()
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	mode, hang := rc.mode, rc.hangFor
	if mode != "503" {
		// "hang" counts as received: the receiver got it, its answer
		// comes too late, and the sender will send it again.
		if rc.seen[e.ID] == 0 {
			rc.first = append(rc.first, e.ID)
		}
		rc.seen[e.ID]++
	}
	if mode == "hang" {
		rc.mode = "ok" // one slow answer, then healthy
	}
	rc.mu.Unlock()
	switch mode {
	case "503":
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	case "hang":
		select {
		case <-time.After(hang):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// verify is what docs/events.md tells receivers to do.
func verify(secret []byte, h http.Header, body []byte, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(h.Get(HeaderSignature), ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || ts != h.Get(HeaderTimestamp) {
		return fmt.Errorf("timestamp %q / %q", ts, h.Get(HeaderTimestamp))
	}
	if d := now.Sub(time.Unix(t, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %d is %s away", t, d)
	}
	if !hmac.Equal([]byte(sig), []byte(Signature(secret, t, body))) {
		return fmt.Errorf("signature %q does not verify", sig)
	}
	return nil
}

func (rc *receiver) snapshot() (first []string, seen map[string]int, bad []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen = map[string]int{}
	for k, v := range rc.seen {
		seen[k] = v
	}
	return slices.Clone(rc.first), seen, slices.Clone(rc.bad)
}

func webhookConfig(url string) events.SinkConfig {
	c := fast(events.SinkConfig{Name: "hook", Kind: events.KindWebhook, URL: url, Secret: testSecret, Timeout: time.Second})
	return c
}

// TestWebhookDownThenUp: the receiver refuses connections, then answers
// 503, then answers one request too late, then is healthy. Every event
// arrives, with a valid signature, first receipts in record order, and
// more than once only when the sender could not know it had arrived (the
// late answer), always with the same id.
func TestWebhookDownThenUp(t *testing.T) {
	// An address with nothing listening: connections are refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	store := openStore(t, t.TempDir())
	var logs logBuffer
	d, err := New(context.Background(), store, events.Config{StateDir: "x", Sinks: []events.SinkConfig{webhookConfig("http://" + addr + "/hook")}}, testOptions(&logs))
	if err != nil {
		t.Fatal(err)
	}
	run(t, d)
	ids := record(t, d, uploads(20)...)

	eventually(t, "refused attempts", func() bool { return stats(d, "hook").Retried >= 2 })
	rc := newReceiver(t, "503")
	rc.hangFor = 10 * time.Second
	l, err = net.Listen("tcp", addr) // the same address, now answering
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(rc)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	before := stats(d, "hook").Retried
	eventually(t, "503 attempts", func() bool { return stats(d, "hook").Retried >= before+2 })
	rc.setMode("hang")
	ids = append(ids, record(t, d, uploads(5)...)...)

	eventually(t, "every event received", func() bool {
		first, _, _ := rc.snapshot()
		return len(first) == len(ids)
	})
	eventually(t, "every delivery recorded", func() bool { return stats(d, "hook").Delivered == uint64(len(ids)) })
	first, seen, bad := rc.snapshot()
	if len(bad) > 0 {
		t.Fatalf("receiver refused requests: %v", bad)
	}
	if !slices.Equal(first, ids) {
		t.Errorf("first receipts %v\nwant record order %v", first, ids)
	}
	dups := 0
	for id, n := range seen {
		if n > 1 {
			dups += n - 1
			t.Logf("event %s received %d times (same id)", id, n)
		}
	}
	if dups != 1 {
		t.Errorf("%d duplicate receipts, want exactly 1 (the answer that came too late)", dups)
	}
	eventually(t, "stats to show the recovery", func() bool {
		st := stats(d, "hook")
		return st.LastError == "" && st.Backlog == 0
	})
	if !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), "503 Service Unavailable") {
		t.Errorf("retry log lines do not say why:\n%s", logs.String())
	}
}

// TestWebhookSignature pins the signature scheme docs/events.md states,
// against a value computed outside Go:
//
//	printf '%s' '1700000000.{"id":"x"}' | openssl dgst -sha256 -hmac secret
func TestWebhookSignature(t *testing.T) {
	got := Signature([]byte("secret"), 1700000000, []byte(`{"id":"x"}`))
	if want := "2f7852138f9dbd8d61c07c2cfb0b8ac96a46a32d78d4527788fb42fcb409a493"; got != want {
		t.Fatalf("Signature = %s, want %s", got, want)
	}
}

const webhookChildEnv = "CLOUDFTPD_WEBHOOK_CRASH_CHILD"

// TestWebhookCrashRestart: a process records events for a webhook whose
// receiver answers 503 and is killed with SIGKILL while they are spooled;
// a new dispatcher on the same state directory delivers every one of
// them once the receiver is up.
func TestWebhookCrashRestart(t *testing.T) {
	if v := os.Getenv(webhookChildEnv); v != "" {
		dir, url, _ := strings.Cut(v, " ")
		webhookChild(dir, url)
		return
	}
	rc := newReceiver(t, "503")
	srv := httptest.NewServer(rc)
	defer srv.Close()
	dir := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^TestWebhookCrashRestart$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), webhookChildEnv+"="+dir+" "+srv.URL+"/hook")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAt := 10 + rand.IntN(30)
	var acked []string
	sc := bufio.NewScanner(out)
	timer := time.AfterFunc(90*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "recorded "); ok {
			acked = append(acked, id)
			if len(acked) == killAt {
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}
	cmd.Wait()
	if len(acked) < killAt {
		t.Fatalf("child recorded %d events, want at least %d before the kill", len(acked), killAt)
	}
	if first, _, _ := rc.snapshot(); len(first) != 0 {
		t.Fatalf("receiver accepted %d events while answering 503", len(first))
	}
	t.Logf("child killed after recording %d events", len(acked))

	rc.setMode("ok")
	store := openStore(t, dir)
	var logs logBuffer
	d, err := New(context.Background(), store, events.Config{StateDir: dir, Sinks: []events.SinkConfig{webhookConfig(srv.URL + "/hook")}}, testOptions(&logs))
	if err != nil {
		t.Fatal(err)
	}
	run(t, d)
	eventually(t, "every spooled event delivered after the restart", func() bool {
		_, seen, _ := rc.snapshot()
		for _, id := range acked {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	first, seen, bad := rc.snapshot()
	if len(bad) > 0 {
		t.Fatalf("receiver refused requests: %v", bad)
	}
	if !slices.Equal(first[:len(acked)], acked) {
		t.Errorf("delivered out of record order")
	}
	for _, id := range acked {
		if seen[id] != 1 {
			t.Errorf("event %s received %d times, want once", id, seen[id])
		}
	}
}

// webhookChild records events (printing each id once Record returned)
// with its dispatcher running against a receiver that answers 503, until
// it is killed.
func webhookChild(dir, url string) {
	ctx := context.Background()
	store, err := state.Open(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	d, err := New(ctx, store, events.Config{StateDir: dir, Sinks: []events.SinkConfig{webhookConfig(url)}}, Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go d.Run(ctx)
	for i := 0; ; i++ {
		e := events.Event{Type: events.UploadCommitted, User: "alice", Path: fmt.Sprintf("/in/%d", i), Result: events.ResultOK}
		e.ID = events.NewID(time.Now())
		if err := d.Record(e); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Stdout.WriteString("recorded " + e.ID + "\n")
		time.Sleep(time.Millisecond)
	}
}
