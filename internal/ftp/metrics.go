package ftp

import "time"

// Metrics receives counts of what sessions do, for monitoring (the server
// passes internal/metrics). Its methods are called from every session's
// goroutines and must be cheap and safe for concurrent use.
type Metrics interface {
	Login(ok bool)
	// Transfer is a finished data transfer: command is the verb (RETR,
	// STOR, APPE, LIST, NLST, MLSD), result "ok", "failed" or "aborted".
	Transfer(command, result string, bytes int64, d time.Duration)
	// PrivatePASVAddress is a PASV reply carrying a private or loopback
	// address to a client on a public one.
	PrivatePASVAddress()
	// PassivePortsExhausted is a 425 for want of a passive port.
	PassivePortsExhausted()
	TLSHandshakeFailed(data bool)
}

// noMetrics counts nothing: Config.Metrics left nil.
type noMetrics struct{}

func (noMetrics) Login(bool)                                    {}
func (noMetrics) Transfer(string, string, int64, time.Duration) {}
func (noMetrics) PrivatePASVAddress()                           {}
func (noMetrics) PassivePortsExhausted()                        {}
func (noMetrics) TLSHandshakeFailed(bool)                       {}

func (c *Config) metrics() Metrics {
	if c.Metrics == nil {
		return noMetrics{}
	}
	return c.Metrics
}
