package api

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// Console sessions: an admin logs in with a name and password
// (POST /v1/login) and gets a session cookie, HttpOnly and
// SameSite=Strict, and a CSRF token the console sends back in
// X-CSRF-Token with every request that changes something. SameSite=Strict
// alone stops other sites' forms in current browsers; the token is the
// second lock for the ones that do not honour it.

// SessionCookie is the console's session cookie.
const SessionCookie = "cloudftpd_session"

// CSRFHeader carries a console session's CSRF token.
const CSRFHeader = "X-CSRF-Token"

// Defaults of the session store.
const (
	// DefaultSessionIdle ends a console session nobody used for that long.
	DefaultSessionIdle = 30 * time.Minute
	// sessionMaxAge ends a session however busy: a stolen cookie does not
	// live for ever.
	sessionMaxAge = 12 * time.Hour
	// maxConsoleSessions bounds the store; the oldest session goes first.
	maxConsoleSessions = 1000
)

// consoleSession is one logged-in admin.
type consoleSession struct {
	name string
	// hash is the admin's password hash at login: a password changed
	// since (cloudftpd admin passwd) ends the session.
	hash     string
	csrf     string
	created  time.Time
	lastSeen time.Time
}

// sessionStore keeps console sessions in memory: a restart logs
// everybody out, which for an admin console is a feature.
type sessionStore struct {
	idle time.Duration
	now  func() time.Time

	mu   sync.Mutex
	byID map[string]*consoleSession
}

func newSessionStore(idle time.Duration, now func() time.Time) *sessionStore {
	if idle <= 0 {
		idle = DefaultSessionIdle
	}
	return &sessionStore{idle: idle, now: now, byID: map[string]*consoleSession{}}
}

// randomToken is 32 random bytes, base64url: unguessable.
func randomToken() string {
	var raw [32]byte
	rand.Read(raw[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// create starts a session for name and returns its id and the session.
func (s *sessionStore) create(name, hash string) (string, consoleSession) {
	now := s.now()
	id := randomToken()
	cs := &consoleSession{name: name, hash: hash, csrf: randomToken(), created: now, lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	if len(s.byID) >= maxConsoleSessions {
		var oldest string
		for k, v := range s.byID {
			if oldest == "" || v.lastSeen.Before(s.byID[oldest].lastSeen) {
				oldest = k
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[id] = cs
	return id, *cs
}

// get returns the live session of id and marks it used.
func (s *sessionStore) get(id string) (consoleSession, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.byID[id]
	if !ok {
		return consoleSession{}, false
	}
	if s.expired(cs, now) {
		delete(s.byID, id)
		return consoleSession{}, false
	}
	cs.lastSeen = now
	return *cs, true
}

func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

func (s *sessionStore) expired(cs *consoleSession, now time.Time) bool {
	return now.Sub(cs.lastSeen) > s.idle || now.Sub(cs.created) > sessionMaxAge
}

// sweep drops expired sessions; s.mu is held.
func (s *sessionStore) sweep(now time.Time) {
	for id, cs := range s.byID {
		if s.expired(cs, now) {
			delete(s.byID, id)
		}
	}
}

// csrfOK compares a request's CSRF token with the session's in constant
// time.
func csrfOK(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
