package server

import (
	"sync"

	"github.com/cloudftpd/cloudftpd/internal/ftp"
)

// userSessions counts the logged-in sessions of each user for the whole
// server: every listener, and every config generation, since a reload
// keeps it. It is the sessions' ftp.SessionCounter, for max_sessions. The
// zero value is ready to use.
type userSessions struct {
	mu sync.Mutex
	n  map[string]int
}

var _ ftp.SessionCounter = (*userSessions)(nil)

// Acquire implements ftp.SessionCounter.
func (u *userSessions) Acquire(user string, max int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if max > 0 && u.n[user] >= max {
		return false
	}
	if u.n == nil {
		u.n = make(map[string]int)
	}
	u.n[user]++
	return true
}

// Release implements ftp.SessionCounter.
func (u *userSessions) Release(user string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n[user]--; u.n[user] <= 0 {
		delete(u.n, user) // the map holds only users with sessions
	}
}

// count is the user's logged-in sessions.
func (u *userSessions) count(user string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n[user]
}
