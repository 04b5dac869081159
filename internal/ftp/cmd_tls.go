package ftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// TLSPolicy is a listener's FTPS policy (RFC 4217).
type TLSPolicy struct {
	// Config is the base server configuration; nil disables FTPS. It is
	// never modified: each session works on a clone.
	Config *tls.Config
	// Implicit listeners speak TLS from the first byte.
	Implicit bool
	// RequireControl refuses USER before AUTH TLS.
	RequireControl bool
	// RequireData refuses transfers before PROT P.
	RequireData bool
	// RequireReuse refuses protected data connections that do not resume
	// the control connection's TLS session, so a third party who guessed
	// the passive port cannot take the data connection.
	RequireReuse bool
	// AllowCCC permits CCC.
	AllowCCC bool
}

// ControlTLSPolicy is implemented by authenticators that know per-user TLS
// overrides ("required", "optional", "" for the listener's).
type ControlTLSPolicy interface {
	ControlTLSPolicy(name string) string
}

// handshakeTimeout bounds a TLS handshake on any connection.
const handshakeTimeout = 15 * time.Second

// sessionTLS returns this session's TLS configuration: a clone of the
// listener's whose session tickets carry the session's identity, so a
// data connection can only resume a ticket issued to this control
// connection (or to one of its own earlier data connections).
func (s *Session) sessionTLS() *tls.Config {
	if s.tlsConf != nil {
		return s.tlsConf
	}
	base := s.cfg.TLS.Config
	var id [16]byte
	rand.Read(id[:])
	c := base.Clone()
	c.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, id[:])
		return base.EncryptTicket(cs, ss)
	}
	c.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := base.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return nil, err
		}
		for _, e := range ss.Extra {
			if bytes.Equal(e, id[:]) {
				return ss, nil
			}
		}
		return nil, nil // someone else's ticket: full handshake
	}
	s.tlsConf = c
	return c
}

// upgradeControl runs the TLS handshake on the control connection and
// swaps the session over to it.
func (s *Session) upgradeControl() error {
	raw := s.conn
	if s.cfg.TLS.AllowCCC {
		raw = &recordBoundConn{Conn: raw}
	}
	tc := tls.Server(raw, s.sessionTLS())
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	s.swapConn(tc)
	s.secure = true
	return nil
}

// swapConn replaces the control connection (TLS upgrade, CCC).
func (s *Session) swapConn(c net.Conn) {
	s.out.swap(c)
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	s.lr.r.Reset(c)
}

func (s *Session) cmdAUTH(arg string) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "TLS", "SSL", "TLS-C", "TLS-P":
	default:
		s.reply(504, "AUTH supports TLS (and SSL, meaning TLS).")
		return
	}
	switch {
	case s.cfg.TLS.Config == nil:
		s.reply(534, "TLS is not configured on this listener.")
		return
	case s.secure:
		s.reply(503, "Already using TLS.")
		return
	case s.user != nil:
		s.reply(503, "AUTH must come before login.")
		return
	case s.lr.r.Buffered() > 0:
		// Bytes after AUTH before our 234 cannot be a TLS handshake.
		s.reply(503, "Unexpected data after AUTH.")
		return
	}
	s.reply(234, "AUTH "+strings.ToUpper(strings.TrimSpace(arg))+" ok; start the TLS handshake.")
	if err := s.upgradeControl(); err != nil {
		s.log.Warn("TLS handshake on control connection failed", "err", err)
		s.cfg.metrics().TLSHandshakeFailed(false)
		s.offend(OffenceTLSHandshake)
		s.Close()
		return
	}
	if strings.EqualFold(strings.TrimSpace(arg), "TLS-P") || strings.EqualFold(strings.TrimSpace(arg), "SSL") {
		// Legacy forms that imply protected data (draft-murray-auth-ftp-ssl).
		s.pbsz, s.protP = true, true
	}
	s.log.Debug("control connection upgraded to TLS", "version", tlsVersion(s.conn))
}

func (s *Session) cmdPBSZ(arg string) {
	if !s.secure {
		s.reply(503, "PBSZ needs a TLS control connection: send AUTH TLS first.")
		return
	}
	if _, err := strconv.ParseUint(strings.TrimSpace(arg), 10, 32); err != nil {
		s.reply(501, "PBSZ needs a number (0 for TLS).")
		return
	}
	s.pbsz = true
	s.reply(200, "PBSZ=0")
}

func (s *Session) cmdPROT(arg string) {
	if !s.pbsz {
		s.reply(503, "PROT needs PBSZ first.")
		return
	}
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "P":
		s.protP = true
		s.reply(200, "PROT now Private: data connections are protected.")
	case "C":
		if s.dataTLSRequired() {
			s.reply(534, "Data connections must be protected on this server; use PROT P.")
			return
		}
		s.protP = false
		s.reply(200, "PROT now Clear.")
	case "S", "E":
		s.reply(536, "Only PROT P and PROT C are supported.")
	default:
		s.reply(504, "Unknown protection level.")
	}
}

// cmdCCC returns the control connection to clear text after login (RFC
// 4217 section 6) so a NAT's FTP helper can read PASV replies again.
func (s *Session) cmdCCC(string) {
	tc, ok := s.conn.(*tls.Conn)
	switch {
	case !s.cfg.TLS.AllowCCC:
		s.reply(534, "CCC is not allowed on this server.")
		return
	case !ok:
		s.reply(533, "The control connection is not protected.")
		return
	}
	s.reply(200, "CCC ok: control connection back to clear text.")
	// Exchange close_notify alerts, then continue on the raw socket.
	if err := tc.CloseWrite(); err != nil {
		s.log.Warn("CCC: close_notify", "err", err)
		s.Close()
		return
	}
	tc.SetReadDeadline(time.Now().Add(handshakeTimeout))
	if _, err := io.Copy(io.Discard, s.lr.r); err != nil {
		s.log.Warn("CCC: waiting for the client's close_notify", "err", err)
		s.Close()
		return
	}
	raw := tc.NetConn().(*recordBoundConn).Conn
	raw.SetReadDeadline(time.Time{})
	s.swapConn(raw)
	s.secure = false
}

// recordBoundConn hands the TLS stack one record at a time, never reading
// past a record's end. After CCC the client's close_notify is followed by
// its next command in clear text, often in the same TCP segment; a TLS
// stack reading ahead would swallow that command into its buffer.
type recordBoundConn struct {
	net.Conn
	hdr    [5]byte // TLS record header: type, version, length
	hdrN   int     // header bytes read from the socket
	hdrOff int     // header bytes handed to the TLS stack
	body   int     // body bytes of the current record not yet read
}

func (c *recordBoundConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.hdrOff == len(c.hdr) && c.body == 0 {
		c.hdrN, c.hdrOff = 0, 0 // next record
	}
	for c.hdrN < len(c.hdr) {
		n, err := c.Conn.Read(c.hdr[c.hdrN:])
		c.hdrN += n
		if c.hdrN == len(c.hdr) {
			c.body = int(c.hdr[3])<<8 | int(c.hdr[4])
		}
		if err != nil && c.hdrN < len(c.hdr) {
			return 0, err
		}
	}
	if c.hdrOff < len(c.hdr) {
		n := copy(p, c.hdr[c.hdrOff:])
		c.hdrOff += n
		return n, nil
	}
	if len(p) > c.body {
		p = p[:c.body]
	}
	n, err := c.Conn.Read(p)
	c.body -= n
	return n, err
}

// controlTLSRequired decides, at USER, whether name may log in on a clear
// control connection.
func (s *Session) controlTLSRequired(name string) bool {
	if p, ok := s.cfg.Auth.(ControlTLSPolicy); ok {
		switch p.ControlTLSPolicy(name) {
		case "required":
			return true
		case "optional":
			return false
		}
	}
	return s.cfg.TLS.RequireControl
}

// dataTLSRequired reports whether transfers must use PROT P. A user whose
// control connection may be clear (tls = "optional") is not held to the
// listener's data rule either, unless tls_data says so: PROT P needs TLS on
// the control connection first.
func (s *Session) dataTLSRequired() bool {
	if s.user != nil {
		switch s.user.TLSData {
		case "required":
			return true
		case "optional":
			return false
		}
		if s.user.TLS == "optional" {
			return false
		}
	}
	return s.cfg.TLS.RequireData
}

// errNoResume is the data-connection TLS failure that RequireReuse causes.
var errNoResume = errors.New("data connection did not resume the control connection's TLS session")

// protectData runs the TLS handshake on a data connection (PROT P).
func (s *Session) protectData(ctx context.Context, data net.Conn) (net.Conn, error) {
	tc := tls.Server(data, s.sessionTLS())
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.cfg.metrics().TLSHandshakeFailed(true)
		return nil, fmt.Errorf("TLS handshake on data connection: %w", err)
	}
	if s.cfg.TLS.RequireReuse && !tc.ConnectionState().DidResume {
		return nil, errNoResume
	}
	return tc, nil
}

func tlsVersion(c net.Conn) string {
	if tc, ok := c.(*tls.Conn); ok {
		return tls.VersionName(tc.ConnectionState().Version)
	}
	return ""
}
