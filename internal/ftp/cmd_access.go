package ftp

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

func (s *Session) cmdUSER(arg string) {
	if s.user != nil {
		s.reply(530, "Already logged in; use REIN to log in as another user.")
		return
	}
	if !s.secure && s.controlTLSRequired(arg) {
		s.reply(530, "TLS required: send AUTH TLS before logging in.")
		return
	}
	s.userName = arg
	if strings.EqualFold(arg, "anonymous") || strings.EqualFold(arg, "ftp") {
		s.reply(331, "Anonymous login: send your e-mail address as the password.")
		return
	}
	s.reply(331, "Password required for "+truncate(arg, 64)+".")
}

func (s *Session) cmdPASS(arg string) {
	if s.user != nil {
		s.reply(503, "Already logged in.")
		return
	}
	if s.userName == "" {
		s.reply(503, "Send USER first.")
		return
	}
	started := time.Now()
	name := s.userName
	s.userName = ""
	ctx := auth.WithLoginInfo(s.ctx, auth.LoginInfo{TLS: s.secure, Client: s.client, Listener: s.cfg.Listener})
	u, err := s.cfg.Auth.Authenticate(ctx, name, arg)
	if err != nil {
		reason, offence := "bad password", OffenceLoginFailed
		switch {
		case errors.Is(err, auth.ErrUnknownUser):
			s.loginFailures++
			reason, offence = "unknown user", OffenceUnknownUser
			s.log.Warn("login failed", "user", name, "reason", reason, "failures", s.loginFailures)
		case errors.Is(err, auth.ErrBadCredentials):
			s.loginFailures++
			s.log.Warn("login failed", "user", name, "reason", reason, "failures", s.loginFailures)
		case s.ctx.Err() != nil:
			// The session was closed while the password was checked (a
			// ban closing every session of an address, a shutdown):
			// nothing went wrong, and a ban must stay one log line.
			s.loginFailures++
			reason, offence = "session closed", ""
			s.log.Debug("login abandoned: the session was closed", "user", name, "err", err)
		default:
			s.loginUnavailable(name, err)
			return
		}
		s.failedLoginReply(name, reason, offence, started)
		return
	}
	if !s.secure && u.TLS == "required" {
		// A store that learns the user's TLS policy only with the
		// password (no ControlTLSPolicy, e.g. the HTTP identity hook)
		// could not refuse at USER. The password has been sent in clear
		// already; the session at least is not.
		s.cfg.metrics().Login(false)
		s.log.Warn("login refused", "user", u.Name, "reason", "tls = required and the control connection is clear", "password", "right")
		s.record(events.Event{Type: events.LoginFailed, User: u.Name, Result: events.ResultFailed, Reason: "TLS required", Code: 530})
		s.reply(530, "TLS required: send AUTH TLS before logging in.")
		return
	}
	if !s.admitLogin(u, started) {
		return
	}
	s.cfg.metrics().Login(true)
	home := u.Home
	if home == "" {
		home = u.Name
	}
	fs, err := s.openTree(s.ctx, u, home)
	if err != nil {
		s.log.Error("cannot open home", "user", u.Name, "home", home, "err", err)
		s.reply(421, "Home directory unavailable; closing control connection.")
		s.Close()
		return
	}
	s.mu.Lock()
	s.user, s.fs, s.cwd = u, fs, "/"
	s.mu.Unlock()
	s.log.Info("login", "user", u.Name, "anonymous", u.Anonymous)
	s.record(events.Event{Type: events.LoginOK, Result: events.ResultOK, Code: 230})
	s.reply(230, "Login successful.")
}

func (s *Session) cmdACCT(string) {
	s.reply(202, "ACCT not needed on this server.")
}

// cmdREIN resets the session to its state right after the greeting,
// keeping the control connection.
func (s *Session) cmdREIN(string) {
	s.releasePassive()
	s.mu.Lock()
	fs := s.fs
	s.user, s.fs, s.cwd, s.userName = nil, nil, "/", ""
	s.mu.Unlock()
	if fs != nil {
		fs.Close()
	}
	s.releaseSlot()
	s.binary, s.restOffset, s.renameFrom, s.epsvAll = false, 0, "", false
	s.hashAlgo = 0
	// The TLS state of the control connection stays; RFC 4217 lets REIN
	// keep it.
	s.active = netip.AddrPort{}
	s.start = time.Now() // the login timeout starts again
	s.reply(220, "Ready for a new user.")
}

// cmdQUIT ends the session; a running transfer may finish first, within
// the stall timeout.
func (s *Session) cmdQUIT(string) {
	if x := s.currentTransfer(); x != nil {
		if x.hashing {
			x.abandon() // a checksum nobody will read
		}
		select {
		case <-x.done:
		case <-time.After(s.cfg.StallTimeout):
			x.abandon()
			<-x.done
		}
	}
	s.reply(221, "Goodbye.")
	s.Close()
}
