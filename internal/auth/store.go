package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
)

// This file holds the pieces a user store other than the users file
// (internal/pgusers) needs to behave exactly like FileAuthenticator: the
// entry validation and conversion, the anonymous login, and the password
// verification with its cache, slots and dummy hash.

// ErrUnavailable is returned by an Authenticator whose user store cannot
// be reached (a database that is down): the credentials were not checked
// at all. The protocol layer answers 421, not the 530 of a wrong
// password, and the client may try again later.
var ErrUnavailable = errors.New("auth: user store unavailable")

// Validate checks e as LoadUsersFile checks each [[user]] table. Errors
// name the key, e.g. `permissions: "fly" is not a permission`.
func (e *UserEntry) Validate() error { return validateEntry(e) }

// EntryUser validates e and returns the User it describes, as
// FileAuthenticator builds it: the home cleaned (the name when unset),
// permissions and limits parsed.
func EntryUser(e *UserEntry) (User, error) {
	if err := validateEntry(e); err != nil {
		return User{}, err
	}
	perms, _ := ParsePermissions(e.Permissions)
	limits, _ := e.LimitsEntry.Parse()
	return User{Name: e.Name, Home: cleanHome(e.Name, e.Home), Perms: perms, TLS: e.TLS, TLSData: e.TLSData, BinaryOnly: e.BinaryOnly, Limits: limits}, nil
}

// AnonymousUser is the read-only anonymous login for name ("anonymous"
// or "ftp", any case) jailed in home ("" means "pub"), or nil when name
// is not an anonymous name.
func AnonymousUser(name, home string) *User {
	if !isAnonymousName(name) {
		return nil
	}
	if home == "" {
		home = "pub"
	}
	return &User{Name: strings.ToLower(name), Home: cleanHome("", home), Perms: PermList | PermDownload, Anonymous: true}
}

// Verifier checks passwords against stored hashes the way
// FileAuthenticator does: successful verifications are cached (keyed by
// name, password and hash, so a changed hash never hits), argon2id runs
// in a bounded number of slots, and an unknown user costs the same work
// as a wrong password. It is safe for concurrent use.
type Verifier struct {
	log    *slog.Logger
	cache  *verifyCache
	slots  chan struct{}
	slow   atomic.Int64
	verify VerifyFunc
}

// VerifyFunc reports whether password matches a stored hash, as
// VerifyPassword does: an error for a hash it cannot read, distinct from
// a mismatch.
type VerifyFunc func(hash, password string) (bool, error)

// NewVerifier returns a Verifier of VerifyPassword's hashes (argon2id,
// bcrypt) logging broken hashes to log (nil discards).
func NewVerifier(log *slog.Logger) *Verifier { return NewVerifierFunc(log, VerifyPassword) }

// NewVerifierFunc is NewVerifier for a store whose hashes verify is
// written for (the system accounts' crypt(3) hashes, internal/sysusers):
// the same cache and slots around another hash function.
func NewVerifierFunc(log *slog.Logger, verify VerifyFunc) *Verifier {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{
		log:    log,
		cache:  newVerifyCache(defaultCacheTTL, defaultCacheSize),
		slots:  make(chan struct{}, runtime.NumCPU()),
		verify: verify,
	}
}

// Check verifies password for name against hash: nil when it matches,
// ErrBadCredentials when it does not, another error when the hash is
// broken or ctx ends while waiting for a slot.
func (v *Verifier) Check(ctx context.Context, name, hash, password string) error {
	key := v.cache.sum(name, password, hash)
	if v.cache.hit(key) {
		return nil
	}
	if err := v.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-v.slots }()
	if v.cache.hit(key) {
		return nil
	}
	v.slow.Add(1)
	ok, err := v.verify(hash, password)
	if err != nil {
		v.log.Error("auth: cannot verify password", "user", name, "err", err)
		return fmt.Errorf("auth: user %q: %w", name, err)
	}
	if !ok {
		return ErrBadCredentials
	}
	v.cache.add(key)
	return nil
}

// Unknown spends on password the work of a real verification and returns
// ErrUnknownUser (or ctx's error), so that unknown names cannot be told
// from wrong passwords by timing.
func (v *Verifier) Unknown(ctx context.Context, password string) error {
	return v.Spend(ctx, dummyHash, password, ErrUnknownUser)
}

// Spend verifies password against dummy, a hash of the kind and cost the
// store's real users have, and returns refusal (or ctx's error): the
// failure of a login refused without checking its password (an unknown
// name, a locked account) then costs what a wrong password costs.
func (v *Verifier) Spend(ctx context.Context, dummy, password string, refusal error) error {
	if err := v.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-v.slots }()
	v.slow.Add(1)
	if _, err := v.verify(dummy, password); err != nil {
		return err
	}
	return refusal
}

// SlowVerifies counts the real (uncached) verifications so far, for
// tests.
func (v *Verifier) SlowVerifies() int64 { return v.slow.Load() }

func (v *Verifier) acquire(ctx context.Context) error {
	select {
	case v.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: waiting to verify password: %w", ctx.Err())
	}
}
