package ftp

import (
	"crypto/tls"
	"net"
	"net/netip"

	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Offence is something a client did that a defence may count against its
// address. The engine only reports; what an offence costs, and whether an
// address is refused, is the server's policy.
type Offence string

// Offences the engine reports.
const (
	OffenceLoginFailed  Offence = "login_failed"         // wrong password for a known user
	OffenceUnknownUser  Offence = "unknown_user"         // a name with no account
	OffenceBeforeLogin  Offence = "command_before_login" // a command refused with 530 before login
	OffenceTLSHandshake Offence = "tls_handshake_failed" // on the control connection
	OffenceNoCommand    Offence = "no_command"           // connected and never sent a command
)

// Guard hears about offences. Offend is called on session goroutines
// and must be cheap and safe for concurrent use.
type Guard interface {
	Offend(client netip.Addr, o Offence)
}

func (s *Session) offend(o Offence) {
	if s.cfg.Guard != nil {
		s.cfg.Guard.Offend(s.client, o)
	}
}

// record fills in what every event of this session carries and hands the
// event to the configured recorder. The operation it reports has already
// happened: a failure to record is logged and changes nothing else.
func (s *Session) record(e events.Event) {
	if s.cfg.Events == nil {
		return
	}
	e.Session = s.id
	if e.User == "" {
		e.User = s.userLabel()
	}
	e.Client = s.client.String()
	e.Anonymous = s.user != nil && s.user.Anonymous
	e.Listener = s.cfg.Listener
	e.ControlTLS = tlsOf(s.controlConn())
	e.Storage = s.cfg.StorageName
	if e.Path != "" && e.Object == "" && s.fs != nil {
		if l, ok := s.fs.(storage.Locator); ok {
			e.Object = l.Locate(e.Path)
		}
	}
	if err := s.cfg.Events.Record(e); err != nil {
		s.log.Error("event not recorded", "type", e.Type, "path", e.Path, "err", err)
	}
}

// tlsOf describes c's TLS, or nothing for a clear connection.
func tlsOf(c net.Conn) events.TLS {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return events.TLS{}
	}
	cs := tc.ConnectionState()
	return events.TLS{Version: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite)}
}
