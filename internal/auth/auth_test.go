package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func testUsers(t *testing.T, users map[string]string) *UsersFile {
	t.Helper()
	f := &UsersFile{}
	for name, pw := range users {
		home := ""
		perms := permAll
		if name == "reader" {
			home, perms = "shared/./docs/", permRead
		}
		if err := f.Add(name, cheapHash(t, pw), home, perms); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestAuthenticate(t *testing.T) {
	f := testUsers(t, map[string]string{"alice": "wonderland", "reader": "books", "ftp": "real-ftp-user"})
	if err := f.Add("legacy", bcryptHash(t, "old", "$2y$"), "", permRead); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		anonymous bool
		user, pw  string
		want      *User
		wantErr   error
	}{
		{"right password", false, "alice", "wonderland", &User{Name: "alice", Home: "alice", Perms: permAll}, nil},
		{"home cleaned", false, "reader", "books", &User{Name: "reader", Home: "shared/docs", Perms: permRead}, nil},
		{"bcrypt user", false, "legacy", "old", &User{Name: "legacy", Home: "legacy", Perms: permRead}, nil},
		{"wrong password", false, "alice", "Wonderland", nil, ErrBadCredentials},
		{"empty password", false, "alice", "", nil, ErrBadCredentials},
		{"names are case-sensitive", false, "Alice", "wonderland", nil, ErrBadCredentials},
		{"unknown user", false, "mallory", "wonderland", nil, ErrBadCredentials},
		{"anonymous off", false, "anonymous", "me@example.com", nil, ErrBadCredentials},
		{"anonymous on", true, "anonymous", "me@example.com", &User{Name: "anonymous", Home: "pub", Perms: PermList | PermDownload, Anonymous: true}, nil},
		{"anonymous any case", true, "Anonymous", "", &User{Name: "anonymous", Home: "pub", Perms: PermList | PermDownload, Anonymous: true}, nil},
		{"users file wins over anonymous", true, "ftp", "guest", nil, ErrBadCredentials},
		{"users file ftp user", true, "ftp", "real-ftp-user", &User{Name: "ftp", Home: "ftp", Perms: permAll}, nil},
		{"unknown user with anonymous on", true, "mallory", "x", nil, ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewFileAuthenticator(f, Options{Anonymous: tt.anonymous})
			got, err := a.Authenticate(context.Background(), tt.user, tt.pw)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Authenticate(%q) error = %v, want %v", tt.user, err, tt.wantErr)
			}
			if (got == nil) != (tt.want == nil) || got != nil && !reflect.DeepEqual(*got, *tt.want) {
				t.Errorf("Authenticate(%q) = %+v, want %+v", tt.user, got, tt.want)
			}
		})
	}
}

func TestAnonymousHome(t *testing.T) {
	a := NewFileAuthenticator(nil, Options{Anonymous: true, AnonymousHome: "public/ftp"})
	u, err := a.Authenticate(context.Background(), "ftp", "")
	if err != nil {
		t.Fatal(err)
	}
	if u.Home != "public/ftp" || !u.Anonymous || u.Perms != permRead {
		t.Errorf("anonymous user = %+v", u)
	}
	if n := a.slowVerifies.Load(); n != 0 {
		t.Errorf("anonymous login ran %d hash verifications", n)
	}
}

// TestUnknownUserSpendsVerification checks the timing defence by counting
// work rather than measuring time: an unknown name costs one argon2id
// verification, like a wrong password does.
func TestUnknownUserSpendsVerification(t *testing.T) {
	a := NewFileAuthenticator(testUsers(t, map[string]string{"alice": "pw"}), Options{})
	for _, name := range []string{"mallory", "alice"} {
		before := a.slowVerifies.Load()
		if _, err := a.Authenticate(context.Background(), name, "wrong"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("%s: %v", name, err)
		}
		if n := a.slowVerifies.Load() - before; n != 1 {
			t.Errorf("%s: %d verifications, want 1", name, n)
		}
	}
}

func TestVerificationCache(t *testing.T) {
	ctx := context.Background()
	f := testUsers(t, map[string]string{"alice": "pw1", "bob": "pw1"})
	a := NewFileAuthenticator(f, Options{})
	slow := func() int64 { return a.slowVerifies.Load() }
	login := func(name, pw string) error {
		_, err := a.Authenticate(ctx, name, pw)
		return err
	}

	steps := []struct {
		what     string
		name, pw string
		wantErr  error
		wantSlow int64 // total slow verifications after the step
		reload   func()
	}{
		{what: "first login verifies", name: "alice", pw: "pw1", wantSlow: 1},
		{what: "second login is cached", name: "alice", pw: "pw1", wantSlow: 1},
		{what: "third login is cached", name: "alice", pw: "pw1", wantSlow: 1},
		{what: "wrong password right after success is verified and fails", name: "alice", pw: "pw2", wantErr: ErrBadCredentials, wantSlow: 2},
		{what: "wrong password again is verified again", name: "alice", pw: "pw2", wantErr: ErrBadCredentials, wantSlow: 3},
		{what: "same password, other user is not cached", name: "bob", pw: "pw1", wantSlow: 4},
		{
			what: "new hash: old password no longer cached and rejected", name: "alice", pw: "pw1",
			wantErr: ErrBadCredentials, wantSlow: 5,
			reload: func() {
				if err := f.SetPassword("alice", cheapHash(t, "pw2")); err != nil {
					t.Fatal(err)
				}
				a.Reload(f)
			},
		},
		{what: "new password verifies", name: "alice", pw: "pw2", wantSlow: 6},
		{what: "new password is cached", name: "alice", pw: "pw2", wantSlow: 6},
		{what: "unchanged user keeps its cache across reload", name: "bob", pw: "pw1", wantSlow: 6},
		{
			what: "deleted user fails even though cached", name: "bob", pw: "pw1",
			wantErr: ErrBadCredentials, wantSlow: 7,
			reload: func() {
				if err := f.Delete("bob"); err != nil {
					t.Fatal(err)
				}
				a.Reload(f)
			},
		},
	}
	for _, s := range steps {
		if s.reload != nil {
			s.reload()
		}
		if err := login(s.name, s.pw); !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: error %v, want %v", s.what, err, s.wantErr)
		}
		if got := slow(); got != s.wantSlow {
			t.Fatalf("%s: %d slow verifications, want %d", s.what, got, s.wantSlow)
		}
	}
}

func TestVerificationCacheExpiry(t *testing.T) {
	a := NewFileAuthenticator(testUsers(t, map[string]string{"alice": "pw"}), Options{})
	now := time.Unix(1_000_000, 0)
	a.cache.now = func() time.Time { return now }
	for i, step := range []struct {
		advance  time.Duration
		wantSlow int64
	}{
		{0, 1},
		{defaultCacheTTL - time.Second, 1}, // still cached
		{time.Second, 2},                   // expired: verified again, cached anew
		{defaultCacheTTL / 2, 2},
	} {
		now = now.Add(step.advance)
		if _, err := a.Authenticate(context.Background(), "alice", "pw"); err != nil {
			t.Fatal(err)
		}
		if got := a.slowVerifies.Load(); got != step.wantSlow {
			t.Errorf("step %d: %d slow verifications, want %d", i, got, step.wantSlow)
		}
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	c := newVerifyCache(time.Minute, 3)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }
	k := func(i int) [32]byte { return c.sum(fmt.Sprint("user", i), "pw", "hash") }

	for i := range 5 {
		c.add(k(i))
		now = now.Add(time.Second)
	}
	if c.len() != 3 {
		t.Fatalf("cache holds %d entries, want 3", c.len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if got := c.hit(k(i)); got != want {
			t.Errorf("after overflow, hit(%d) = %v, want %v (oldest evicted first)", i, got, want)
		}
	}
	// Re-adding an entry refreshes it, so the next eviction takes another.
	c.add(k(2))
	c.add(k(5))
	if !c.hit(k(2)) || c.hit(k(3)) || !c.hit(k(5)) {
		t.Error("refreshed entry was evicted instead of the oldest")
	}
	// Expired entries go first and do not count against the bound.
	now = now.Add(2 * time.Minute)
	c.add(k(6))
	if c.len() != 1 || !c.hit(k(6)) {
		t.Errorf("expired entries kept: len %d", c.len())
	}
	base := c.sum("alice", "pw", "h1")
	for _, other := range [][32]byte{c.sum("alice", "pw ", "h1"), c.sum("alicf", "pw", "h1"), c.sum("alice", "pw", "h2"), c.sum("alicepw", "", "h1")} {
		if other == base {
			t.Error("distinct credentials share a cache key")
		}
	}
	if c.sum("alice", "pw", "h1") != base || newVerifyCache(time.Minute, 1).sum("alice", "pw", "h1") == base {
		t.Error("cache key must be stable within a process and differ between processes")
	}
}

func TestAuthenticateContext(t *testing.T) {
	a := NewFileAuthenticator(testUsers(t, map[string]string{"alice": "pw"}), Options{})
	// Occupy every verification slot so the next login has to wait.
	for range cap(a.slots) {
		a.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	for _, name := range []string{"alice", "mallory"} {
		_, err := a.Authenticate(ctx, name, "pw")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: error %v, want DeadlineExceeded", name, err)
		}
	}
	if n := a.slowVerifies.Load(); n != 0 {
		t.Errorf("%d verifications ran without a slot", n)
	}
}

func TestNoPasswordInLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := testUsers(t, map[string]string{"alice": "pw"})
	// Corrupt the stored hash behind the validator's back to reach the
	// internal-error path, the one place that logs.
	f.entries[0].PasswordHash = "$argon2id$broken"
	a := NewFileAuthenticator(f, Options{Logger: log})
	_, err := a.Authenticate(context.Background(), "alice", "topsecret")
	if err == nil || errors.Is(err, ErrBadCredentials) {
		t.Fatalf("broken hash: error %v, want an internal error", err)
	}
	if !strings.Contains(buf.String(), "alice") {
		t.Errorf("internal error not logged: %q", buf.String())
	}
	if strings.Contains(buf.String(), "topsecret") || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("password leaked: log %q, error %q", buf.String(), err)
	}
}

func TestAuthenticateConcurrent(t *testing.T) {
	f := testUsers(t, map[string]string{"u0": "p0", "u1": "p1", "u2": "p2", "u3": "p3"})
	a := NewFileAuthenticator(f, Options{Anonymous: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				u := fmt.Sprintf("u%d", (g+i)%4)
				switch i % 4 {
				case 0, 1:
					if got, err := a.Authenticate(ctx, u, "p"+u[1:]); err != nil || got.Name != u {
						errs <- fmt.Errorf("%s right password: %v, %v", u, got, err)
					}
				case 2:
					if _, err := a.Authenticate(ctx, u, "nope"); !errors.Is(err, ErrBadCredentials) {
						errs <- fmt.Errorf("%s wrong password: %v", u, err)
					}
				case 3:
					if got, err := a.Authenticate(ctx, "anonymous", "x"); err != nil || !got.Anonymous {
						errs <- fmt.Errorf("anonymous: %v, %v", got, err)
					}
				}
			}
		})
	}
	// Reload with the same users while logins run.
	wg.Go(func() {
		for range 20 {
			a.Reload(f)
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
