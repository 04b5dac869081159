package console_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/doctor"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// The FTP user the browser adds, and the download it is watched doing:
// fileSize at ftpRate lasts about 20 s, long enough to see it move and
// end it before it finishes.
const (
	ftpUser     = "carol"
	ftpPassword = "carol-secret-1"
	ftpRate     = "100KiB"
	fileSize    = 2 << 20
	bobPassword = "bob-new-secret-2"
)

// TestBrowser drives the console in Debian's chromium (headless, through
// playwright-core: web/e2e/console.mjs) against a real server: it logs
// in with an admin account, adds an FTP user with a download rate
// through the users page, watches that user's real FTP download
// (jlaffaye) appear on the dashboard and its bytes grow, ends the
// session from the sessions page and sees it gone, while this side
// checks that the FTP client's connection was closed under it. It also
// finds the changes in the audit page and bans and lifts an address.
//
// Screenshots go to $CONSOLE_SCREENSHOTS when set (the README's come
// from CONSOLE_SCREENSHOTS=$PWD/docs), else to a scratch directory.
func TestBrowser(t *testing.T) {
	node := clienttest.Need(t, "node")
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		clienttest.Unavailable(t, "no chromium at %s (apt-get install chromium, or set CHROMIUM)", chromium)
	}
	if _, err := os.Stat("web/node_modules/playwright-core/package.json"); err != nil {
		clienttest.Unavailable(t, "playwright-core is not installed: run npm ci in internal/console/web")
	}
	shots := os.Getenv("CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	// The script runs elsewhere: a relative directory is the caller's.
	shots, err := filepath.Abs(shots)
	if err != nil {
		t.Fatal(err)
	}

	// Read, not only run: go test's cache then knows the script, and a
	// change to it runs the test again.
	const script = "web/e2e/console.mjs"
	if _, err := os.ReadFile(script); err != nil {
		t.Fatal(err)
	}

	base, ftpAddr, usersFile, passive := startServer(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+base, "CONSOLE_ADMIN=ops", "CONSOLE_PASSWORD=ops-password-1",
		"CONSOLE_FTP_USER="+ftpUser, "CONSOLE_FTP_PASSWORD="+ftpPassword, "CONSOLE_FTP_RATE="+ftpRate, "CONSOLE_BOB_PASSWORD="+bobPassword, "CONSOLE_PASSIVE_PORTS="+passive,
		"CONSOLE_SCREENSHOTS="+shots, "CHROMIUM="+chromium)
	cmd.Stderr = logWriter{t, "browser: "}
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	words := make(chan string)
	go func() {
		defer close(words)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			words <- strings.TrimSpace(sc.Text())
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case w, ok := <-words:
			if !ok {
				t.Fatalf("the browser script stopped before %q: %v", want, cmd.Wait())
			}
			if w != want {
				t.Fatalf("the browser script said %q, want %q", w, want)
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %q from the browser script: %v", want, ctx.Err())
		}
	}

	expect("user-added")
	dl := startDownload(t, ftpAddr)
	fmt.Fprintln(stdin, "ftp-started")

	expect("session-ended")
	select {
	case r := <-dl:
		t.Logf("FTP client: %d of %d bytes, copy error %v, close error %v, NOOP error %v", r.n, fileSize, r.copyErr, r.closeErr, r.noopErr)
		if r.n >= fileSize {
			t.Errorf("the download finished (%d bytes) although its session was ended", r.n)
		}
		if r.noopErr == nil {
			t.Error("the FTP control connection still answers NOOP after its session was ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the FTP client's download goes on after its session was ended from the console")
	}

	// bob's changes are in the users file and in force: the new
	// password logs in, the old one no longer does.
	expect("bob-changed")
	bob := findUser(t, usersFile, "bob")
	if bob.UploadRate != 2<<20 || bob.Disabled {
		t.Errorf("bob in the users file after the console's edit: upload_rate %d, disabled %v; want 2MiB, false", bob.UploadRate, bob.Disabled)
	}
	if err := ftpLogin(ftpAddr, "bob", bobPassword); err != nil {
		t.Errorf("bob's new password set in the console: %v", err)
	}
	if err := ftpLogin(ftpAddr, "bob", "bob-secret-1"); err == nil {
		t.Error("bob's old password still logs in after the console reset it")
	}
	fmt.Fprintln(stdin, "bob-checked")

	expect("done")
	if err := ftpLogin(ftpAddr, ftpUser, ftpPassword); err == nil {
		t.Errorf("%s still logs in after the console deleted the user", ftpUser)
	}
	if uf, err := auth.LoadUsersFile(usersFile); err != nil {
		t.Error(err)
	} else if n := len(uf.Users()); n != 1 {
		t.Errorf("the users file has %d users after the deletion, want 1 (bob)", n)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser script: %v", err)
	}
	for _, f := range []string{"console-dashboard.png", "console-users.png"} {
		if st, err := os.Stat(filepath.Join(shots, f)); err != nil || st.Size() < 10<<10 {
			t.Errorf("screenshot %s: %v (%d bytes)", f, err, sizeOf(st))
		}
	}
}

func sizeOf(st os.FileInfo) int64 {
	if st == nil {
		return 0
	}
	return st.Size()
}

// startServer starts a server with the API and console on, an admin
// account "ops", a users file the console may write (one user, bob,
// already there) and the file the new user will download. It returns
// the console's URL, the FTP address, the users file and the passive
// port range.
func startServer(t *testing.T) (base, ftpAddr, usersFile, passive string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "files")
	for _, d := range []string{"bob", ftpUser} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, fileSize)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(root, ftpUser, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	usersFile = filepath.Join(dir, "users.toml")
	hash, err := auth.HashPassword("bob-secret-1")
	if err != nil {
		t.Fatal(err)
	}
	uf := &auth.UsersFile{}
	perms, _ := auth.ParsePermissions([]string{"all"})
	if err := uf.Add("bob", hash, "bob", perms); err != nil {
		t.Fatal(err)
	}
	if err := uf.SetLimits("bob", func(l *auth.LimitsEntry) { l.MaxSessions = 2; l.QuotaBytes = 10 << 30 }); err != nil {
		t.Fatal(err)
	}
	if err := uf.Save(usersFile); err != nil {
		t.Fatal(err)
	}
	adminsFile := filepath.Join(dir, "api-admins.toml")
	af := &api.AdminsFile{}
	if err := af.Add("ops", "ops-password-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := af.Save(adminsFile); err != nil {
		t.Fatal(err)
	}
	passive = clienttest.FreeRange(t, 20)
	cfgText := fmt.Sprintf(`
[server]
idle_timeout = "60s"
data_timeout = "10s"
state_dir = %q

[[listener]]
address = "127.0.0.1:0"
passive_ports = %q

[storage]
backend = "local"
root = %q

[auth]
users_file = %q

[api]
enabled = true
address = "127.0.0.1:0"
tokens_file = %q
admins_file = %q
`, filepath.Join(dir, "state"), passive, root, usersFile, filepath.Join(dir, "api-tokens.toml"), adminsFile)
	cfgFile := filepath.Join(dir, "cloudftpd.toml")
	if err := os.WriteFile(cfgFile, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(logWriter{t, "server: "}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := server.New(t.Context(), cfg, server.Options{Logger: logger, Version: "v0.0.0-console-test",
		Doctor: func(ctx context.Context, cfg *config.Config) []diag.Check {
			return doctor.Diagnose(ctx, cfg, doctor.Options{})
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + srv.APIAddr().String(), srv.Addrs()[0].String(), usersFile, passive
}

func findUser(t *testing.T, usersFile, name string) auth.UserEntry {
	t.Helper()
	uf, err := auth.LoadUsersFile(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range uf.Users() {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("no user %s in %s", name, usersFile)
	return auth.UserEntry{}
}

// ftpLogin logs in and out, for whether a password is in force.
func ftpLogin(addr, user, password string) error {
	c, err := ftp.Dial(addr, ftp.DialWithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	defer c.Quit()
	return c.Login(user, password)
}

type download struct {
	n                          int64
	copyErr, closeErr, noopErr error
}

// startDownload logs in as the new user and starts downloading big.bin,
// returning once the transfer runs; the channel tells how it ended.
func startDownload(t *testing.T, addr string) <-chan download {
	t.Helper()
	c, err := ftp.Dial(addr, ftp.DialWithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Quit() })
	if err := c.Login(ftpUser, ftpPassword); err != nil {
		t.Fatalf("FTP login as the user the console added: %v", err)
	}
	r, err := c.Retr("big.bin")
	if err != nil {
		t.Fatalf("RETR: %v", err)
	}
	out := make(chan download, 1)
	go func() {
		var d download
		d.n, d.copyErr = io.Copy(io.Discard, r)
		d.closeErr = r.Close()
		d.noopErr = c.NoOp()
		out <- d
	}()
	return out
}

// logWriter sends a child's or the server's lines to the test log.
type logWriter struct {
	t      *testing.T
	prefix string
}

func (w logWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(w.prefix + l)
	}
	return len(p), nil
}
