package auth

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

const (
	defaultCacheTTL  = 10 * time.Minute
	defaultCacheSize = 10000
)

// verifyCache remembers recent successful password verifications so a
// client that logs in again and again (scripts, the session benchmark) pays
// for argon2id once per TTL instead of once per login.
//
// Entries are keyed by HMAC-SHA256 under a per-process random key over
// (name, 0, password, 0, stored hash):
//   - a wrong password gives a different key, so it can never hit;
//   - changing a user's hash changes the key, so a new password takes
//     effect at once and the old one stops working;
//   - nothing in memory reveals a password: the HMAC key never leaves the
//     process and is not derivable from the entries.
//
// Names and hashes never contain NUL (names reject control characters,
// hashes are base64 ASCII), so the name ends at the first NUL and the hash
// starts after the last one: the encoding is unambiguous even for a password
// that contains NUL.
//
// Entries are never extended on a hit: a cached login is re-verified the
// hard way at least once per TTL.
type verifyCache struct {
	key  [32]byte
	ttl  time.Duration
	size int
	now  func() time.Time

	mu    sync.Mutex
	byKey map[[32]byte]*list.Element
	order *list.List // of *cacheEntry, oldest first; expiries grow monotonically
}

type cacheEntry struct {
	key     [32]byte
	expires time.Time
}

func newVerifyCache(ttl time.Duration, size int) *verifyCache {
	c := &verifyCache{
		ttl:   ttl,
		size:  size,
		now:   time.Now,
		byKey: make(map[[32]byte]*list.Element),
		order: list.New(),
	}
	// crypto/rand.Read does not fail (it panics if the system cannot give
	// randomness, which is right: no cache key is better than a guessable one).
	_, _ = rand.Read(c.key[:])
	return c
}

func (c *verifyCache) sum(name, password, hash string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(password))
	m.Write([]byte{0})
	m.Write([]byte(hash))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

// hit reports whether k was stored and has not expired.
func (c *verifyCache) hit(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		return false
	}
	if !c.now().Before(el.Value.(*cacheEntry).expires) {
		c.order.Remove(el)
		delete(c.byKey, k)
		return false
	}
	return true
}

// add stores k for one TTL, first dropping expired entries and then, if
// still full, the oldest ones, so memory stays bounded under any load.
func (c *verifyCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if el, ok := c.byKey[k]; ok {
		el.Value.(*cacheEntry).expires = now.Add(c.ttl)
		c.order.MoveToBack(el)
		return
	}
	for front := c.order.Front(); front != nil; front = c.order.Front() {
		e := front.Value.(*cacheEntry)
		if now.Before(e.expires) && c.order.Len() < c.size {
			break
		}
		c.order.Remove(front)
		delete(c.byKey, e.key)
	}
	if c.size <= 0 {
		return
	}
	c.byKey[k] = c.order.PushBack(&cacheEntry{key: k, expires: now.Add(c.ttl)})
}

func (c *verifyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
