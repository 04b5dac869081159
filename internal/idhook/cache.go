package idhook

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

const defaultCacheSize = 10000

// answerCache remembers accepted logins for a TTL, so that a script
// logging in again and again is not one hook call per login.
//
// An entry is keyed by HMAC-SHA256, under a per-process random key, over
// the whole request the hook saw (user name, password, protocol, client
// address, listener; each field ends with a NUL, which none of them but
// the password can contain, and the password comes last): an answer is
// only ever reused for the request it answered, since the hook may decide
// by any of them. Nothing in memory reveals a password (the same scheme as
// the users file's verification cache in internal/auth).
//
// Refusals are not cached. Guessing sends a different password each time,
// which could never hit; the defender and login_failure_delay already
// bound how fast one client can make the hook work. Caching a refusal
// would only keep a user locked out after the hook's side was fixed.
//
// Entries are not extended on a hit: a cached login goes back to the hook
// at least once per TTL, so a disabled account stops working within it.
type answerCache struct {
	key  [32]byte
	ttl  time.Duration
	size int
	now  func() time.Time

	mu    sync.Mutex
	byKey map[[32]byte]*list.Element
	order *list.List // of *answerEntry, oldest first
}

type answerEntry struct {
	key     [32]byte
	expires time.Time
	user    auth.User
}

func newAnswerCache(ttl time.Duration, size int) *answerCache {
	c := &answerCache{ttl: ttl, size: size, now: time.Now, byKey: make(map[[32]byte]*list.Element), order: list.New()}
	// crypto/rand.Read does not fail (it panics when the system has no
	// randomness, which is right: no cache beats a guessable key).
	_, _ = rand.Read(c.key[:])
	return c
}

func (c *answerCache) sum(r Request) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	for _, f := range []string{r.Username, r.Protocol, r.SourceIP, r.Listener, r.ServerID, r.Password} {
		m.Write([]byte(f))
		m.Write([]byte{0})
	}
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// get returns a copy of the user stored under k, if it has not expired.
func (c *answerCache) get(k [32]byte) (*auth.User, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*answerEntry)
	if !c.now().Before(e.expires) {
		c.order.Remove(el)
		delete(c.byKey, k)
		return nil, false
	}
	u := e.user
	return &u, true
}

// add stores u under k for one TTL, dropping expired entries and then the
// oldest ones so memory stays bounded.
func (c *answerCache) add(k [32]byte, u auth.User) {
	if c.ttl <= 0 || c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if el, ok := c.byKey[k]; ok {
		c.order.Remove(el)
		delete(c.byKey, k)
	}
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		e := front.Value.(*answerEntry)
		if now.Before(e.expires) && c.order.Len() < c.size {
			break
		}
		c.order.Remove(front)
		delete(c.byKey, e.key)
	}
	c.byKey[k] = c.order.PushBack(&answerEntry{key: k, expires: now.Add(c.ttl), user: u})
}

func (c *answerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
