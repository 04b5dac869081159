package delivery

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// sqsStandIn answers the SQS JSON protocol's SendMessageBatch the way
// Amazon SQS does (AWS JSON 1.0, X-Amz-Target, MD5 of each body, per-entry
// failures), checks that each request is SigV4-signed for the sqs service
// and addressed to the queue, and keeps the messages in arrival order.
type sqsStandIn struct {
	t        *testing.T
	queueURL string

	mu   sync.Mutex
	msgs []sqsMessage
	bad  []string
	// failNext, while > 0, answers whole requests with 500.
	failNext int
	// failEntry, when >= 0, fails that entry id of the next batch.
	failEntry int
}

type sqsMessage struct {
	Body       string
	Attributes map[string]string
	GroupID    string
	DedupID    string
}

func newSQSStandIn(t *testing.T, queueURL string) (*sqsStandIn, *httptest.Server) {
	q := &sqsStandIn{t: t, queueURL: queueURL, failEntry: -1}
	srv := httptest.NewServer(q)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "standin-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	return q, srv
}

func (q *sqsStandIn) complain(w http.ResponseWriter, format string, args ...any) {
	q.mu.Lock()
	q.bad = append(q.bad, fmt.Sprintf(format, args...))
	q.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(http.StatusBadRequest)
	io.WriteString(w, `{"__type":"com.amazonaws.sqs#InvalidParameterValue","message":"stand-in refused the request"}`)
}

func (q *sqsStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if got := r.Header.Get("X-Amz-Target"); got != "AmazonSQS.SendMessageBatch" {
		q.complain(w, "X-Amz-Target %q", got)
		return
	}
	if got := r.Header.Get("Content-Type"); got != "application/x-amz-json-1.0" {
		q.complain(w, "Content-Type %q", got)
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDSTANDIN/") || !strings.Contains(auth, "/eu-west-1/sqs/aws4_request") {
		q.complain(w, "Authorization %q", auth)
		return
	}
	var in struct {
		QueueUrl string
		Entries  []struct {
			Id                     string
			MessageBody            string
			MessageGroupId         string
			MessageDeduplicationId string
			MessageAttributes      map[string]struct{ DataType, StringValue string }
		}
	}
	if err := json.Unmarshal(body, &in); err != nil || in.QueueUrl != q.queueURL || len(in.Entries) == 0 || len(in.Entries) > 10 {
		q.complain(w, "body %s (%v)", body, err)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failNext > 0 {
		q.failNext--
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"__type":"com.amazonaws.sqs#InternalError","message":"try again"}`)
		return
	}
	type ok struct{ Id, MessageId, MD5OfMessageBody string }
	type failed struct {
		Id, Code, Message string
		SenderFault       bool
	}
	out := struct {
		Successful []ok
		Failed     []failed
	}{Successful: []ok{}, Failed: []failed{}}
	for i, e := range in.Entries {
		if q.failEntry == i {
			q.failEntry = -1
			out.Failed = append(out.Failed, failed{Id: e.Id, Code: "InternalError", Message: "entry failed"})
			continue
		}
		attrs := map[string]string{}
		for k, v := range e.MessageAttributes {
			attrs[k] = v.DataType + ":" + v.StringValue
		}
		q.msgs = append(q.msgs, sqsMessage{Body: e.MessageBody, Attributes: attrs, GroupID: e.MessageGroupId, DedupID: e.MessageDeduplicationId})
		sum := md5.Sum([]byte(e.MessageBody))
		out.Successful = append(out.Successful, ok{Id: e.Id, MessageId: fmt.Sprintf("m-%d", len(q.msgs)), MD5OfMessageBody: hex.EncodeToString(sum[:])})
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	json.NewEncoder(w).Encode(out)
}

func (q *sqsStandIn) snapshot() ([]sqsMessage, []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]sqsMessage(nil), q.msgs...), append([]string(nil), q.bad...)
}

func TestSQSSink(t *testing.T) {
	for _, tc := range []struct {
		name, queue string
		fifo        bool
	}{
		{"standard", "https://sqs.eu-west-1.amazonaws.com/123456789012/cloudftpd-events", false},
		{"fifo", "https://sqs.eu-west-1.amazonaws.com/123456789012/cloudftpd-events.fifo", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, srv := newSQSStandIn(t, tc.queue)
			sink := NewSQS(tc.queue, "", srv.URL, 0) // region from the URL
			evs := uploads(25)
			for i := range evs {
				evs[i].ID = events.NewID(evs[i].Time)
			}
			n, err := sink.Deliver(context.Background(), evs)
			if err != nil || n != len(evs) {
				t.Fatalf("Deliver = %d, %v; want %d, nil", n, err, len(evs))
			}
			msgs, bad := q.snapshot()
			if len(bad) > 0 {
				t.Fatalf("the stand-in refused requests: %v", bad)
			}
			if len(msgs) != len(evs) {
				t.Fatalf("%d messages, want %d", len(msgs), len(evs))
			}
			for i, m := range msgs {
				var got events.Event
				if err := json.Unmarshal([]byte(m.Body), &got); err != nil {
					t.Fatalf("message %d: %v: %s", i, err, m.Body)
				}
				if got.ID != evs[i].ID || got.Path != evs[i].Path || got.Type != events.UploadCommitted {
					t.Errorf("message %d is event %s %s, want %s %s (in order)", i, got.ID, got.Path, evs[i].ID, evs[i].Path)
				}
				if m.Attributes["type"] != "String:upload.committed" || m.Attributes["id"] != "String:"+evs[i].ID {
					t.Errorf("message %d attributes %v", i, m.Attributes)
				}
				wantDedup, wantGroup := "", ""
				if tc.fifo {
					wantDedup, wantGroup = evs[i].ID, "alice"
				}
				if m.DedupID != wantDedup || m.GroupID != wantGroup {
					t.Errorf("message %d: dedup %q group %q, want %q %q", i, m.DedupID, m.GroupID, wantDedup, wantGroup)
				}
			}
		})
	}
}

func TestSQSSinkPartialFailure(t *testing.T) {
	const queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/q"
	q, srv := newSQSStandIn(t, queue)
	sink := NewSQS(queue, "eu-west-1", srv.URL, 0)
	evs := uploads(8)
	for i := range evs {
		evs[i].ID = fmt.Sprintf("e%d", i)
	}
	q.failEntry = 3
	n, err := sink.Deliver(context.Background(), evs)
	if n != 3 || err == nil || !strings.Contains(err.Error(), "event e3 not queued") {
		t.Fatalf("Deliver = %d, %v; want 3 and an error naming e3", n, err)
	}
	q.failNext = 1
	if n, err := sink.Deliver(context.Background(), evs[3:]); n != 0 || err == nil {
		t.Fatalf("Deliver during a 500 = %d, %v; want 0 and an error", n, err)
	}
}

// TestSQSThroughDispatcher: events recorded while the queue answers 500
// reach it once it recovers, each at least once and every one of them.
func TestSQSThroughDispatcher(t *testing.T) {
	const queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/q"
	q, srv := newSQSStandIn(t, queue)
	q.failNext = 3
	store := openStore(t, t.TempDir())
	var logs logBuffer
	cfg := events.Config{StateDir: "x", Sinks: []events.SinkConfig{fast(events.SinkConfig{Name: "queue", Kind: events.KindSQS, QueueURL: queue, Endpoint: srv.URL})}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), store, cfg, testOptions(&logs))
	if err != nil {
		t.Fatal(err)
	}
	run(t, d)
	ids := record(t, d, uploads(30)...)
	eventually(t, "every event delivered", func() bool { return stats(d, "queue").Delivered == uint64(len(ids)) })
	msgs, bad := q.snapshot()
	if len(bad) > 0 {
		t.Fatalf("the stand-in refused requests: %v", bad)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		var e events.Event
		if err := json.Unmarshal([]byte(m.Body), &e); err != nil {
			t.Fatal(err)
		}
		seen[e.ID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("event %s never reached the queue", id)
		}
	}
	if r := stats(d, "queue").Retried; r < 3 {
		t.Errorf("Retried = %d after 3 failed requests, want at least 3", r)
	}
}

func TestSQSConfig(t *testing.T) {
	for _, tc := range []struct {
		sink events.SinkConfig
		want string
	}{
		{events.SinkConfig{Name: "q", Kind: events.KindSQS}, "queue_url"},
		{events.SinkConfig{Name: "q", Kind: events.KindSQS, QueueURL: "https://sqs.eu-west-1.amazonaws.com"}, "queue_url"},
		{events.SinkConfig{Name: "q", Kind: events.KindSQS, QueueURL: "https://sqs.eu-west-1.amazonaws.com/1/q", Endpoint: "localhost:9324"}, "endpoint"},
		{events.SinkConfig{Name: "q", Kind: events.KindSQS, QueueURL: "https://sqs.eu-west-1.amazonaws.com/1/q"}, ""},
	} {
		err := tc.sink.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate() = %v, want an error about %q", tc.sink, err, tc.want)
		}
	}
	if got := regionOf("https://sqs.ap-southeast-2.amazonaws.com/1/q"); got != "ap-southeast-2" {
		t.Errorf("regionOf = %q", got)
	}
	if got := regionOf("http://127.0.0.1:9324/1/q"); got != "" {
		t.Errorf("regionOf(local) = %q, want none", got)
	}
}
