// Package auth decides who may log in to cloudftpd and what they may do.
//
// It offers:
//   - Authenticator, the one interface the protocol layer calls for USER/PASS,
//     and FileAuthenticator, its implementation backed by a users file, with
//     optional anonymous (read-only) logins and Reload for SIGHUP;
//   - User and Permissions: the home a user is jailed in and the rights
//     (list, download, upload, overwrite, delete, rename, mkdir, chmod) the
//     protocol layer checks per command, with ParsePermissions for the names
//     and presets ("all", "read", "dropbox") used in files and on the CLI;
//   - HashPassword and VerifyPassword: argon2id PHC strings, plus bcrypt
//     hashes accepted for verification so existing hashes can be reused;
//   - UsersFile: load, validate, edit and atomically save the TOML users
//     file, for the server and the `cloudftpd user` command.
//
// Failed logins are not delayed here: the protocol layer owns the failure
// delay and the per-session failure limit. This package only makes sure a
// failure takes as long for an unknown user as for a wrong password.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
)

// User is an authenticated user.
type User struct {
	Name string
	// Home is slash-separated, relative to the storage root; "" means the
	// user's name. FileAuthenticator always fills it in.
	Home      string
	Perms     Permissions
	Anonymous bool
	// TLS and TLSData override the listener's FTPS policy for the control
	// and data connections: "required", "optional", or "" for the
	// listener's own.
	TLS, TLSData string
	// BinaryOnly transfers this user's files unchanged even in TYPE A.
	BinaryOnly bool
	// Limits bound what the user may do beyond Perms (limits.go).
	Limits Limits
}

// ErrBadCredentials is returned for an unknown user or a wrong password;
// the two are deliberately indistinguishable.
var ErrBadCredentials = errors.New("auth: bad user name or password")

// ErrUnknownUser is the ErrBadCredentials of a name that has no account.
// It matches ErrBadCredentials with errors.Is, and the client sees the
// same 530; only the server's defence tells them apart (guessing names
// scores higher than mistyping a password).
var ErrUnknownUser = fmt.Errorf("%w (unknown user)", ErrBadCredentials)

// Authenticator checks credentials. Implementations must be safe for
// concurrent use. Authenticate returns ErrBadCredentials when the name or
// password is wrong; any other error is internal (a cancelled context, a
// broken stored hash), must not be shown to the client in detail, and still
// means the login failed.
type Authenticator interface {
	Authenticate(ctx context.Context, name, password string) (*User, error)
}

// Lister is a user store that can list its users with their limits, for
// work done outside any session (the retention sweep). A store that
// cannot list (a remote directory that only answers logins) does not
// implement it, and that work then has no users to do it for.
// Implementations must be safe for concurrent use; the users returned are
// the caller's, but the slices in their Limits are shared and must not be
// changed.
type Lister interface {
	ListUsers(ctx context.Context) ([]User, error)
}

// Options configures a FileAuthenticator.
type Options struct {
	// Anonymous lets "anonymous" and "ftp" log in with any password as a
	// read-only user. A users-file entry with one of these names wins over
	// the anonymous login.
	Anonymous bool
	// AnonymousHome is the anonymous users' home relative to the storage
	// root; "" means "pub", as in the config defaults.
	AnonymousHome string
	// Logger receives internal problems (never passwords); nil discards.
	Logger *slog.Logger
}

// dummyHash is verified for unknown user names so that a failed login costs
// the same argon2id work whether or not the user exists; otherwise valid
// names could be probed by timing. Its parameters match HashPassword's.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$x4CZO92kSgpUYiekHOVLOw$8nHlh1v7vmajNqQ14t6mEaA1QcCpvj8SVep+2aAtg7s"

// userRecord is what the authenticator keeps per user: a private copy, so
// editing the UsersFile afterwards changes nothing until Reload.
type userRecord struct {
	hash string
	user User
}

// FileAuthenticator authenticates against a users file. It is safe for
// concurrent use, including Authenticate concurrent with Reload.
type FileAuthenticator struct {
	users atomic.Pointer[map[string]userRecord]
	opts  Options
	log   *slog.Logger
	cache *verifyCache
	// slots bounds concurrent argon2id verifications: each takes ~19 MiB and
	// a core, so a login flood queues here instead of exhausting memory.
	slots chan struct{}
	// slowVerifies counts real (uncached) hash verifications, for tests.
	slowVerifies atomic.Int64
}

var (
	_ Authenticator = (*FileAuthenticator)(nil)
	_ Lister        = (*FileAuthenticator)(nil)
)

// NewFileAuthenticator returns an authenticator for the users in f (nil
// means none, e.g. anonymous-only).
func NewFileAuthenticator(f *UsersFile, opts Options) *FileAuthenticator {
	if opts.AnonymousHome == "" {
		opts.AnonymousHome = "pub"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &FileAuthenticator{
		opts:  opts,
		log:   log,
		cache: newVerifyCache(defaultCacheTTL, defaultCacheSize),
		slots: make(chan struct{}, runtime.NumCPU()),
	}
	a.Reload(f)
	return a
}

// Reload replaces the set of users atomically. Logins in progress finish
// against the set they started with. Cached verifications of users whose
// hash did not change stay valid; the others can no longer hit.
func (a *FileAuthenticator) Reload(f *UsersFile) {
	m := make(map[string]userRecord)
	if f != nil {
		for _, e := range f.entries {
			// Entries were validated when loaded or added, so parsing
			// cannot fail here.
			perms, _ := ParsePermissions(e.Permissions)
			limits, _ := e.LimitsEntry.Parse()
			m[e.Name] = userRecord{
				hash: e.PasswordHash,
				user: User{Name: e.Name, Home: cleanHome(e.Name, e.Home), Perms: perms, TLS: e.TLS, TLSData: e.TLSData, BinaryOnly: e.BinaryOnly, Limits: limits},
			}
		}
	}
	a.users.Store(&m)
}

// Authenticate implements Authenticator. It never sleeps on failure and
// never logs passwords.
func (a *FileAuthenticator) Authenticate(ctx context.Context, name, password string) (*User, error) {
	users := *a.users.Load()
	rec, ok := users[name]
	if !ok {
		if a.opts.Anonymous && isAnonymousName(name) {
			return &User{
				Name:      strings.ToLower(name),
				Home:      cleanHome("", a.opts.AnonymousHome),
				Perms:     PermList | PermDownload,
				Anonymous: true,
			}, nil
		}
		if _, err := a.verify(ctx, dummyHash, password); err != nil {
			return nil, err
		}
		return nil, ErrUnknownUser
	}

	key := a.cache.sum(name, password, rec.hash)
	if a.cache.hit(key) {
		return ptr(rec.user), nil
	}
	if err := a.acquire(ctx); err != nil {
		return nil, err
	}
	defer a.release()
	// While we queued, a concurrent login with the same credentials may
	// have done the work.
	if a.cache.hit(key) {
		return ptr(rec.user), nil
	}
	a.slowVerifies.Add(1)
	ok, err := VerifyPassword(rec.hash, password)
	if err != nil {
		a.log.Error("auth: cannot verify password", "user", name, "err", err)
		return nil, fmt.Errorf("auth: user %q: %w", name, err)
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	a.cache.add(key)
	return ptr(rec.user), nil
}

// ListUsers implements Lister: the users of the file (not the anonymous
// login, which has no limits), sorted by name, as they are since the last
// Reload.
func (a *FileAuthenticator) ListUsers(ctx context.Context) ([]User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	users := *a.users.Load()
	out := make([]User, 0, len(users))
	for _, rec := range users {
		out = append(out, rec.user)
	}
	slices.SortFunc(out, func(x, y User) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// ControlTLSPolicy returns the users-file tls override of name ("required",
// "optional" or ""), so the server can decide at USER, before a password
// is sent in clear, whether the control connection must be protected.
func (a *FileAuthenticator) ControlTLSPolicy(name string) string {
	rec, ok := (*a.users.Load())[name]
	if !ok {
		return ""
	}
	return rec.user.TLS
}

// verify runs VerifyPassword in a semaphore slot.
func (a *FileAuthenticator) verify(ctx context.Context, hash, password string) (bool, error) {
	if err := a.acquire(ctx); err != nil {
		return false, err
	}
	defer a.release()
	a.slowVerifies.Add(1)
	return VerifyPassword(hash, password)
}

func (a *FileAuthenticator) acquire(ctx context.Context) error {
	select {
	case a.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: waiting to verify password: %w", ctx.Err())
	}
}

func (a *FileAuthenticator) release() { <-a.slots }

// isAnonymousName matches the two conventional anonymous user names; FTP
// clients differ in capitalisation.
func isAnonymousName(name string) bool {
	return strings.EqualFold(name, "anonymous") || strings.EqualFold(name, "ftp")
}

// ptr returns a pointer to a copy, so callers cannot modify the shared record.
func ptr(u User) *User { return &u }
