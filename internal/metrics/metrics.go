// Package metrics counts what the server does for Prometheus: sessions,
// logins, transfers and their bytes, and the events that precede a
// support call (a PASV reply with a private address sent to a public
// client, passive ports running out, failed TLS handshakes). The protocol
// engine reports through the small ftp.Metrics interface, so it knows
// nothing of Prometheus.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the server's collectors in a registry of its own (not
// the global one), with the Go runtime's and the process's.
type Metrics struct {
	reg *prometheus.Registry

	sessions      prometheus.Counter
	refused       *prometheus.CounterVec
	logins        *prometheus.CounterVec
	transfers     *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	privatePASV   prometheus.Counter
	portsBusy     prometheus.Counter
	tlsHandshakes *prometheus.CounterVec
}

// Label values, created up front so that every series exists at 0 from
// the start (a rate over a series that appears late misses its first
// events).
var (
	transferCommands = []string{"RETR", "STOR", "APPE", "LIST", "NLST", "MLSD"}
	transferResults  = []string{"ok", "failed", "aborted"}
	refusalReasons   = []string{"shutdown", "max_sessions", "max_sessions_per_ip", "proxy_header"}
)

// New makes the collectors and registers them.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cloudftpd_sessions_total", Help: "Control connections admitted."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudftpd_sessions_refused_total", Help: "Control connections turned away, by reason."}, []string{"reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudftpd_logins_total", Help: "Login attempts, by result (ok, failed)."}, []string{"result"}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudftpd_transfers_total", Help: "Data transfers, by command and result (ok, failed, aborted)."},
			[]string{"command", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudftpd_transfer_bytes_total", Help: "Bytes moved by transfers, by direction (in: uploads; out: downloads and listings)."},
			[]string{"direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cloudftpd_transfer_duration_seconds", Help: "Duration of data transfers, by direction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, // 1 ms to about 4 min
			[]string{"direction"}),
		privatePASV: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cloudftpd_pasv_private_address_total",
			Help: "PASV replies that sent a private or loopback address to a client on a public one (the NAT failure)."}),
		portsBusy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cloudftpd_passive_ports_exhausted_total",
			Help: "PASV/EPSV requests answered 425 because no passive port was free for the client."}),
		tlsHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudftpd_tls_handshake_failures_total", Help: "Failed TLS handshakes, by connection (control, data)."},
			[]string{"connection"}),
	}
	m.reg.MustRegister(m.sessions, m.refused, m.logins, m.transfers, m.bytes, m.duration,
		m.privatePASV, m.portsBusy, m.tlsHandshakes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range refusalReasons {
		m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed"} {
		m.logins.WithLabelValues(r)
	}
	for _, c := range transferCommands {
		for _, r := range transferResults {
			m.transfers.WithLabelValues(c, r)
		}
	}
	for _, d := range []string{"in", "out"} {
		m.bytes.WithLabelValues(d)
		m.duration.WithLabelValues(d)
	}
	for _, c := range []string{"control", "data"} {
		m.tlsHandshakes.WithLabelValues(c)
	}
	return m
}

// Gauge registers a gauge read when Prometheus scrapes (open sessions,
// open passive ports): the number lives where it is kept anyway.
func (m *Metrics) Gauge(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, read))
}

// Counter registers a counter read when Prometheus scrapes, for counts
// another component keeps (the defender's bans).
func (m *Metrics) Counter(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, read))
}

// Sample is one labelled value of a family read at scrape time; Labels
// are the values of the family's label names, in order.
type Sample struct {
	Labels []string
	Value  float64
}

// CounterFamily registers counters with labels, all read when Prometheus
// scrapes, for counts another component keeps per thing (the event
// dispatcher's per sink). read returns one sample per label set.
func (m *Metrics) CounterFamily(name, help string, labels []string, read func() []Sample) {
	m.reg.MustRegister(&family{desc: prometheus.NewDesc(name, help, labels, nil), kind: prometheus.CounterValue, read: read})
}

// GaugeFamily is CounterFamily for gauges.
func (m *Metrics) GaugeFamily(name, help string, labels []string, read func() []Sample) {
	m.reg.MustRegister(&family{desc: prometheus.NewDesc(name, help, labels, nil), kind: prometheus.GaugeValue, read: read})
}

// family is a prometheus.Collector of one metric family read at scrape
// time.
type family struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	read func() []Sample
}

func (f *family) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

func (f *family) Collect(ch chan<- prometheus.Metric) {
	for _, s := range f.read() {
		ch <- prometheus.MustNewConstMetric(f.desc, f.kind, s.Value, s.Labels...)
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// SessionStarted counts an admitted control connection.
func (m *Metrics) SessionStarted() { m.sessions.Inc() }

// SessionRefused counts a connection turned away: reason is "shutdown",
// "max_sessions", "max_sessions_per_ip" or "proxy_header".
func (m *Metrics) SessionRefused(reason string) { m.refused.WithLabelValues(reason).Inc() }

// Login counts a login attempt.
func (m *Metrics) Login(ok bool) {
	if ok {
		m.logins.WithLabelValues("ok").Inc()
	} else {
		m.logins.WithLabelValues("failed").Inc()
	}
}

// Transfer counts a finished transfer: command is the FTP verb, result
// "ok", "failed" or "aborted".
func (m *Metrics) Transfer(command, result string, bytes int64, d time.Duration) {
	m.transfers.WithLabelValues(command, result).Inc()
	dir := "out"
	if command == "STOR" || command == "APPE" || command == "STOU" {
		dir = "in"
	}
	m.bytes.WithLabelValues(dir).Add(float64(bytes))
	m.duration.WithLabelValues(dir).Observe(d.Seconds())
}

// PrivatePASVAddress counts a PASV reply that carried a private address to
// a public client.
func (m *Metrics) PrivatePASVAddress() { m.privatePASV.Inc() }

// PassivePortsExhausted counts a 425 for want of a passive port.
func (m *Metrics) PassivePortsExhausted() { m.portsBusy.Inc() }

// TLSHandshakeFailed counts a failed handshake on a control or data
// connection.
func (m *Metrics) TLSHandshakeFailed(data bool) {
	if data {
		m.tlsHandshakes.WithLabelValues("data").Inc()
	} else {
		m.tlsHandshakes.WithLabelValues("control").Inc()
	}
}
