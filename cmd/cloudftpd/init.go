package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// layout is where a sample config puts the server's files.
type layout struct {
	Address  string // the listener
	Root     string // storage.root
	StateDir string // server.state_dir
}

var (
	// localLayout keeps everything beside the config file: a config to try
	// in a directory of one's own, on an unprivileged port.
	localLayout = layout{Address: "0.0.0.0:2121", Root: "data", StateDir: "state"}
	// systemLayout is what the .deb and .rpm install (packaging/): the
	// FTP port (the unit grants CAP_NET_BIND_SERVICE), data under /srv,
	// state under /var/lib, the paths the systemd unit may write.
	systemLayout = layout{Address: "0.0.0.0:21", Root: "/srv/ftp", StateDir: "/var/lib/cloudftpd"}
)

// sampleConfig is what "cloudftpd init" writes: every key with its default
// and a word on why one would change it.
var sampleConfig = template.Must(template.New("cloudftpd.toml").Parse(sampleConfigText))

const sampleConfigText = `# cloudftpd configuration. Reference: README.md, "Configuration".

[server]
idle_timeout = "5m"         # close control connections idle this long (421)
data_timeout = "30s"        # wait this long for a data connection to open
stall_timeout = "5m"        # abort a transfer that moves no data this long
login_timeout = "1m"        # close connections that have not logged in by then
shutdown_grace = "30s"      # on SIGTERM, let running transfers finish this long
drain_delay = "0s"          # on SIGTERM, keep accepting this long while /healthz says 503 (behind a balancer)
control_keepalive = "15s"   # TCP keepalive on control connections, idle through transfers; "0s" = off
max_sessions = 0            # concurrent control connections, 0 = unlimited
max_sessions_per_ip = 0     # per client address, 0 = unlimited
max_login_failures = 3      # close the session after this many bad passwords
login_failure_delay = "1s"  # wait before answering a bad password
banner = "cloudftpd ready"
# Bans, quota usage, the event outbox and the control socket live here.
state_dir = "{{.StateDir}}"

[[listener]]
address = "{{.Address}}"
# Open this range in your firewall / security group, next to the control port.
passive_ports = "50000-50100"
active_mode = true          # allow PORT/EPRT (only to the client's own address)
tls = "off"

  # Passive-address rules: the first rule whose clients match decides the
  # address sent in PASV replies. Without rules: the address the client
  # connected to ("control"). Behind NAT (e.g. an EC2 Elastic IP), send
  # the public address to internet clients:
  #
  # [[listener.passive]]
  # clients = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
  # address = "control"
  #
  # [[listener.passive]]
  # clients = ["0.0.0.0/0"]
  # address = "198.51.100.10"

[storage]
backend = "local"
# Each user's home is a directory under this.
root = "{{.Root}}"

[auth]
users_file = "users.toml"   # manage with: cloudftpd user add NAME
anonymous = false           # read-only "anonymous"/"ftp" logins
anonymous_home = "pub"

[log]
format = "text"             # or "json"
level = "info"              # debug, info, warn, error

# Prometheus metrics on http://ADDRESS/metrics, and /healthz for a load
# balancer (200 ready, 503 draining); off when unset. Keep the address
# private: loopback, or a network only monitoring and balancers reach.
# [metrics]
# address = "127.0.0.1:9121"

# An audit log (one JSON event a line) and a vsftpd-style xferlog; SIGUSR1
# reopens both (logrotate). The directory must exist and be writable.
# [[events.sink]]
# name = "audit"
# kind = "audit"
# path = "/var/log/cloudftpd/audit.jsonl"
#
# [[events.sink]]
# name = "xferlog"
# kind = "xferlog"
# path = "/var/log/cloudftpd/xferlog"
`

const sampleUsers = `# cloudftpd users. Manage with "cloudftpd user add|set|passwd|del|list".
`

func runInit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory to write cloudftpd.toml and users.toml into")
	force := fs.Bool("force", false, "overwrite existing files")
	system := fs.Bool("system", false, "system paths (port 21, /srv/ftp, /var/lib/cloudftpd), as the packages install")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	lay := localLayout
	if *system {
		lay = systemLayout
	}
	var conf strings.Builder
	if err := sampleConfig.Execute(&conf, lay); err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	for _, f := range []struct {
		name, body string
		mode       os.FileMode
	}{
		{"cloudftpd.toml", conf.String(), 0o644},
		{"users.toml", sampleUsers, 0o600},
	} {
		p := filepath.Join(*dir, f.name)
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if *force {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		fh, err := os.OpenFile(p, flags, f.mode)
		if errors.Is(err, os.ErrExist) {
			fmt.Fprintf(stderr, "cloudftpd: %s exists; use --force to overwrite\n", p)
			return 1
		}
		if err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
		_, err = fh.WriteString(f.body)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
		fmt.Fprintln(stdout, "wrote", p)
	}
	fmt.Fprintf(stdout, "Next: cloudftpd user add NAME --config %s, then cloudftpd serve --config %s\n",
		filepath.Join(*dir, "cloudftpd.toml"), filepath.Join(*dir, "cloudftpd.toml"))
	return 0
}
