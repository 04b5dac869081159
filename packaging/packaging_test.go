// Package packaging holds the files of cloudftpd's .deb, .rpm and
// container image, and their tests: the systemd unit through
// systemd-analyze, the logrotate file through logrotate, the compose file
// and its config through a YAML parser and config validation, and in CI
// the .deb installed with dpkg. The packages are built by mkpkg, a module
// of its own (see build.sh).
package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// unitKeys reads a systemd unit's [Service] settings: key to values, in
// order (a key may be given more than once).
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", path, line)
			}
			keys[k] = append(keys[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestUnitHardening: the directives the issue asks for are in the unit,
// with the values that make them mean something.
func TestUnitHardening(t *testing.T) {
	keys := unitKeys(t, "files/cloudftpd.service")
	want := map[string]string{
		"User":                  "cloudftpd",
		"ExecStart":             "/usr/bin/cloudftpd serve --config /etc/cloudftpd/cloudftpd.toml",
		"ExecReload":            "/bin/kill -HUP $MAINPID",
		"AmbientCapabilities":   "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"SystemCallFilter":      "@system-service",
		"StateDirectory":        "cloudftpd",
		"LogsDirectory":         "cloudftpd",
	}
	for k, v := range want {
		if got := keys[k]; !slices.Contains(got, v) {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	rw := strings.Fields(strings.Join(keys["ReadWritePaths"], " "))
	for _, p := range []string{"/srv/ftp", "/var/lib/cloudftpd"} {
		if !slices.Contains(rw, p) {
			t.Errorf("ReadWritePaths %q lacks %s", rw, p)
		}
	}
}

// TestUnitVerifies runs systemd-analyze verify, which needs no running
// systemd: it loads the unit and checks every directive and that the
// programs it starts exist. Until the package is installed
// /usr/bin/cloudftpd does not, so ExecStart points at this test's own
// binary here; TestDebInstall verifies the installed unit as it is.
func TestUnitVerifies(t *testing.T) {
	clienttest.Need(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile("files/cloudftpd.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "cloudftpd.service")
	body := strings.ReplaceAll(string(unit), "ExecStart=/usr/bin/cloudftpd ", "ExecStart="+self+" ")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyUnit(t, p)
}

// verifyUnit fails on any output: systemd-analyze exits 0 on unknown keys
// and bad values ("ignoring"), it only warns.
func verifyUnit(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
}

// TestLogrotateConfig: logrotate parses the file and, in debug mode (it
// rotates nothing), accepts it.
func TestLogrotateConfig(t *testing.T) {
	bin := clienttest.Need(t, "logrotate", "/usr/sbin/logrotate")
	logrotate(t, bin, "files/cloudftpd.logrotate")
}

func logrotate(t *testing.T, bin, conf string) {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	out, err := exec.Command(bin, "--debug", "--state", state, conf).CombinedOutput()
	if err != nil || strings.Contains(string(out), "error:") {
		t.Errorf("logrotate --debug %s: %v\n%s", conf, err, out)
	}
	for _, p := range []string{"/var/log/cloudftpd/audit.jsonl", "/var/log/cloudftpd/xferlog"} {
		if !strings.Contains(string(out), p) {
			t.Errorf("logrotate does not consider %s:\n%s", p, out)
		}
	}
}

// exposed reads the ports a Containerfile's EXPOSE lines name.
func exposed(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, m := range regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindAllStringSubmatch(string(b), -1) {
		ports = append(ports, strings.Fields(m[1])...)
	}
	return ports
}

// listenerPorts is what a config needs reachable: each listener's
// control port and passive range.
func listenerPorts(t *testing.T, cfg *config.Config) []string {
	t.Helper()
	var ports []string
	for _, l := range cfg.Listeners {
		_, port, ok := strings.Cut(l.Address, ":")
		if !ok {
			t.Fatalf("listener address %q has no port", l.Address)
		}
		ports = append(ports, port, l.PassivePorts)
	}
	return ports
}

// TestContainerImage: the image's default config is valid, and the image
// exposes its control port and passive range, runs as a non-root user and
// builds a static binary.
func TestContainerImage(t *testing.T) {
	cfg, err := config.Load("container/cloudftpd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := exposed(t, "Containerfile"), listenerPorts(t, cfg); !slices.Equal(got, want) {
		t.Errorf("EXPOSE %v, want the config's %v", got, want)
	}
	b, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "\nUSER 65532:65532\n", "FROM gcr.io/distroless/static"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Containerfile lacks %q", want)
		}
	}
	// The COPY lines name files that exist (the build context is the
	// repository's root).
	for _, m := range regexp.MustCompile(`(?m)^COPY (packaging/\S+)(?: (packaging/\S+))?`).FindAllStringSubmatch(string(b), -1) {
		for _, p := range m[1:] {
			if p == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("Containerfile copies %s: %v", p, err)
			}
		}
	}
}
