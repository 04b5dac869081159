package ftp

import (
	"fmt"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

// SessionCounter counts the logged-in sessions of each user across a whole
// server (every listener, every config generation), so that a user's
// max_sessions holds however the sessions arrive. The server owns one for
// its lifetime. Its methods are called from session goroutines and must be
// safe for concurrent use.
type SessionCounter interface {
	// Acquire takes a slot of user's: it fails, taking nothing, when the
	// user already holds max of them. max <= 0 is no bound, and the
	// slot is still counted, so that a max_sessions added by a reload
	// counts the sessions already open.
	Acquire(user string, max int) bool
	// Release gives back a slot that Acquire took.
	Release(user string)
}

// admitLogin applies the user's access limits to a login whose password
// was right: disabled, expires, allowed_networks and denied_networks, then
// max_sessions. It replies and returns false when the login is refused.
//
// A refusal by the first four is answered exactly as a wrong password is
// (530 after login_failure_delay, counted as a failed login and scored as
// login_failed), so a client outside the allowed networks, or holding a
// disabled account, learns nothing about the password: not from the
// reply, nor its timing (the delay runs from the PASS, see
// failedLoginReply), nor from when the defender bans it. The log says
// why, and that the password was right.
//
// max_sessions is only reached with the right password, so it is answered
// plainly: 421 and the connection closed, a transient refusal that a
// client may retry later, as Pure-FTPd does ("421 I can't accept more
// than N connections as the same user"). ProFTPD's MaxClientsPerUser
// sends 530 and disconnects too; 530 reads as wrong credentials to most
// clients and libraries (Python's ftplib raises error_perm, curl reports
// "login denied"), which would send a partner looking at the password
// instead of at its other open sessions.
func (s *Session) admitLogin(u *auth.User, started time.Time) bool {
	if why := u.Limits.LoginRefusal(u.Name, s.client, time.Now()); why != "" {
		s.loginFailures++
		s.log.Warn("login refused", "user", u.Name, "reason", why, "password", "right", "failures", s.loginFailures)
		s.failedLoginReply(u.Name, why, OffenceLoginFailed, started)
		return false
	}
	limit := u.Limits.MaxSessions
	if s.cfg.UserSessions == nil {
		if limit > 0 {
			s.log.Warn("max_sessions not enforced: the server counts no sessions", "user", u.Name)
		}
		return true
	}
	if !s.cfg.UserSessions.Acquire(u.Name, limit) {
		s.cfg.metrics().Login(false)
		why := fmt.Sprintf("%s already has max_sessions = %d sessions open", u.Name, limit)
		s.log.Warn("login refused", "user", u.Name, "reason", why)
		s.record(events.Event{Type: events.LoginFailed, User: u.Name, Result: events.ResultFailed, Reason: why, Code: 421})
		s.reply(421, fmt.Sprintf("Too many sessions for %s (at most %d at a time); try again later.", truncate(u.Name, 64), limit))
		s.Close()
		return false
	}
	s.slotUser = u.Name
	return true
}

// releaseSlot gives back the session's max_sessions slot, if it holds one:
// at REIN and at teardown, whatever ended the session.
func (s *Session) releaseSlot() {
	if s.slotUser != "" {
		s.cfg.UserSessions.Release(s.slotUser)
		s.slotUser = ""
	}
}

// failedLoginReply answers a failed login: it counts and records it, and
// replies 530 (or 421 after max_login_failures) once login_failure_delay
// has passed since the PASS arrived. Counting the delay from the PASS,
// not from the end of the password check, makes every failed login take
// the same time: a wrong password (a full argon2id check), an unknown user
// (a dummy one) and a refused account whose password was right (perhaps
// a cached check) all answer after the delay, as long as the check is
// shorter than the delay.
func (s *Session) failedLoginReply(name, reason string, o Offence, started time.Time) {
	s.cfg.metrics().Login(false)
	if o != "" {
		s.offend(o)
	}
	s.record(events.Event{Type: events.LoginFailed, User: name, Result: events.ResultFailed, Reason: reason, Code: 530})
	// Slow down password guessing without holding anything but this
	// session.
	if d := time.Until(started.Add(s.cfg.LoginFailureDelay)); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
	if s.cfg.MaxLoginFailures > 0 && s.loginFailures >= s.cfg.MaxLoginFailures {
		s.reply(421, "Too many failed logins; closing control connection.")
		s.Close()
		return
	}
	s.reply(530, "Login incorrect.")
}

// nameAllowed applies the user's file name rules (allowed_patterns,
// denied_patterns) to p, the path a new file or directory would get,
// replying 553 when it is refused. It runs before anything is created.
func (s *Session) nameAllowed(p string) bool {
	why := s.user.Limits.NameRefusal(p)
	if why == "" {
		return true
	}
	s.log.Info("file name refused", "user", s.user.Name, "path", p, "reason", why)
	s.reply(553, "File name not allowed here: "+why+".")
	return false
}

// loginUnavailable answers a login whose check failed inside the server:
// the user store is unreachable or slow (an HTTP identity hook that is
// down, a database that does not answer) or broken (a stored hash that
// cannot be read). That is no offence of the client: nothing is scored
// and the failure is not counted towards max_login_failures. The reply is
// 421, the one transient answer RFC 959 allows to PASS, so that clients
// report "try again later" rather than "wrong password" (a 530 would send
// a partner to check a password that is right); and as 421 says, the
// control connection is closed: a client retries by reconnecting, which
// every client does for 421, and the login starts over with USER.
func (s *Session) loginUnavailable(name string, err error) {
	s.cfg.metrics().Login(false)
	s.log.Error("login error: the user store failed", "user", name, "err", err)
	s.record(events.Event{Type: events.LoginFailed, User: name, Result: events.ResultFailed, Reason: "login service unavailable", Code: 421})
	s.reply(421, "Login service unavailable, try again later.")
	s.Close()
}
