// Package sysusers authenticates the machine's own accounts, as vsftpd's
// local users: names, uids and homes from the passwd file, crypt(3)
// hashes and account ageing from the shadow file, verified in Go (see
// crypt.go for the formats). It is auth.store = "system" (README "System
// accounts").
//
// Who may log in follows vsftpd's rules for local users: an account with
// a uid below Options.MinUID (default 1000: root and the daemons), named
// in /etc/ftpusers, refused by a userlist file, or outside the allowed
// users and groups is not an FTP account at all (ErrUnknownUser, so the
// defender scores the attempt as a guessed name). An account that is an
// FTP account but cannot log in now (locked "!"/"*" hash, no password,
// expired per the shadow fields, a hash format not verified) fails as a
// wrong password does (ErrBadCredentials). Both cost the same hash work
// as a real verification.
//
// Files are read when the Authenticator is built and by Reload (SIGHUP
// rebuilds the server's wiring, which builds a new one), never per login:
// a password changed with passwd(1) takes effect at the next reload.
package sysusers

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// Home modes: where a system user is jailed.
const (
	// HomePasswd jails a user in the passwd home directory, relative to
	// Options.HomeBase (the storage root).
	HomePasswd = "passwd"
	// HomeName jails a user in the directory named after them.
	HomeName = "name"
)

// Options configures an Authenticator.
type Options struct {
	// PasswdFile, ShadowFile and GroupFile are the account files
	// (/etc/passwd, /etc/shadow, /etc/group). GroupFile is read only
	// when Groups is set.
	PasswdFile, ShadowFile, GroupFile string
	// FTPUsersFile lists names that may never log in; "" reads none. A
	// missing file is an empty list unless FTPUsersRequired.
	FTPUsersFile     string
	FTPUsersRequired bool
	// UserlistFile, when set, is vsftpd's userlist_file: UserlistDeny
	// refuses its names, otherwise only its names may log in.
	UserlistFile string
	UserlistDeny bool
	// Users and Groups, when either is set, allow only these accounts
	// and the members of these groups.
	Users, Groups []string
	// MinUID is the lowest uid that may log in.
	MinUID int
	// Home is HomePasswd or HomeName (the default). HomeBase is the
	// absolute directory that is the storage root, for HomePasswd: a
	// passwd home outside it cannot log in.
	Home, HomeBase string
	// Perms are every system user's permissions.
	Perms auth.Permissions
	// AllowMD5Crypt accepts $1$ hashes.
	AllowMD5Crypt bool
	// Anonymous lets "anonymous" and "ftp" log in read-only in
	// AnonymousHome ("" means "pub"), as the other stores do; a system
	// account named "ftp" does not take part.
	Anonymous     bool
	AnonymousHome string
	// Logger receives the accounts that cannot log in and why (never a
	// password or hash); nil discards.
	Logger *slog.Logger
	// Now is the clock of the shadow ageing fields (time.Now).
	Now func() time.Time
}

// account is one passwd entry as the Authenticator keeps it.
type account struct {
	user auth.User
	hash string
	// notFTP, when set, says why the name is not an FTP account at all
	// (unknown to FTP); refused, why the account cannot log in now.
	notFTP, refused string
}

// userSet is what one read of the files gives.
type userSet struct {
	accounts map[string]*account
	// dummy is a hash of the most common format and cost among the
	// accounts that can log in, for logins refused without a check.
	dummy string
}

// Authenticator is an auth.Authenticator and auth.Lister over the
// system's accounts. It is safe for concurrent use, Reload included.
type Authenticator struct {
	opts Options
	log  *slog.Logger
	v    *auth.Verifier
	set  atomic.Pointer[userSet]
}

var (
	_ auth.Authenticator = (*Authenticator)(nil)
	_ auth.Lister        = (*Authenticator)(nil)
)

// fallbackDummy is the dummy hash when no account can log in: yescrypt
// at Debian's default cost (mkpasswd -m yescrypt).
const fallbackDummy = "$y$j9T$W0L2sXbsM64hrQKYjj03m/$zgubsNsbLOGnwupEct.Q69Ayu2LXoofXpTEJ/xDOo6D"

// New reads the files and returns their Authenticator. It fails when a
// file cannot be read (a server without the shadow group cannot read
// /etc/shadow: the error says so).
func New(opts Options) (*Authenticator, error) {
	if opts.Home == "" {
		opts.Home = HomeName
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{opts: opts, log: log, v: auth.NewVerifierFunc(log, verifier(opts.AllowMD5Crypt))}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload re-reads the files and swaps the accounts atomically; on error
// the accounts stay as they were. Logins in progress finish against the
// set they started with.
func (a *Authenticator) Reload() error {
	set, err := a.read()
	if err != nil {
		return err
	}
	a.set.Store(set)
	return nil
}

func (a *Authenticator) read() (*userSet, error) {
	o := &a.opts
	pw, err := readPasswd(o.PasswdFile)
	if err != nil {
		return nil, fmt.Errorf("sysusers: %w", err)
	}
	shadow, err := readShadow(o.ShadowFile)
	if err != nil {
		return nil, fmt.Errorf("sysusers: %w (reading the shadow file takes root or the shadow group: SupplementaryGroups=shadow in the systemd unit)", err)
	}
	var ftpusers, userlist map[string]bool
	if o.FTPUsersFile != "" {
		if ftpusers, err = readNames(o.FTPUsersFile, !o.FTPUsersRequired); err != nil {
			return nil, fmt.Errorf("sysusers: ftpusers_file: %w", err)
		}
	}
	if o.UserlistFile != "" {
		if userlist, err = readNames(o.UserlistFile, false); err != nil {
			return nil, fmt.Errorf("sysusers: userlist_file: %w", err)
		}
	}
	var members map[string][]string
	var gids map[string]int
	if len(o.Groups) > 0 {
		if members, gids, err = readGroups(o.GroupFile); err != nil {
			return nil, fmt.Errorf("sysusers: %w", err)
		}
	}
	allowed := a.allowList(members, gids)
	today := int(o.Now().Unix() / 86400)

	set := &userSet{accounts: make(map[string]*account, len(pw))}
	costs := map[string]int{}
	var sample = map[string]string{}
	for _, p := range pw {
		if _, dup := set.accounts[p.name]; dup {
			continue // the first entry of a name is the account, as getpwnam's
		}
		acc := &account{user: auth.User{Name: p.name, Perms: o.Perms}}
		set.accounts[p.name] = acc
		switch {
		case p.uid < o.MinUID:
			acc.notFTP = fmt.Sprintf("uid %d is below min_uid %d", p.uid, o.MinUID)
		case ftpusers[p.name]:
			acc.notFTP = "listed in " + o.FTPUsersFile
		case userlist != nil && o.UserlistDeny && userlist[p.name]:
			acc.notFTP = "refused by userlist_file " + o.UserlistFile
		case userlist != nil && !o.UserlistDeny && !userlist[p.name]:
			acc.notFTP = "not in userlist_file " + o.UserlistFile
		case allowed != nil && !allowed(p):
			acc.notFTP = "not in the allowed users or groups"
		}
		if acc.notFTP != "" {
			continue
		}
		home, why := a.home(p)
		if why != "" {
			acc.notFTP = why
			a.log.Warn("system account cannot log in", "user", p.name, "reason", why)
			continue
		}
		acc.user.Home = home
		hash, ok := p.password, true
		var sh shadowEntry
		if hash == "x" {
			sh, ok = shadow[p.name]
			hash = sh.hash
		}
		switch {
		case !ok:
			acc.refused = "no entry in " + o.ShadowFile
		case hash == "":
			// An empty field means no password; such an account must
			// not be open to the network.
			acc.refused = "no password set"
		case strings.HasPrefix(hash, "!") || strings.HasPrefix(hash, "*"):
			acc.refused = "account locked"
		default:
			if why := sh.refusal(today); p.password == "x" && why != "" {
				acc.refused = why
			} else if err := checkHash(hash, o.AllowMD5Crypt); err != nil {
				acc.refused = err.Error()
				a.log.Warn("system account cannot log in", "user", p.name, "reason", acc.refused)
			}
		}
		if acc.refused == "" {
			acc.hash = hash
			k := costKey(hash)
			costs[k]++
			if _, ok := sample[k]; !ok {
				sample[k] = hash
			}
		}
	}
	set.dummy = fallbackDummy
	if len(costs) > 0 {
		keys := slices.Sorted(maps.Keys(costs))
		best := slices.MaxFunc(keys, func(x, y string) int { return cmp.Compare(costs[x], costs[y]) })
		d, err := dummyOf(sample[best])
		if err != nil {
			return nil, fmt.Errorf("sysusers: making the dummy hash: %w", err)
		}
		set.dummy = d
	}
	return set, nil
}

// allowList is the users/groups filter, or nil when neither is set.
func (a *Authenticator) allowList(members map[string][]string, gids map[string]int) func(passwdEntry) bool {
	o := &a.opts
	if len(o.Users) == 0 && len(o.Groups) == 0 {
		return nil
	}
	names := map[string]bool{}
	for _, n := range o.Users {
		names[n] = true
	}
	primary := map[int]bool{}
	for _, g := range o.Groups {
		for _, m := range members[g] {
			names[m] = true
		}
		if gid, ok := gids[g]; ok {
			primary[gid] = true
		}
	}
	return func(p passwdEntry) bool { return names[p.name] || primary[p.gid] }
}

// home is the jail of p, or why p cannot have one.
func (a *Authenticator) home(p passwdEntry) (home, why string) {
	if a.opts.Home != HomePasswd {
		if p.name == "." || p.name == ".." || strings.ContainsAny(p.name, `/\`) {
			return "", "the name cannot be a directory name"
		}
		return p.name, ""
	}
	if !filepath.IsAbs(p.home) {
		return "", fmt.Sprintf("passwd home %q is not absolute", p.home)
	}
	rel, err := filepath.Rel(a.opts.HomeBase, filepath.Clean(p.home))
	if err != nil || !(rel == "." || filepath.IsLocal(rel)) {
		return "", fmt.Sprintf("passwd home %q is outside storage.root %q", p.home, a.opts.HomeBase)
	}
	return filepath.ToSlash(rel), ""
}

// Authenticate implements auth.Authenticator. It never logs passwords.
func (a *Authenticator) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	set := a.set.Load()
	acc, ok := set.accounts[name]
	if a.opts.Anonymous && (!ok || acc.notFTP != "") {
		if u := auth.AnonymousUser(name, a.opts.AnonymousHome); u != nil {
			return u, nil
		}
	}
	switch {
	case !ok:
		return nil, a.v.Spend(ctx, set.dummy, password, auth.ErrUnknownUser)
	case acc.notFTP != "":
		a.log.Info("login refused: not an FTP account", "user", name, "reason", acc.notFTP)
		return nil, a.v.Spend(ctx, set.dummy, password, auth.ErrUnknownUser)
	case acc.refused != "":
		a.log.Info("login refused", "user", name, "reason", acc.refused)
		return nil, a.v.Spend(ctx, set.dummy, password, auth.ErrBadCredentials)
	}
	if err := a.v.Check(ctx, name, acc.hash, password); err != nil {
		return nil, err
	}
	u := acc.user
	return &u, nil
}

// ListUsers implements auth.Lister: the accounts that may log in, sorted
// by name. They have no limits, so the retention sweep has nothing to do
// for them; it is here so the server treats every listing store alike.
func (a *Authenticator) ListUsers(ctx context.Context) ([]auth.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []auth.User
	for _, acc := range a.set.Load().accounts {
		if acc.notFTP == "" && acc.refused == "" {
			out = append(out, acc.user)
		}
	}
	slices.SortFunc(out, func(x, y auth.User) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// SlowVerifies counts the real (uncached) hash verifications, for tests.
func (a *Authenticator) SlowVerifies() int64 { return a.v.SlowVerifies() }
