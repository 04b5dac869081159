package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fullConfig sets every key config.go knows.
const fullConfig = `
[server]
idle_timeout = "10m"
data_timeout = "45s"
stall_timeout = "2m30s"
login_timeout = "90s"
shutdown_grace = "1m"
drain_delay = "25s"
control_keepalive = "1m"
max_sessions = 100
max_sessions_per_ip = 5
max_login_failures = 4
login_failure_delay = "2s"
banner = "Welcome to the partner exchange"

[[listener]]
address = "0.0.0.0:21"
passive_ports = "50000-50100"
active_mode = false
tls = "explicit"
tls_cert = "tls/cert.pem"
tls_key = "/etc/cloudftpd/key.pem"
tls_data = "required"
tls_session_reuse = "optional"
tls_allow_ccc = true
proxy_protocol = true
passive_proxy_protocol = true
proxy_trusted = ["10.0.0.0/8", "192.0.2.7", "2001:db8::1/32"]

  [[listener.passive]]
  clients = ["10.0.0.0/8", "192.168.1.7/16"]
  address = "control"

  [[listener.passive]]
  clients = ["100.64.0.0/10"]
  address = "198.51.100.10"

  [[listener.passive]]
  clients = ["0.0.0.0/0", "::/0"]
  address = "ftp.example.com"

  [[listener.passive]]
  clients = ["203.0.113.0/24"]
  address = "aws"

[[listener]]
address = "[::1]:2121"

[[listener]]
address = "127.0.0.1:990"
passive_ports = "60000"
active_mode = true
tls = "implicit"
tls_cert = "c.pem"
tls_key = "k.pem"

[storage]
backend = "local"
root = "/srv/ftp"

[auth]
users_file = "users.toml"
anonymous = true
anonymous_home = "public/files"

[log]
format = "json"
level = "debug"
`

func TestParseFullConfig(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(fullConfig))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s := c.Server
	for _, d := range []struct {
		key       string
		got, want time.Duration
	}{
		{"idle_timeout", s.IdleTimeout.D(), 10 * time.Minute},
		{"data_timeout", s.DataTimeout.D(), 45 * time.Second},
		{"stall_timeout", s.StallTimeout.D(), 150 * time.Second},
		{"login_timeout", s.LoginTimeout.D(), 90 * time.Second},
		{"shutdown_grace", s.ShutdownGrace.D(), time.Minute},
		{"drain_delay", s.DrainDelay.D(), 25 * time.Second},
		{"control_keepalive", s.ControlKeepaliveDuration(), time.Minute},
		{"login_failure_delay", s.LoginFailureDelay.D(), 2 * time.Second},
	} {
		if d.got != d.want {
			t.Errorf("server.%s = %v, want %v", d.key, d.got, d.want)
		}
	}
	if s.MaxSessions != 100 || s.MaxSessionsPerIP != 5 || s.MaxLoginFailures != 4 {
		t.Errorf("limits = %d/%d/%d, want 100/5/4", s.MaxSessions, s.MaxSessionsPerIP, s.MaxLoginFailures)
	}
	if s.Banner != "Welcome to the partner exchange" {
		t.Errorf("banner = %q", s.Banner)
	}

	if len(c.Listeners) != 3 {
		t.Fatalf("%d listeners, want 3", len(c.Listeners))
	}
	l := &c.Listeners[0]
	if got, want := l.AddrPort(), netip.MustParseAddrPort("0.0.0.0:21"); got != want {
		t.Errorf("listener[0] address = %v, want %v", got, want)
	}
	if lo, hi, ok := l.PortRange(); lo != 50000 || hi != 50100 || !ok {
		t.Errorf("listener[0] PortRange() = %d, %d, %v", lo, hi, ok)
	}
	if l.ActiveAllowed() {
		t.Error("listener[0] active_mode = false, but ActiveAllowed()")
	}
	if l.TLS != TLSExplicit || l.TLSCert != "tls/cert.pem" || l.TLSKey != "/etc/cloudftpd/key.pem" {
		t.Errorf("listener[0] tls = %q, %q, %q", l.TLS, l.TLSCert, l.TLSKey)
	}
	if l.ControlTLS() != PolicyOptional || l.DataTLS() != PolicyRequired || l.SessionReuse() != PolicyOptional || !l.TLSAllowCCC {
		t.Errorf("listener[0] control %q, data %q, session reuse %q, tls_allow_ccc %v", l.ControlTLS(), l.DataTLS(), l.SessionReuse(), l.TLSAllowCCC)
	}
	if l.ControlProxy() != PolicyRequired || l.PassiveProxy() != PolicyRequired {
		t.Errorf("listener[0] proxy_protocol %q, passive_proxy_protocol %q", l.ControlProxy(), l.PassiveProxy())
	}
	wantTrusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if got := l.TrustedProxies(); !equalPrefixes(got, wantTrusted) {
		t.Errorf("listener[0] TrustedProxies() = %v, want %v", got, wantTrusted)
	}
	wantRules := []struct {
		clients []string
		address string
		kind    AddressKind
	}{
		{[]string{"10.0.0.0/8", "192.168.0.0/16"}, "control", AddressControl},
		{[]string{"100.64.0.0/10"}, "198.51.100.10", AddressLiteral},
		{[]string{"0.0.0.0/0", "::/0"}, "ftp.example.com", AddressDNS},
		{[]string{"203.0.113.0/24"}, "aws", AddressAWS},
	}
	if len(l.Passive) != len(wantRules) {
		t.Fatalf("listener[0] has %d passive rules, want %d", len(l.Passive), len(wantRules))
	}
	for i, w := range wantRules {
		r := &l.Passive[i]
		var want []netip.Prefix
		for _, s := range w.clients {
			want = append(want, netip.MustParsePrefix(s))
		}
		if got := r.ClientPrefixes(); !equalPrefixes(got, want) {
			t.Errorf("passive[%d] ClientPrefixes() = %v, want %v (masked)", i, got, want)
		}
		if r.Address != w.address || r.Kind() != w.kind {
			t.Errorf("passive[%d] address %q kind %d, want %q kind %d", i, r.Address, r.Kind(), w.address, w.kind)
		}
	}

	l1 := &c.Listeners[1]
	if got, want := l1.AddrPort(), netip.MustParseAddrPort("[::1]:2121"); got != want {
		t.Errorf("listener[1] address = %v, want %v", got, want)
	}
	if _, _, ok := l1.PortRange(); ok {
		t.Error("listener[1] without passive_ports has a port range")
	}
	if !l1.ActiveAllowed() {
		t.Error("listener[1] without active_mode: ActiveAllowed() = false, want the default true")
	}
	if l1.TLS != TLSOff || l1.DataTLS() != PolicyOff || l1.SessionReuse() != PolicyOff {
		t.Errorf("listener[1] TLS defaults: %q, %q, %q", l1.TLS, l1.DataTLS(), l1.SessionReuse())
	}

	l2 := &c.Listeners[2]
	if lo, hi, ok := l2.PortRange(); lo != 60000 || hi != 60000 || !ok {
		t.Errorf("listener[2] single-port range = %d, %d, %v", lo, hi, ok)
	}
	if !l2.ActiveAllowed() {
		t.Error("listener[2] active_mode = true, but not ActiveAllowed()")
	}
	if l2.TLS != TLSImplicit || l2.ControlTLS() != PolicyRequired || l2.DataTLS() != PolicyRequired || l2.SessionReuse() != PolicyRequired {
		t.Errorf("listener[2] implicit TLS: control %q, data %q, reuse %q (want required by default)", l2.ControlTLS(), l2.DataTLS(), l2.SessionReuse())
	}

	if c.Storage != (Storage{Backend: "local", Root: "/srv/ftp"}) {
		t.Errorf("storage = %+v", c.Storage)
	}
	if a := c.Auth; a.UsersFile != "users.toml" || !a.Anonymous || a.AnonymousHome != "public/files" ||
		a.UsersFilePolicy() != PolicyRequired || a.AnonymousPolicy() != PolicyOptional {
		t.Errorf("auth = %+v", c.Auth)
	}
	if c.Log != (Log{Format: "json", Level: "debug"}) || c.SlogLevel() != slog.LevelDebug {
		t.Errorf("log = %+v, SlogLevel %v", c.Log, c.SlogLevel())
	}
}

func equalPrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// minimal is the smallest valid file.
const minimal = `
[[listener]]
address = "127.0.0.1:2121"
` + storageOnly

// storageOnly completes a file whose listeners a case provides itself.
const storageOnly = `
[storage]
root = "data"
` + usersOnly

// usersOnly is the [auth] table of minimal.
const usersOnly = `
[auth]
users_file = "users.toml"
`

// withoutAuth is minimal without its [auth] table, for cases that write
// their own.
const withoutAuth = "[[listener]]\naddress = \"127.0.0.1:2121\"\n[storage]\nroot = \"data\"\n"

// TestParseHTTPStore: store = "http" needs no users file, and fills the
// hook's defaults: 5s timeout, 60s cache, all permissions, the host name
// as server id, and the storage root in Transfer Family terms.
func TestParseHTTPStore(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(withoutAuth + "\n[auth]\nstore = \"http\"\n[auth.http]\nurl = \"https://idp.example.com/login\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Auth.HTTP
	host, _ := os.Hostname()
	if h.Timeout.D() != DefaultHookTimeout || h.CacheTTLDuration() != DefaultHookCacheTTL || h.ServerID != host ||
		len(h.DefaultPermissions) != 1 || h.DefaultPermissions[0] != "all" || h.HomeDirectoryRoot != "/" {
		t.Errorf("defaults %+v", h)
	}
	if c.Auth.UsersFilePolicy() != PolicyOff || c.Auth.AnonymousPolicy() != PolicyOff {
		t.Errorf("policies %q %q", c.Auth.UsersFilePolicy(), c.Auth.AnonymousPolicy())
	}
	c, err = Parse([]byte("[[listener]]\naddress = \":21\"\n[storage]\nbackend = \"s3\"\nbucket = \"b\"\nprefix = \"ftp/\"\n[auth]\nstore = \"http\"\nanonymous = true\n[auth.http]\nurl = \"http://h/\"\ncache_ttl = \"0s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Auth.HTTP; h.HomeDirectoryRoot != "/b/ftp" || h.CacheTTLDuration() != 0 || c.Auth.AnonymousPolicy() != PolicyOptional {
		t.Errorf("s3: root %q, cache %v, anonymous %q", h.HomeDirectoryRoot, h.CacheTTLDuration(), c.Auth.AnonymousPolicy())
	}
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Server{
		IdleTimeout:       Duration(5 * time.Minute),
		DataTimeout:       Duration(30 * time.Second),
		StallTimeout:      Duration(5 * time.Minute),
		LoginTimeout:      Duration(time.Minute),
		ShutdownGrace:     Duration(30 * time.Second),
		MaxLoginFailures:  3,
		LoginFailureDelay: Duration(time.Second),
		Banner:            "cloudftpd ready",
		UploadChecksum:    "sha256",
	}
	if mx, rt := c.Server.HashLimits(); mx != 1<<30 || rt != 128<<20 || !c.Server.UploadChecksums() {
		t.Errorf("checksum defaults: hash_max_size %d, hash_rate %d, upload checksums %v", mx, rt, c.Server.UploadChecksums())
	}
	if got := c.Server.ReplaceGraceDuration(); got != DefaultReplaceGrace {
		t.Errorf("replace_grace default = %v, want %v", got, DefaultReplaceGrace)
	}
	if got := c.Server.ControlKeepaliveDuration(); got != DefaultControlKeepalive {
		t.Errorf("control_keepalive default = %v, want %v", got, DefaultControlKeepalive)
	}
	if c.Server.DrainDelay != 0 {
		t.Errorf("drain_delay default = %v, want 0", c.Server.DrainDelay.D())
	}
	c.Server.ReplaceGrace = nil     // a pointer: compared above
	c.Server.ControlKeepalive = nil // likewise
	if c.Server != want {
		t.Errorf("server defaults = %+v\nwant %+v", c.Server, want)
	}
	if c.Storage.Backend != "local" || c.Storage.Root != "data" {
		t.Errorf("storage = %+v", c.Storage)
	}
	if c.Auth.AnonymousHome != "pub" || c.Auth.Anonymous {
		t.Errorf("auth = %+v", c.Auth)
	}
	if c.Log.Format != "text" || c.Log.Level != "info" || c.SlogLevel() != slog.LevelInfo {
		t.Errorf("log = %+v", c.Log)
	}
	if c.Auth.UsersFilePolicy() != PolicyRequired || c.Auth.AnonymousPolicy() != PolicyOff {
		t.Errorf("auth policies: users file %q, anonymous %q", c.Auth.UsersFilePolicy(), c.Auth.AnonymousPolicy())
	}
	l := &c.Listeners[0]
	if l.TLS != TLSOff || l.ControlTLS() != PolicyOff || l.DataTLS() != PolicyOff || l.SessionReuse() != PolicyOff {
		t.Errorf("listener TLS defaults %q: control %q, data %q, reuse %q", l.TLS, l.ControlTLS(), l.DataTLS(), l.SessionReuse())
	}
	if l.ControlProxy() != PolicyOff || l.PassiveProxy() != PolicyOff {
		t.Errorf("listener PROXY defaults: %q, %q", l.ControlProxy(), l.PassiveProxy())
	}
	if !l.ActiveAllowed() {
		t.Error("active mode is not allowed by default")
	}
	if _, _, ok := l.PortRange(); ok {
		t.Error("a listener without passive_ports has a range")
	}
	if len(l.TrustedProxies()) != 0 || len(l.Passive) != 0 {
		t.Errorf("unexpected proxies %v / rules %v", l.TrustedProxies(), l.Passive)
	}
	wd, _ := os.Getwd()
	if c.Dir != wd {
		t.Errorf("Dir = %q, want the working directory %q", c.Dir, wd)
	}
}

// s3Storage is a valid file with S3 storage and the extra [storage] lines.
func s3Storage(extra string) string {
	return "[[listener]]\naddress = \"127.0.0.1:2121\"\n\n[storage]\nbackend = \"s3\"\nbucket = \"b\"\n" + extra + "\n" + usersOnly
}

// TestParseS3Limits checks the defaults and the parsing of the settings
// that bound S3 uploads' memory and requests' silence.
func TestParseS3Limits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		extra   string
		memory  ByteSize
		timeout time.Duration
	}{
		{"defaults", "", 256 << 20, 30 * time.Second},
		{"set", "upload_memory = \"1GiB\"\nrequest_timeout = \"2m\"", 1 << 30, 2 * time.Minute},
		{"exactly one part", "upload_memory = \"16MiB\"", 16 << 20, 30 * time.Second},
		{"large parts raise the default", "part_size = \"512MiB\"", 512 << 20, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(s3Storage(tc.extra)))
			if err != nil {
				t.Fatal(err)
			}
			if c.Storage.UploadMemory != tc.memory || c.Storage.RequestTimeout.D() != tc.timeout {
				t.Errorf("upload_memory %d, request_timeout %v; want %d, %v", c.Storage.UploadMemory, c.Storage.RequestTimeout.D(), tc.memory, tc.timeout)
			}
		})
	}
}

// TestParseChecksumKeys covers server.upload_checksum, hash_max_size and
// hash_rate: explicit values, "0", and a bad word naming the key.
func TestParseChecksumKeys(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte("[server]\nupload_checksum = \"off\"\nhash_max_size = \"0\"\nhash_rate = \"1MiB\"\n" + minimal))
	if err != nil {
		t.Fatal(err)
	}
	if mx, rt := c.Server.HashLimits(); c.Server.UploadChecksums() || mx != 0 || rt != 1<<20 {
		t.Errorf("upload checksums %v, hash_max_size %d, hash_rate %d; want off, 0, 1MiB", c.Server.UploadChecksums(), mx, rt)
	}
	_, err = Parse([]byte("[server]\nupload_checksum = \"md5\"\n" + minimal))
	if err == nil || !strings.Contains(err.Error(), "server.upload_checksum") {
		t.Errorf("upload_checksum = \"md5\": %v, want an error naming the key", err)
	}
}

func TestParseDurations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"5m", 5 * time.Minute},
		{"30s", 30 * time.Second},
		{"1h2m3s", time.Hour + 2*time.Minute + 3*time.Second},
		{"1500ms", 1500 * time.Millisecond},
		{"0.5s", 500 * time.Millisecond},
	} {
		c, err := Parse([]byte("[server]\nidle_timeout = \"" + tc.in + "\"\n" + minimal))
		if err != nil {
			t.Errorf("idle_timeout = %q: %v", tc.in, err)
			continue
		}
		if c.Server.IdleTimeout.D() != tc.want {
			t.Errorf("idle_timeout = %q parsed as %v, want %v", tc.in, c.Server.IdleTimeout.D(), tc.want)
		}
	}
	// MarshalText writes what UnmarshalText reads.
	d := Duration(90 * time.Second)
	b, err := d.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var back Duration
	if err := back.UnmarshalText(b); err != nil || back != d {
		t.Fatalf("round trip of %v through %q gave %v, %v", d.D(), b, back.D(), err)
	}
}

func TestParseLogLevels(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
		{"WARN", slog.LevelWarn},
	} {
		c, err := Parse([]byte(minimal + "\n[log]\nlevel = \"" + tc.in + "\"\n"))
		if err != nil {
			t.Errorf("level %q: %v", tc.in, err)
			continue
		}
		if c.SlogLevel() != tc.want {
			t.Errorf("level %q: SlogLevel() = %v, want %v", tc.in, c.SlogLevel(), tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	listener := func(extra string) string {
		return "[[listener]]\naddress = \"127.0.0.1:2121\"\n" + extra + "\n" + storageOnly
	}
	rule := func(clients, address string) string {
		return listener("\n[[listener.passive]]\nclients = " + clients + "\naddress = " + address + "\n")
	}
	tests := []struct {
		name string
		toml string
		want []string // substrings of the error
	}{
		{"unknown key", "[server]\nidel_timeout = \"1m\"\n" + minimal, []string{"server.idel_timeout", "unknown key"}},
		{"unknown listener key", listener("adress = \"x\""), []string{"listener[0].adress"}},
		{"unknown rule key", rule(`["0.0.0.0/0"]`, `"control"`+"\naddres = \"x\""), []string{"listener[0].passive[0].addres"}},
		{"unknown key in the second listener's second rule", minimal + `
[[listener]]
address = ":2122"
  [[listener.passive]]
  clients = ["10.0.0.0/8"]
  address = "control"
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  adress = "198.51.100.10"
`, []string{"listener[1].passive[1].adress"}},
		{"unknown table", minimal + "\n[tls]\ncert = \"x\"\n", []string{`unknown key "tls"`}},
		{"toml syntax", "[server\n" + minimal, []string{"toml"}},
		{"metrics address without port", minimal + "\n[metrics]\naddress = \"127.0.0.1\"\n", []string{"metrics.address", "127.0.0.1"}},
		{"metrics address with a name", minimal + "\n[metrics]\naddress = \"localhost:9121\"\n", []string{"metrics.address", "IP address"}},

		{"bad duration", "[server]\nidle_timeout = \"5 minutes\"\n" + minimal, []string{"server.idle_timeout", "5 minutes"}},
		{"duration without unit", "[server]\ndata_timeout = \"30\"\n" + minimal, []string{"server.data_timeout", "missing unit"}},
		{"duration as number", "[server]\nstall_timeout = 30\n" + minimal, []string{"server.stall_timeout"}},
		{"negative idle", "[server]\nidle_timeout = \"-1m\"\n" + minimal, []string{"server.idle_timeout", "negative"}},
		{"negative data", "[server]\ndata_timeout = \"-1s\"\n" + minimal, []string{"server.data_timeout", "negative"}},
		{"negative stall", "[server]\nstall_timeout = \"-1s\"\n" + minimal, []string{"server.stall_timeout", "negative"}},
		{"negative login", "[server]\nlogin_timeout = \"-1s\"\n" + minimal, []string{"server.login_timeout", "negative"}},
		{"negative grace", "[server]\nshutdown_grace = \"-1s\"\n" + minimal, []string{"server.shutdown_grace", "negative"}},
		{"negative drain", "[server]\ndrain_delay = \"-1s\"\n" + minimal, []string{"server.drain_delay", "negative"}},
		{"negative keepalive", "[server]\ncontrol_keepalive = \"-1s\"\n" + minimal, []string{"server.control_keepalive", "negative"}},
		{"keepalive too long", "[server]\ncontrol_keepalive = \"10h\"\n" + minimal, []string{"server.control_keepalive", "limit"}},
		{"negative delay", "[server]\nlogin_failure_delay = \"-1s\"\n" + minimal, []string{"server.login_failure_delay", "negative"}},
		{"banner not a string", "[server]\nbanner = 5\n" + minimal, []string{"banner"}},

		{"reversed range", listener(`passive_ports = "900-800"`), []string{"listener[0].passive_ports", `"900-800"`, "min 900 > max 800"}},
		{"range from 0", listener(`passive_ports = "0-10"`), []string{"listener[0].passive_ports", `"0-10"`, "port 0"}},
		{"range not numbers", listener(`passive_ports = "abc"`), []string{"listener[0].passive_ports", `"abc"`}},
		{"range too high", listener(`passive_ports = "65000-65536"`), []string{"listener[0].passive_ports"}},
		{"range as number", listener(`passive_ports = 50000`), []string{"passive_ports"}},
		{"second listener range", minimal + "\n[[listener]]\naddress = \"127.0.0.1:2122\"\npassive_ports = \"20-10\"\n", []string{"listener[1].passive_ports", "min 20 > max 10"}},

		{"mapped ports without passive_ports", rule(`["0.0.0.0/0"]`, `"control"`+"\nports = \"30000-30009\""), []string{"listener[0].passive[0].ports", "needs the listener's passive_ports"}},
		{"mapped ports of another length", listener("passive_ports = \"50000-50009\"\n[[listener.passive]]\nclients = [\"0.0.0.0/0\"]\naddress = \"control\"\nports = \"30000-30019\"\n"), []string{"listener[0].passive[0].ports", "has 20 ports", "has 10"}},
		{"mapped ports not a range", listener("passive_ports = \"50000-50009\"\n[[listener.passive]]\nclients = [\"0.0.0.0/0\"]\naddress = \"control\"\nports = \"high\"\n"), []string{"listener[0].passive[0].ports", `"high"`}},
		{"bad cidr", rule(`["10.0.0.0/33"]`, `"control"`), []string{"listener[0].passive[0].clients", `"10.0.0.0/33"`}},
		{"address not cidr", rule(`["10.0.0.1"]`, `"control"`), []string{"listener[0].passive[0].clients", `"10.0.0.1"`}},
		{"no clients", rule(`[]`, `"control"`), []string{"listener[0].passive[0].clients"}},
		{"bad cidr in second rule", listener("[[listener.passive]]\nclients = [\"10.0.0.0/8\"]\naddress = \"control\"\n[[listener.passive]]\nclients = [\"0.0.0.0/0\", \"everyone\"]\naddress = \"aws\""), []string{"listener[0].passive[1].clients", `"everyone"`}},
		{"ipv6 passive address", rule(`["0.0.0.0/0"]`, `"2001:db8::1"`), []string{"listener[0].passive[0].address", "IPv4"}},
		{"empty passive address", rule(`["0.0.0.0/0"]`, `""`), []string{"listener[0].passive[0].address"}},
		{"bad passive address", rule(`["0.0.0.0/0"]`, `"ftp_server!"`), []string{"listener[0].passive[0].address", "ftp_server!"}},
		{"mistyped passive address", rule(`["0.0.0.0/0"]`, `"203.0.113"`), []string{"listener[0].passive[0].address"}},
		{"passive address out of range", rule(`["0.0.0.0/0"]`, `"203.0.113.256"`), []string{"listener[0].passive[0].address"}},

		{"host name as listen address", "[[listener]]\naddress = \"localhost:21\"\n" + storageOnly, []string{"listener[0].address", "localhost"}},
		{"listen address without port", "[[listener]]\naddress = \"127.0.0.1\"\n" + storageOnly, []string{"listener[0].address"}},
		{"listen port too big", "[[listener]]\naddress = \"127.0.0.1:65536\"\n" + storageOnly, []string{"listener[0].address"}},
		{"listen port not a number", "[[listener]]\naddress = \":ftp\"\n" + storageOnly, []string{"listener[0].address"}},
		{"missing listen address", "[[listener]]\npassive_ports = \"50000-50010\"\n" + storageOnly, []string{"listener[0].address"}},
		{"bad second listener", minimal + "\n[[listener]]\naddress = \"nowhere\"\n", []string{"listener[1].address"}},

		{"bogus tls", listener(`tls = "bogus"`), []string{"listener[0].tls", `"bogus"`}},
		{"bogus tls in the second listener", minimal + "\n[[listener]]\naddress = \":2122\"\ntls = \"on\"\n", []string{"listener[1].tls: ", `"on"`}},
		{"tls as a boolean", listener(`tls = true`), []string{"listener[0].tls", `"true"`}},
		{"tls without cert", listener(`tls = "explicit"`), []string{"listener[0].tls_cert"}},
		{"tls without key", listener("tls = \"required\"\ntls_cert = \"c.pem\""), []string{"listener[0].", "tls_key"}},
		{"bad tls_data", listener(`tls_data = "maybe"`), []string{"listener[0].tls_data", `"maybe"`}},
		{"bad tls_session_reuse", listener(`tls_session_reuse = "never"`), []string{"listener[0].tls_session_reuse", `"never"`}},
		{"tls_data required without tls", listener(`tls_data = "required"`), []string{"listener[0].tls_data", "needs TLS"}},
		{"tls_data off with tls", listener("tls = \"explicit\"\ntls_cert = \"c\"\ntls_key = \"k\"\ntls_data = \"off\""), []string{"listener[0].tls_data", `"off"`}},
		{"tls_session_reuse off with tls", listener("tls = \"implicit\"\ntls_cert = \"c\"\ntls_key = \"k\"\ntls_session_reuse = \"off\""), []string{"listener[0].tls_session_reuse", `"off"`}},
		{"nobody can log in", withoutAuth, []string{"auth.users_file", "auth.anonymous"}},
		{"anonymous off and no users file", withoutAuth + "\n[auth]\nanonymous = false\n", []string{"auth.users_file", "required unless"}},
		{"proxy without trusted", listener(`proxy_protocol = true`), []string{"listener[0].proxy_trusted"}},
		{"passive proxy without trusted", listener(`passive_proxy_protocol = true`), []string{"listener[0].proxy_trusted"}},
		{"bad trusted proxy", listener("proxy_protocol = true\nproxy_trusted = [\"lb.example.com\"]"), []string{"listener[0].proxy_trusted", "lb.example.com"}},

		{"no listener", storageOnly, []string{"listener", "[[listener]]"}},

		{"unknown backend", "[[listener]]\naddress = \":21\"\n[storage]\nbackend = \"ftp\"\nroot = \"x\"\n" + usersOnly, []string{"storage.backend", `"ftp"`}},
		{"local without root", "[[listener]]\naddress = \":21\"\n[storage]\nbackend = \"local\"\n" + usersOnly, []string{"storage.root"}},
		{"negative request timeout", s3Storage("request_timeout = \"-1s\""), []string{"storage.request_timeout", "negative"}},
		{"request timeout as number", s3Storage("request_timeout = 30"), []string{"storage.request_timeout"}},
		{"negative request timeout, local", withoutAuth + "request_timeout = \"-5s\"\n" + usersOnly, []string{"storage.request_timeout", "negative"}},
		{"negative upload memory", s3Storage("upload_memory = -1"), []string{"storage.upload_memory", "not a size"}},
		{"upload memory below the default part", s3Storage(`upload_memory = "10MiB"`), []string{"storage.upload_memory", "less than one part", "16777216"}},
		{"upload memory below the part", s3Storage("part_size = \"64MiB\"\nupload_memory = \"32MiB\""), []string{"storage.upload_memory", "67108864"}},
		{"bad upload memory", s3Storage(`upload_memory = "lots"`), []string{"upload_memory"}},

		{"log format", minimal + "\n[log]\nformat = \"xml\"\n", []string{"log.format", `"xml"`}},
		{"log level", minimal + "\n[log]\nlevel = \"verbose\"\n", []string{"log.level", `"verbose"`}},

		{"anonymous home escapes", withoutAuth + "\n[auth]\nusers_file = \"u.toml\"\nanonymous_home = \"../etc\"\n", []string{"auth.anonymous_home", `"../etc"`}},
		{"anonymous home escapes later", withoutAuth + "\n[auth]\nusers_file = \"u.toml\"\nanonymous_home = \"pub/../../etc\"\n", []string{"auth.anonymous_home"}},
		{"anonymous home just dots", withoutAuth + "\n[auth]\nusers_file = \"u.toml\"\nanonymous_home = \"..\"\n", []string{"auth.anonymous_home"}},
		{"anonymous home absolute", withoutAuth + "\n[auth]\nusers_file = \"u.toml\"\nanonymous_home = \"/srv/pub\"\n", []string{"auth.anonymous_home"}},

		{"unknown store", withoutAuth + "\n[auth]\nstore = \"ldap\"\n", []string{"auth.store", `"ldap"`}},
		{"unknown outbox", minimal + "\n[events]\noutbox = \"redis\"\n", []string{"events.outbox", `"redis"`}},
		{"postgres outbox without postgres users", minimal + "\n[events]\noutbox = \"postgres\"\n", []string{"events.outbox", "auth.store"}},
		{"hook without url", withoutAuth + "\n[auth]\nstore = \"http\"\n[auth.http]\ntimeout = \"1s\"\n", []string{"auth.http.url", "required"}},
		{"hook url not http", withoutAuth + "\n[auth]\nstore = \"http\"\n[auth.http]\nurl = \"ftp://x/y\"\n", []string{"auth.http.url", "ftp://x/y"}},
		{"hook and users file", withoutAuth + "\n[auth]\nstore = \"http\"\nusers_file = \"u.toml\"\n[auth.http]\nurl = \"http://h/\"\n", []string{"auth.users_file", "not read"}},
		{"hook short secret", withoutAuth + "\n[auth]\nstore = \"http\"\n[auth.http]\nurl = \"http://h/\"\nsecret = \"short\"\n", []string{"auth.http.secret"}},
		{"hook negative cache", withoutAuth + "\n[auth]\nstore = \"http\"\n[auth.http]\nurl = \"http://h/\"\ncache_ttl = \"-1s\"\n", []string{"auth.http.cache_ttl"}},
		{"hook negative timeout", withoutAuth + "\n[auth]\nstore = \"http\"\n[auth.http]\nurl = \"http://h/\"\ntimeout = \"-1s\"\n", []string{"auth.http.timeout"}},
		{"hook relative root", withoutAuth + "\n[auth]\nstore = \"http\"\n[auth.http]\nurl = \"http://h/\"\nhome_directory_root = \"bucket\"\n", []string{"auth.http.home_directory_root"}},
		{"hook unknown key", withoutAuth + "\n[auth]\nstore = \"http\"\n[auth.http]\nurl = \"http://h/\"\nttl = \"1s\"\n", []string{"auth.http.ttl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.toml))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want an error containing %q", c, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestParseNegativeLimitsNameKey: the package promises that errors name the
// offending key by its full name; negative session limits get one message
// for three keys.
func TestParseNegativeLimitsNameKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"max_sessions", "max_sessions_per_ip", "max_login_failures", "max_commands_per_second", "command_burst"} {
		_, err := Parse([]byte("[server]\n" + key + " = -1\n" + minimal))
		if err == nil {
			t.Errorf("%s = -1 accepted", key)
			continue
		}
		if !strings.Contains(err.Error(), "server."+key) {
			t.Errorf("%s = -1: error %q does not name server.%s", key, err, key)
		}
	}
}

func TestPassiveRangeOverlap(t *testing.T) {
	t.Parallel()
	two := func(addrA, rangeA, addrB, rangeB string) string {
		return "[[listener]]\naddress = \"" + addrA + "\"\npassive_ports = \"" + rangeA + "\"\n" +
			"[[listener]]\naddress = \"" + addrB + "\"\npassive_ports = \"" + rangeB + "\"\n" + storageOnly
	}
	tests := []struct {
		name    string
		toml    string
		wantErr bool
	}{
		{"same unspecified address", two("0.0.0.0:21", "50000-50100", "0.0.0.0:2121", "50100-50200"), true},
		{"same specific address", two("10.0.0.5:21", "50000-50100", "10.0.0.5:2121", "50050-50060"), true},
		{"contained range", two("10.0.0.5:21", "50000-50100", "10.0.0.5:2121", "49000-51000"), true},
		{"specific and unspecified", two("10.0.0.5:21", "50000-50100", "0.0.0.0:2121", "50000-50100"), true},
		{"unspecified and specific", two("0.0.0.0:21", "50000-50100", "10.0.0.5:2121", "50000-50100"), true},
		{"ipv6 any and ipv4 any", two(":21", "50000-50100", "0.0.0.0:2121", "50000-50100"), true},
		{"[::] and specific", two("[::]:21", "50000-50100", "10.0.0.6:2121", "50000-50100"), true},
		{"different specific addresses", two("10.0.0.5:21", "50000-50100", "10.0.0.6:21", "50000-50100"), false},
		{"different families", two("10.0.0.5:21", "50000-50100", "[2001:db8::5]:21", "50000-50100"), false},
		{"adjacent ranges", two("0.0.0.0:21", "50000-50100", "0.0.0.0:2121", "50101-50200"), false},
		{"disjoint ranges", two("0.0.0.0:21", "50000-50100", "0.0.0.0:2121", "40000-40100"), false},
		{"one without range", "[[listener]]\naddress = \"0.0.0.0:21\"\npassive_ports = \"50000-50100\"\n[[listener]]\naddress = \"0.0.0.0:2121\"\n" + storageOnly, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.toml))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("overlapping passive ranges accepted")
			}
			for _, w := range []string{"listener[1].passive_ports", "overlaps listener[0].passive_ports"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// Only the later listener is blamed, with both values quoted.
	_, err := Parse([]byte("[[listener]]\naddress = \":21\"\n" +
		"[[listener]]\naddress = \"0.0.0.0:22\"\npassive_ports = \"50000-50100\"\n" +
		"[[listener]]\naddress = \"0.0.0.0:23\"\npassive_ports = \"50050-50150\"\n" + storageOnly))
	if err == nil || !strings.Contains(err.Error(), `listener[2].passive_ports: "50050-50150" overlaps listener[1].passive_ports "50000-50100"`) {
		t.Fatalf("three listeners: %v", err)
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default("demo-users.toml")
	if len(c.Listeners) != 1 {
		t.Fatalf("%d listeners", len(c.Listeners))
	}
	l := &c.Listeners[0]
	if ap := l.AddrPort(); ap.Port() != 2121 || !ap.Addr().IsUnspecified() {
		t.Errorf("default listener on %v, want :2121 on every address", ap)
	}
	if l.Address != ":2121" || l.TLS != TLSOff {
		t.Errorf("default listener %q tls %q", l.Address, l.TLS)
	}
	if c.Storage.Backend != "local" || c.Storage.Root != "cloudftpd-data" {
		t.Errorf("default storage %+v", c.Storage)
	}
	if c.Server.IdleTimeout.D() != 5*time.Minute || c.Server.Banner == "" {
		t.Errorf("defaults not applied: %+v", c.Server)
	}
	// Validate again: it must be repeatable (a reload re-validates).
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate(): %v", err)
	}
	if l.AddrPort().Port() != 2121 {
		t.Errorf("second Validate changed the address to %v", l.AddrPort())
	}
}

func TestValidateRepeatable(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(fullConfig))
	if err != nil {
		t.Fatal(err)
	}
	before := len(c.Listeners[0].Passive[0].ClientPrefixes())
	trusted := len(c.Listeners[0].TrustedProxies())
	for i := 0; i < 3; i++ {
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate #%d: %v", i+2, err)
		}
	}
	if got := len(c.Listeners[0].Passive[0].ClientPrefixes()); got != before {
		t.Errorf("ClientPrefixes grew from %d to %d over repeated Validate", before, got)
	}
	if got := len(c.Listeners[0].TrustedProxies()); got != trusted {
		t.Errorf("TrustedProxies grew from %d to %d over repeated Validate", trusted, got)
	}
}

func writeConfig(t *testing.T, dir, name, body string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadResolvesDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "etc", "cloudftpd")
	p := writeConfig(t, dir, "cloudftpd.toml", minimal)
	c, err := Load(p)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Dir != dir || c.File != p {
		t.Fatalf("Dir = %q, File = %q; want %q, %q", c.Dir, c.File, dir, p)
	}
	for _, tc := range []struct{ in, want string }{
		{"users.toml", filepath.Join(dir, "users.toml")},
		{"tls/cert.pem", filepath.Join(dir, "tls", "cert.pem")},
		{"../data", filepath.Join(filepath.Dir(dir), "data")},
		{"./x", filepath.Join(dir, "x")},
		{"/etc/ssl/cert.pem", "/etc/ssl/cert.pem"},
		{"", ""},
	} {
		if got := c.Path(tc.in); got != tc.want {
			t.Errorf("Path(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := c.Path(c.Auth.UsersFile); got != filepath.Join(dir, "users.toml") {
		t.Errorf("users file resolves to %q", got)
	}
}

// TestLoadRelativePath is not parallel: it changes the working directory.
func TestLoadRelativePath(t *testing.T) {
	base := t.TempDir()
	writeConfig(t, filepath.Join(base, "conf"), "c.toml", minimal)
	t.Chdir(base)
	c, err := Load(filepath.Join("conf", "c.toml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := filepath.Join(base, "conf")
	if c.Dir != want || !filepath.IsAbs(c.Dir) {
		t.Fatalf("Dir = %q, want the absolute %q", c.Dir, want)
	}
	if got := c.Path("users.toml"); got != filepath.Join(want, "users.toml") {
		t.Fatalf("Path = %q", got)
	}
	// A file in the working directory itself.
	writeConfig(t, base, "here.toml", minimal)
	c, err = Load("here.toml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Dir != base {
		t.Fatalf("Dir = %q, want %q", c.Dir, base)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.toml")
	_, err := Load(missing)
	if err == nil || !strings.HasPrefix(err.Error(), "config:") || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load(missing): %v", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing): %v does not wrap fs.ErrNotExist", err)
	}
	bad := writeConfig(t, dir, "bad.toml", "[[listener]]\naddress = \"127.0.0.1:21\"\npassive_ports = \"900-800\"\n"+storageOnly)
	_, err = Load(bad)
	if err == nil {
		t.Fatal("Load of an invalid file succeeded")
	}
	for _, w := range []string{bad, "listener[0].passive_ports", "min 900 > max 800"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// TestPolicies: every setting that can be off, optional or required
// resolves to one Policy, defaults included, the same way whether the
// config came from a file or was changed in code and validated again.
func TestPolicies(t *testing.T) {
	t.Parallel()
	tlsListener := func(mode, extra string) string {
		return "[[listener]]\naddress = \"127.0.0.1:2121\"\ntls = \"" + mode + "\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n" + extra + storageOnly
	}
	type want struct{ control, data, reuse Policy }
	for _, tc := range []struct {
		name string
		toml string
		want want
	}{
		{"off", minimal, want{PolicyOff, PolicyOff, PolicyOff}},
		{"off with the reference's values", "[[listener]]\naddress = \":21\"\ntls = \"off\"\ntls_data = \"optional\"\ntls_session_reuse = \"required\"\n" + storageOnly,
			want{PolicyOff, PolicyOff, PolicyOff}},
		{"explicit", tlsListener("explicit", ""), want{PolicyOptional, PolicyOptional, PolicyRequired}},
		{"explicit, data required", tlsListener("explicit", "tls_data = \"required\"\n"), want{PolicyOptional, PolicyRequired, PolicyRequired}},
		{"required", tlsListener("required", ""), want{PolicyRequired, PolicyRequired, PolicyRequired}},
		{"required, data optional, reuse optional", tlsListener("required", "tls_data = \"optional\"\ntls_session_reuse = \"optional\"\n"),
			want{PolicyRequired, PolicyOptional, PolicyOptional}},
		{"implicit", tlsListener("implicit", ""), want{PolicyRequired, PolicyRequired, PolicyRequired}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.toml))
			if err != nil {
				t.Fatal(err)
			}
			l := &c.Listeners[0]
			if got := (want{l.ControlTLS(), l.DataTLS(), l.SessionReuse()}); got != tc.want {
				t.Errorf("control, data, reuse = %v, want %v", got, tc.want)
			}
		})
	}

	// A default derived from tls follows a later change of tls.
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	l := &c.Listeners[0]
	l.TLS, l.TLSCert, l.TLSKey = TLSImplicit, "c.pem", "k.pem"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if l.DataTLS() != PolicyRequired || l.SessionReuse() != PolicyRequired {
		t.Errorf("after tls = implicit in code: data %q, reuse %q; want required", l.DataTLS(), l.SessionReuse())
	}

	// Anonymous only: no users file, and anonymous logins required.
	c, err = Parse([]byte(withoutAuth + "[auth]\nanonymous = true\n"))
	if err != nil {
		t.Fatalf("anonymous-only config: %v", err)
	}
	if c.Auth.UsersFilePolicy() != PolicyOff || c.Auth.AnonymousPolicy() != PolicyRequired {
		t.Errorf("anonymous only: users file %q, anonymous %q", c.Auth.UsersFilePolicy(), c.Auth.AnonymousPolicy())
	}

	var p Policy
	if err := p.UnmarshalText([]byte("sometimes")); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Errorf("Policy.UnmarshalText(sometimes): %v", err)
	}
}

func TestParseRetention(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Retention.Interval.D() != time.Hour || c.Retention.MaxFiles != DefaultRetentionMaxFiles {
		t.Errorf("retention defaults = %+v, want 1h and %d", c.Retention, DefaultRetentionMaxFiles)
	}
	c, err = Parse([]byte("[retention]\ninterval = \"10m\"\nmax_files = 500\n" + minimal))
	if err != nil || c.Retention.Interval.D() != 10*time.Minute || c.Retention.MaxFiles != 500 {
		t.Errorf("retention = %+v, %v; want 10m and 500", c.Retention, err)
	}
	for _, tc := range []struct{ text, key string }{
		{"interval = \"-1m\"", "retention.interval"},
		{"max_files = -1", "retention.max_files"},
		{"intervall = \"1h\"", "intervall"},
	} {
		_, err := Parse([]byte("[retention]\n" + tc.text + "\n" + minimal))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %s", tc.text, err, tc.key)
		}
	}
}

// TestTransferLimitKeys: listener bandwidth limits are sizes (0 limits
// nothing); command pacing defaults on, can be turned off with 0, and its
// burst defaults to one second's worth.
func TestTransferLimitKeys(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listeners[0]; l.UploadRate != 0 || l.DownloadRate != 0 {
		t.Errorf("default listener rates %d/%d, want 0 (none)", l.UploadRate, l.DownloadRate)
	}
	if r, b := c.Server.CommandRate(); r != DefaultCommandRate || b != DefaultCommandRate {
		t.Errorf("default command rate %d burst %d, want %d and %d", r, b, DefaultCommandRate, DefaultCommandRate)
	}

	c, err = Parse([]byte("[server]\nmax_commands_per_second = 0\n" + listenerWith("upload_rate = \"10MiB\"\ndownload_rate = 500000")))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listeners[0]; l.UploadRate != 10<<20 || l.DownloadRate != 500000 {
		t.Errorf("listener rates %d/%d, want 10MiB/500000", l.UploadRate, l.DownloadRate)
	}
	if r, _ := c.Server.CommandRate(); r != 0 {
		t.Errorf("max_commands_per_second = 0 gives %d, want 0 (off)", r)
	}

	c, err = Parse([]byte("[server]\nmax_commands_per_second = 50\ncommand_burst = 7\n" + minimal))
	if err != nil {
		t.Fatal(err)
	}
	if r, b := c.Server.CommandRate(); r != 50 || b != 7 {
		t.Errorf("command rate %d burst %d, want 50 and 7", r, b)
	}

	for _, bad := range []string{`upload_rate = "fast"`, `download_rate = -1`} {
		_, err := Parse([]byte(listenerWith(bad)))
		if err == nil || !strings.Contains(err.Error(), "listener[0].") {
			t.Errorf("%s: error %v, want one naming listener[0]", bad, err)
		}
	}
}

func listenerWith(extra string) string {
	return "[[listener]]\naddress = \"127.0.0.1:2121\"\n" + extra + "\n" + storageOnly
}

// TestSharedOutbox: the outbox is in PostgreSQL with auth.store =
// "postgres" unless events.outbox says local, and never without it.
func TestSharedOutbox(t *testing.T) {
	t.Parallel()
	pg := withoutAuth + "\n[auth]\nstore = \"postgres\"\n[auth.postgres]\ndsn = \"postgres://cloudftpd@db.example/cloudftpd\"\n"
	for _, tc := range []struct {
		name, toml string
		want       bool
	}{
		{"users file", minimal, false},
		{"users file, local", minimal + "\n[events]\noutbox = \"local\"\n", false},
		{"postgres users", pg, true},
		{"postgres users, auto", pg + "\n[events]\noutbox = \"auto\"\n", true},
		{"postgres users, local", pg + "\n[events]\noutbox = \"local\"\n", false},
		{"postgres users, postgres", pg + "\n[events]\noutbox = \"postgres\"\nlease = \"30s\"\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.toml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.SharedOutbox(); got != tc.want {
				t.Errorf("SharedOutbox() = %v, want %v", got, tc.want)
			}
		})
	}
}
