package sysusers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/sysusers/sysuserstest"
)

// TestVerifyExternalHashes checks the Go verification against hashes made
// by the system's own tools: the right password matches, a wrong one, an
// empty one and one differing in case do not.
func TestVerifyExternalHashes(t *testing.T) {
	verify := verifier(true)
	for _, format := range []string{"y", "6", "5", "2b", "1"} {
		t.Run(format, func(t *testing.T) {
			const pw = "Corr3ct horse:battery"
			hash := sysuserstest.Hash(t, format, pw)
			if err := checkHash(hash, true); err != nil {
				t.Fatalf("checkHash(%q): %v", hash, err)
			}
			for _, tc := range []struct {
				pw   string
				want bool
			}{{pw, true}, {"corr3ct horse:battery", false}, {"", false}, {pw + "x", false}} {
				got, err := verify(hash, tc.pw)
				if err != nil || got != tc.want {
					t.Errorf("verify(%q, %q) = %v, %v; want %v", hash, tc.pw, got, err, tc.want)
				}
			}
			// The dummy of a hash has its format and cost, and is not
			// the password's.
			d, err := dummyOf(hash)
			if err != nil {
				t.Fatal(err)
			}
			if costKey(d) != costKey(hash) || d == hash {
				t.Errorf("dummy %q of %q: cost %q, want %q", d, hash, costKey(d), costKey(hash))
			}
			if ok, err := verify(d, pw); ok || err != nil {
				t.Errorf("dummy matched the password: %v %v", ok, err)
			}
		})
	}
}

func TestCheckHashRefuses(t *testing.T) {
	for _, h := range []string{
		"$1$D3H9cykn$zFsS2z8rV.XHMplznR8Z/1", // MD5-crypt without allow_md5crypt
		"abJnggxhB/yWI",                      // DES crypt
		"$gy$j9T$x$y",                        // gost-yescrypt
		"$6$rounds=10$salt$key",              // below the SHA-crypt minimum
		"$2b$99$xxxx",
		"$y$j9T$onlysalt",
	} {
		if err := checkHash(h, false); err == nil {
			t.Errorf("checkHash(%q) accepted it", h)
		}
	}
}

// fixture is a set of accounts covering every refusal, all with the same
// password.
type fixture struct {
	opts  Options
	files sysuserstest.Files
}

// permAll is the "all" preset.
var permAll, _ = auth.ParsePermissions([]string{"all"})

const password = "s3cret pass"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	y := sysuserstest.Hash(t, "y", password)
	six := sysuserstest.Hash(t, "6", password)
	five := sysuserstest.Hash(t, "5", password)
	today := int(time.Now().Unix() / 86400)
	files := sysuserstest.Write(t, dir, []sysuserstest.Account{
		{Name: "alice", UID: 1000, GID: 1000, Hash: y},
		{Name: "bob", UID: 1001, GID: 1001, Hash: six},
		{Name: "carol", UID: 1002, GID: 1002, Hash: five, Home: "/home/partners/carol"},
		{Name: "root", UID: 0, GID: 0, Hash: y, Home: "/root"},
		{Name: "daemon", UID: 999, GID: 999, Hash: y},
		{Name: "locked", UID: 1003, GID: 1003, Hash: "!" + y},
		{Name: "star", UID: 1004, GID: 1004, Hash: "*"},
		{Name: "nopass", UID: 1005, GID: 1005, Hash: ""},
		{Name: "expired", UID: 1006, GID: 1006, Hash: y, Shadow: ":19000:0:99999:7::" + strconv.Itoa(today-1) + ":"},
		{Name: "mustchange", UID: 1007, GID: 1007, Hash: y, Shadow: ":0:0:99999:7:::"},
		{Name: "aged", UID: 1008, GID: 1008, Hash: y, Shadow: ":" + strconv.Itoa(today-100) + ":0:90:7:::"},
		{Name: "banned", UID: 1009, GID: 1009, Hash: y},
		{Name: "outside", UID: 1010, GID: 1010, Hash: y, Home: "/srv/outside"},
		{Name: "dave", UID: 1012, GID: 1012, Hash: sysuserstest.Hash(t, "y", "dave's")},
		{Name: "md5", UID: 1011, GID: 1011, Hash: "$1$D3H9cykn$zFsS2z8rV.XHMplznR8Z/1"},
	}, []string{"ftp:2000:bob,carol"}, []string{"root", "banned"})
	return &fixture{files: files, opts: Options{
		PasswdFile: files.Passwd, ShadowFile: files.Shadow, GroupFile: files.Group,
		FTPUsersFile: files.FTPUsers, MinUID: 1000, Home: HomePasswd, HomeBase: "/home",
		Perms: permAll,
	}}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	a, err := New(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, pw string
		want     error // nil: logs in
		home     string
	}{
		{"alice", password, nil, "alice"},
		{"bob", password, nil, "bob"},
		{"carol", password, nil, "partners/carol"},
		{"alice", "wrong", auth.ErrBadCredentials, ""},
		{"bob", "", auth.ErrBadCredentials, ""},
		{"nobody", password, auth.ErrUnknownUser, ""},
		{"root", password, auth.ErrUnknownUser, ""},      // uid 0 and ftpusers
		{"daemon", password, auth.ErrUnknownUser, ""},    // uid below min_uid
		{"banned", password, auth.ErrUnknownUser, ""},    // ftpusers
		{"outside", password, auth.ErrUnknownUser, ""},   // home outside storage.root
		{"locked", password, auth.ErrBadCredentials, ""}, // "!" before the hash
		{"star", password, auth.ErrBadCredentials, ""},
		{"nopass", "", auth.ErrBadCredentials, ""},
		{"nopass", password, auth.ErrBadCredentials, ""},
		{"expired", password, auth.ErrBadCredentials, ""},
		{"mustchange", password, auth.ErrBadCredentials, ""},
		{"aged", password, auth.ErrBadCredentials, ""},
		{"md5", "secret", auth.ErrBadCredentials, ""}, // refused without allow_md5crypt
	} {
		u, err := a.Authenticate(ctx, tc.name, tc.pw)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if u.Name != tc.name || u.Home != tc.home || u.Perms != permAll {
				t.Errorf("%s: user %+v, want home %q", tc.name, u, tc.home)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == auth.ErrBadCredentials && errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("%s: unknown user, want a known account refused", tc.name)
		}
	}
	// Refused logins cost a real verification each (the dummy hash).
	before := a.SlowVerifies()
	a.Authenticate(ctx, "nobody", "x")
	a.Authenticate(ctx, "locked", "x")
	if n := a.SlowVerifies() - before; n != 2 {
		t.Errorf("%d verifications for two refused logins, want 2", n)
	}
	// The dummy is yescrypt at alice's and dave's cost: most accounts use it.
	if got, want := costKey(a.set.Load().dummy), costKey(sysuserstest.Hash(t, "y", "x")); got != want {
		t.Errorf("dummy cost %q, want %q", got, want)
	}

	users, err := a.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if got := strings.Join(names, ","); got != "alice,bob,carol,dave" {
		t.Errorf("ListUsers = %s, want alice,bob,carol,dave", got)
	}
}

func TestAllowLists(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	ulist := filepath.Join(t.TempDir(), "user_list")
	if err := os.WriteFile(ulist, []byte("alice\n# comment\n  carol  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		edit    func(*Options)
		allowed string
	}{
		{"userlist allows", func(o *Options) { o.UserlistFile = ulist }, "alice,carol"},
		{"userlist denies", func(o *Options) { o.UserlistFile, o.UserlistDeny = ulist, true }, "bob"},
		{"users", func(o *Options) { o.Users = []string{"bob"} }, "bob"},
		{"groups", func(o *Options) { o.Groups = []string{"ftp"} }, "bob,carol"},
		{"primary group", func(o *Options) { o.Groups = []string{"alice"} }, "alice"},
		{"no ftpusers", func(o *Options) { o.FTPUsersFile, o.MinUID = "", 0; o.HomeBase = "/" }, "alice,banned,bob,carol,daemon,outside,root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := f.opts
			tc.edit(&o)
			if tc.name == "primary group" {
				// alice's primary gid 1000 is group "alice".
				if err := os.WriteFile(o.GroupFile, []byte("alice:x:1000:\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			a, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range []string{"alice", "bob", "carol", "banned", "outside", "root", "daemon"} {
				_, err := a.Authenticate(ctx, n, password)
				switch {
				case err == nil:
					got = append(got, n)
				case !errors.Is(err, auth.ErrUnknownUser):
					t.Errorf("%s: %v, want logged in or unknown", n, err)
				}
			}
			if s := strings.Join(slices.Sorted(slices.Values(got)), ","); s != tc.allowed {
				t.Errorf("allowed %s, want %s", s, tc.allowed)
			}
		})
	}
}

func TestReload(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a, err := New(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "alice", password); err != nil {
		t.Fatal(err)
	}
	// passwd(1) changes alice's hash: the old password works until the
	// reload, the new one after it.
	newHash := sysuserstest.Hash(t, "6", "new pass")
	data, _ := os.ReadFile(f.files.Shadow)
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "alice:") {
			lines[i] = "alice:" + newHash + ":19000:0:99999:7:::"
		}
	}
	if err := os.WriteFile(f.files.Shadow, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "alice", password); err != nil {
		t.Fatalf("before reload: %v", err)
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "alice", password); !errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("old password after reload: %v", err)
	}
	if _, err := a.Authenticate(ctx, "alice", "new pass"); err != nil {
		t.Errorf("new password after reload: %v", err)
	}
	// A shadow file that cannot be read fails the reload, which keeps
	// the accounts, and says what is needed.
	os.Remove(f.files.Shadow)
	if err := a.Reload(); err == nil || !strings.Contains(err.Error(), "shadow group") {
		t.Errorf("reload without a shadow file: %v", err)
	}
	if _, err := a.Authenticate(ctx, "alice", "new pass"); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}
	if _, err := New(f.opts); err == nil {
		t.Error("New without a shadow file succeeded")
	}
}

func TestHomeName(t *testing.T) {
	f := newFixture(t)
	o := f.opts
	o.Home = HomeName
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	// outside's passwd home does not matter with home = "name".
	u, err := a.Authenticate(context.Background(), "outside", password)
	if err != nil || u.Home != "outside" {
		t.Fatalf("outside: %+v %v", u, err)
	}
}

func TestAnonymousBesideSystem(t *testing.T) {
	f := newFixture(t)
	o := f.opts
	o.Anonymous = true
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.Authenticate(context.Background(), "anonymous", "me@example.com")
	if err != nil || !u.Anonymous || u.Home != "pub" || u.Perms != auth.PermList|auth.PermDownload {
		t.Fatalf("anonymous: %+v %v", u, err)
	}
}

func TestShadowAgeing(t *testing.T) {
	for _, tc := range []struct {
		e    shadowEntry
		want bool // refused
	}{
		{shadowEntry{lastChange: -1, max: -1, inact: -1, expire: -1}, false},
		{shadowEntry{lastChange: 100, max: 99999, inact: -1, expire: -1}, false},
		{shadowEntry{lastChange: 100, max: -1, inact: -1, expire: 200}, true},  // expired on day 200
		{shadowEntry{lastChange: 100, max: -1, inact: -1, expire: 201}, false}, // still valid on day 200
		{shadowEntry{lastChange: 0, max: -1, inact: -1, expire: -1}, true},
		{shadowEntry{lastChange: 100, max: 100, inact: -1, expire: -1}, false}, // 100 days: not older
		{shadowEntry{lastChange: 99, max: 100, inact: -1, expire: -1}, true},
		{shadowEntry{lastChange: 50, max: 100, inact: 10, expire: -1}, true},
	} {
		if got := tc.e.refusal(200) != ""; got != tc.want {
			t.Errorf("%+v on day 200: refused %v (%q), want %v", tc.e, got, tc.e.refusal(200), tc.want)
		}
	}
}
