package packaging

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// The version and commit the test builds with, to find in the output.
const (
	testVersion = "9.8.7-test"
	testCommit  = "0123456789abcdef0123456789abcdef01234567"
)

// TestDebInstall builds the .deb and .rpm with mkpkg, installs the .deb
// on this machine with dpkg, checks what it installed, and purges it. It
// changes the machine (a package, a system account, /srv/ftp), so it runs
// only in CI (CI=true, as root, with dpkg) or when asked with
// CLOUDFTPD_TEST_DPKG=1; it puts back what it changed.
func TestDebInstall(t *testing.T) {
	if os.Getenv("CI") != "true" && os.Getenv("CLOUDFTPD_TEST_DPKG") != "1" {
		t.Skip("installs a package on this machine: runs with CI=true or CLOUDFTPD_TEST_DPKG=1")
	}
	if os.Geteuid() != 0 {
		clienttest.Unavailable(t, "dpkg -i needs root")
	}
	clienttest.Need(t, "dpkg")
	if exec.Command("dpkg-query", "-W", "cloudftpd").Run() == nil {
		clienttest.Unavailable(t, "a cloudftpd package is installed already; not replacing it")
	}
	if _, err := os.Stat("/usr/bin/cloudftpd"); err == nil {
		clienttest.Unavailable(t, "/usr/bin/cloudftpd exists; not replacing it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// Build once: both formats (the rpm is checked for its magic only, as
	// rpm may not be installed to read it).
	out := t.TempDir()
	mk := exec.CommandContext(ctx, "go", "run", ".", "--version", testVersion, "--commit", testCommit, "--out", out)
	mk.Dir = "mkpkg"
	if b, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkpkg: %v\n%s", err, b)
	}
	deb := filepath.Join(out, "cloudftpd_9.8.7~test_"+debArch(t)+".deb")
	rpms, _ := filepath.Glob(filepath.Join(out, "cloudftpd-9.8.7~test-1.*.rpm"))
	if len(rpms) != 1 {
		entries, _ := os.ReadDir(out)
		t.Fatalf("want one rpm in %s, have %v", out, entries)
	}
	if b, err := os.ReadFile(rpms[0]); err != nil || !bytes.HasPrefix(b, []byte{0xed, 0xab, 0xee, 0xdb}) {
		t.Errorf("%s is not an rpm (lead magic): %v", rpms[0], err)
	}

	_, hadUser := lookup("passwd", "cloudftpd")
	_, hadGroup := lookup("group", "cloudftpd")
	_, srvErr := os.Stat("/srv/ftp")
	t.Cleanup(func() {
		run(t, "dpkg", "--purge", "cloudftpd")
		for _, p := range []string{"/var/lib/cloudftpd", "/var/log/cloudftpd", "/etc/cloudftpd"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s is still there after the purge", p)
			}
		}
		if srvErr != nil {
			os.Remove("/srv/ftp") // only when empty, as it should be
		}
		if !hadUser {
			run(t, "userdel", "cloudftpd")
		}
		if _, still := lookup("group", "cloudftpd"); !hadGroup && still {
			run(t, "groupdel", "cloudftpd")
		}
	})
	run(t, "dpkg", "-i", deb)

	if got := run(t, "dpkg-query", "-W", "-f", "${Version}", "cloudftpd"); got != "9.8.7~test" {
		t.Errorf("installed version %q", got)
	}
	v := run(t, "/usr/bin/cloudftpd", "version")
	if want := "cloudftpd " + testVersion + " (commit " + testCommit[:12] + ", go"; !strings.HasPrefix(v, want) {
		t.Errorf("cloudftpd version: %q, want %q...", v, want)
	}
	if line, ok := lookup("passwd", "cloudftpd"); !ok || !strings.HasSuffix(line, ":/var/lib/cloudftpd:/usr/sbin/nologin") {
		t.Errorf("cloudftpd account: %q", line)
	}
	conffiles := run(t, "dpkg-query", "-W", "-f", "${Conffiles}", "cloudftpd")
	for _, p := range []string{"/etc/cloudftpd/cloudftpd.toml", "/etc/cloudftpd/users.toml", "/etc/logrotate.d/cloudftpd"} {
		if !strings.Contains(conffiles, p+" ") {
			t.Errorf("%s is not a conffile:\n%s", p, conffiles)
		}
	}
	// The config's secrets: root writes, the server's group reads.
	modes := map[string]string{
		"/etc/cloudftpd/users.toml":     "640 root:cloudftpd",
		"/etc/cloudftpd/cloudftpd.toml": "640 root:cloudftpd",
		"/etc/cloudftpd":                "750 root:cloudftpd",
		"/var/lib/cloudftpd":            "750 cloudftpd:cloudftpd",
	}
	if srvErr != nil {
		// A /srv/ftp that was there (vsftpd's) keeps its owner.
		modes["/srv/ftp"] = "750 cloudftpd:cloudftpd"
	}
	for p, want := range modes {
		if got := run(t, "stat", "-c", "%a %U:%G", p); got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}

	// The packaged config: valid, and its paths are those the unit may
	// write.
	const conf = "/etc/cloudftpd/cloudftpd.toml"
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	const unit = "/usr/lib/systemd/system/cloudftpd.service"
	rw := strings.Join(unitKeys(t, unit)["ReadWritePaths"], " ")
	for _, p := range []string{cfg.Storage.Root, cfg.Server.StateDir} {
		if !strings.Contains(" "+rw+" ", " "+p+" ") {
			t.Errorf("the config writes %s, the unit's ReadWritePaths are %q", p, rw)
		}
	}
	// An administrator adds a user as root; the server's account still
	// reads the users file (its group and mode are kept).
	add := exec.CommandContext(ctx, "/usr/bin/cloudftpd", "user", "add", "alice", "--config", conf, "--password-stdin")
	add.Stdin = strings.NewReader("secret\n")
	if b, err := add.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, b)
	}
	if got := run(t, "runuser", "-u", "cloudftpd", "--", "/usr/bin/cloudftpd", "check-config", "--config", conf); !strings.Contains(got, "1 user(s)") {
		t.Errorf("check-config as cloudftpd: %q", got)
	}

	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		verifyUnit(t, unit)
	} else {
		clienttest.Unavailable(t, "systemd-analyze not installed")
	}
	if bin, err := exec.LookPath("logrotate"); err == nil {
		logrotate(t, bin, "/etc/logrotate.d/cloudftpd")
	} else {
		clienttest.Unavailable(t, "logrotate not installed")
	}
}

// run runs a command that must succeed and returns its trimmed output.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return strings.TrimSpace(string(b))
}

// lookup is getent DB KEY.
func lookup(db, key string) (string, bool) {
	b, err := exec.Command("getent", db, key).Output()
	return strings.TrimSpace(string(b)), err == nil
}

func debArch(t *testing.T) string {
	b, err := exec.Command("dpkg", "--print-architecture").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
