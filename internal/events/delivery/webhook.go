package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// Webhook request headers. The body is the event's JSON.
const (
	HeaderEventID   = "X-Cloudftpd-Event-Id"   // the event's id: deduplicate by it
	HeaderEventType = "X-Cloudftpd-Event-Type" // "upload.committed", ...
	HeaderTimestamp = "X-Cloudftpd-Timestamp"  // Unix seconds when this attempt was sent
	// HeaderSignature is "t=<timestamp>,v1=<hex>", where hex is
	// HMAC-SHA256(secret, "<timestamp>.<body>") (see Signature). A
	// receiver recomputes it over the raw body, compares in constant
	// time, and refuses timestamps far from its clock (replays).
	HeaderSignature = "X-Cloudftpd-Signature"
)

// Signature returns the v1 signature of a webhook body sent at unix time
// ts: hex(HMAC-SHA256(secret, ts + "." + body)).
func Signature(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(strconv.AppendInt(nil, ts, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// WebhookSink POSTs each event, one request at a time in order. A 2xx
// answer is delivered; any other status, a redirect, a connection error
// or the timeout is retried by the dispatcher, so the receiver may see an
// event again (with the same id) when it answered too late.
type WebhookSink struct {
	url     string
	secret  []byte
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

// NewWebhook returns a sink posting to rawURL, signing with secret, each
// request bounded by timeout.
func NewWebhook(rawURL, secret string, timeout time.Duration) *WebhookSink {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 2
	return &WebhookSink{
		url: rawURL, secret: []byte(secret), timeout: timeout, now: time.Now,
		client: &http.Client{
			Transport: tr,
			// A redirect is the receiver's misconfiguration: retried
			// and logged with its status, never followed with a
			// signed body to somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Deliver implements Sink.
func (w *WebhookSink) Deliver(ctx context.Context, evs []events.Event) (int, error) {
	for i := range evs {
		if err := w.post(ctx, &evs[i]); err != nil {
			return i, err
		}
	}
	return len(evs), nil
}

func (w *WebhookSink) post(ctx context.Context, e *events.Event) error {
	body := marshal(e)
	ts := w.now().Unix()
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("delivery: webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cloudftpd-webhook/1")
	req.Header.Set(HeaderEventID, e.ID)
	req.Header.Set(HeaderEventType, string(e.Type))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, "t="+strconv.FormatInt(ts, 10)+",v1="+Signature(w.secret, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		// url.Error quotes the URL; keep userinfo out of logs.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("delivery: webhook POST %s: %w", redact(w.url), err)
	}
	// Drained (bounded) so the connection is reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("delivery: webhook POST %s: %s: %q", redact(w.url), resp.Status, bytes.TrimSpace(snippet))
	}
	return nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad URL)"
	}
	return u.Redacted()
}
