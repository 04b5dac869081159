package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/ftp"
	"github.com/cloudftpd/cloudftpd/internal/metrics"
)

// opsCounters are the counts the operations API shows whether or not
// [metrics] is on: the NAT warnings (PASV replies that sent a private
// address to a public client) and the 425s for want of a passive port.
// It is the sessions' ftp.Metrics, passing every count on to Prometheus
// when that is configured.
type opsCounters struct {
	prom *metrics.Metrics // nil without [metrics]

	privatePASV    atomic.Int64
	portsExhausted atomic.Int64
}

var _ ftp.Metrics = (*opsCounters)(nil)

func (o *opsCounters) Login(ok bool) {
	if o.prom != nil {
		o.prom.Login(ok)
	}
}

func (o *opsCounters) Transfer(command, result string, bytes int64, d time.Duration) {
	if o.prom != nil {
		o.prom.Transfer(command, result, bytes, d)
	}
}

func (o *opsCounters) PrivatePASVAddress() {
	o.privatePASV.Add(1)
	if o.prom != nil {
		o.prom.PrivatePASVAddress()
	}
}

func (o *opsCounters) PassivePortsExhausted() {
	o.portsExhausted.Add(1)
	if o.prom != nil {
		o.prom.PassivePortsExhausted()
	}
}

func (o *opsCounters) TLSHandshakeFailed(data bool) {
	if o.prom != nil {
		o.prom.TLSHandshakeFailed(data)
	}
}

// Throughput sampling: every second the server adds up the bytes its
// sessions have moved (finished transfers and the running ones, counted
// per chunk) plus those of sessions already closed; the rate is the
// difference over the last throughputWindow. Sampling the totals rather
// than summing the running transfers' rates counts a transfer that
// finished within the window, and costs nothing in the transfer path.
const (
	throughputTick   = time.Second
	throughputWindow = 10 * time.Second
)

type byteSample struct {
	at       time.Time
	up, down int64
}

// throughput keeps the samples of the last window.
type throughput struct {
	mu      sync.Mutex
	samples []byteSample // oldest first
}

func (t *throughput) add(s byteSample) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.samples = append(t.samples, s)
	// Keep one sample at or before the window's start.
	for len(t.samples) > 2 && s.at.Sub(t.samples[1].at) >= throughputWindow {
		t.samples = t.samples[1:]
	}
}

// rates returns bytes a second up and down over the window, and the
// window's actual length (0 before two samples).
func (t *throughput) rates() (up, down float64, over time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.samples) < 2 {
		return 0, 0, 0
	}
	a, b := t.samples[0], t.samples[len(t.samples)-1]
	over = b.at.Sub(a.at)
	if over <= 0 {
		return 0, 0, 0
	}
	// A session that ended between its Info and the closed totals can
	// make a total dip for a moment: never a negative rate.
	up = max(0, float64(b.up-a.up)/over.Seconds())
	down = max(0, float64(b.down-a.down)/over.Seconds())
	return up, down, over
}

// byteTotals is every byte the server's sessions have moved so far.
func (s *Server) byteTotals() byteSample {
	s.mu.Lock()
	live := make([]*ftp.Session, 0, len(s.sessions))
	for sess := range s.sessions {
		live = append(live, sess)
	}
	up, down := s.closedUp, s.closedDown
	s.mu.Unlock()
	for _, sess := range live {
		in := sess.Info()
		up += in.BytesUploaded
		down += in.BytesDownloaded
	}
	return byteSample{at: time.Now(), up: up, down: down}
}

// sampleThroughput samples every tick until done is closed.
func (s *Server) sampleThroughput(done <-chan struct{}) {
	t := time.NewTicker(throughputTick)
	defer t.Stop()
	s.rates.add(s.byteTotals())
	for {
		select {
		case <-done:
			return
		case <-t.C:
			s.rates.add(s.byteTotals())
		}
	}
}
