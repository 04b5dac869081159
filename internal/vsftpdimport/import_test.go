package vsftpdimport

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy/imdstest"
	"github.com/cloudftpd/cloudftpd/internal/server"
	"github.com/cloudftpd/cloudftpd/internal/vsftpdconf"
)

func parseFiles(t *testing.T, names ...string) []*vsftpdconf.File {
	t.Helper()
	var out []*vsftpdconf.File
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vsftpdconf.Parse(n, data))
	}
	return out
}

func mustImport(t *testing.T, opt Options, names ...string) *Result {
	t.Helper()
	res, err := Import(parseFiles(t, names...), opt)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Report.Errors(); n > 0 {
		t.Fatalf("%d errors:\n%s", n, reportText(res.Report))
	}
	for _, it := range res.Report {
		if strings.Contains(it.Text, "no rule for this option") {
			t.Errorf("%s %s: no outcome", it.Pos, it.Directive)
		}
	}
	return res
}

func reportText(r Report) string {
	var b strings.Builder
	_ = r.Write(&b, "")
	return b.String()
}

// checkConfig writes the result to a directory and checks it as
// "cloudftpd check-config" does: config.Load, then server.Wire, which
// loads the users file and certificates, opens the storage and discovers
// passive addresses. Paths of this machine that the test must not touch
// (the storage root, certificates) are moved into the test's directory
// after Load, which is where the file's own validation happened.
func checkConfig(t *testing.T, res *Result, adjust func(c *config.Config)) *config.Config {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "cloudftpd.toml")
	if err := os.WriteFile(cfgPath, res.Config, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.toml"), res.Users, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("generated config does not load: %v\n%s", err, res.Config)
	}
	cfg.Storage.Root = filepath.Join(dir, "data")
	if cfg.Auth.Store == config.StoreSystem {
		// The machine's own account files may not be readable here
		// (not root): wire against a small pair of them.
		passwd, shadow := filepath.Join(dir, "passwd"), filepath.Join(dir, "shadow")
		os.WriteFile(passwd, []byte("alice:x:1000:1000::"+filepath.Join(cfg.Storage.Root, "alice")+":/bin/sh\n"), 0o644)
		os.WriteFile(shadow, []byte("alice:!:19000:0:99999:7:::\n"), 0o600)
		cfg.Auth.System.PasswdFile, cfg.Auth.System.ShadowFile = passwd, shadow
		if cfg.Auth.System.UserlistFile != "" {
			ul := filepath.Join(dir, "user_list")
			os.WriteFile(ul, []byte("root\n"), 0o644)
			cfg.Auth.System.UserlistFile = ul
		}
	}
	if adjust != nil {
		adjust(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := server.Wire(ctx, cfg, server.Options{})
	if err != nil {
		t.Fatalf("check-config would fail: %v\n%s", err, res.Config)
	}
	w.Close()
	return cfg
}

func rules(l config.Listener) [][2]string {
	var out [][2]string
	for _, r := range l.Passive {
		out = append(out, [2]string{strings.Join(r.Clients, ","), r.Address})
	}
	return out
}

func TestTwoFileLayout(t *testing.T) {
	files := []string{"testdata/twofile/vsftpd.global.conf", "testdata/twofile/vsftpd.local.conf"}
	private := strings.Join(PrivateNetworks, ",")
	tests := []struct {
		name      string
		opt       Options
		addresses []string
		rules     [][][2]string
	}{
		{"per-file", Options{},
			[]string{"10.0.1.10:21", "10.0.2.10:21"},
			[][][2]string{{{"0.0.0.0/0", "198.51.100.10"}}, nil}},
		{"merge", Options{Merge: true},
			[]string{"0.0.0.0:21"},
			[][][2]string{{{private, "control"}, {"0.0.0.0/0", "198.51.100.10"}}}},
		{"merge-discover", Options{Merge: true, Discover: true},
			[]string{"0.0.0.0:21"},
			[][][2]string{{{private, "control"}, {"0.0.0.0/0", "aws"}}}},
		{"discover", Options{Discover: true},
			[]string{"10.0.1.10:21", "10.0.2.10:21"},
			[][][2]string{{{"0.0.0.0/0", "aws"}}, nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := mustImport(t, tc.opt, files...)
			if tc.opt.Discover {
				// "aws" is discovered by Wire: a stand-in metadata service
				// with the instance's two interfaces.
				md := imdstest.NewServer(t, imdstest.Meta("198.51.100.10",
					imdstest.ENI{MAC: "0a:00:00:00:00:01", Associations: map[string]string{"198.51.100.10": "10.0.1.10"}},
					imdstest.ENI{MAC: "0a:00:00:00:00:02"},
				))
				t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", md.URL)
			}
			cfg := checkConfig(t, res, nil)
			var got []string
			for _, l := range cfg.Listeners {
				got = append(got, l.Address)
			}
			if !slices.Equal(got, tc.addresses) {
				t.Fatalf("listeners %v, want %v\n%s", got, tc.addresses, res.Config)
			}
			for i, l := range cfg.Listeners {
				if g := rules(l); !slices.Equal(g, tc.rules[i]) {
					t.Errorf("listener[%d] rules %v, want %v", i, g, tc.rules[i])
				}
				if l.PassivePorts != "50000-50100" {
					t.Errorf("listener[%d] passive_ports %q", i, l.PassivePorts)
				}
			}
			// One process: the two limits of 100 and 50 sessions add up.
			if cfg.Server.MaxSessions != 150 || cfg.Server.MaxSessionsPerIP != 10 {
				t.Errorf("max_sessions %d, max_sessions_per_ip %d", cfg.Server.MaxSessions, cfg.Server.MaxSessionsPerIP)
			}
			if cfg.Server.IdleTimeout.D() != 10*time.Minute || cfg.Server.StallTimeout.D() != 2*time.Minute {
				t.Errorf("idle %v, stall %v", cfg.Server.IdleTimeout.D(), cfg.Server.StallTimeout.D())
			}
			var sinks []string
			for _, s := range cfg.Events.Sinks {
				sinks = append(sinks, string(s.Kind)+" "+s.Path)
			}
			// One process, one xferlog, with every listener's transfers.
			if want := []string{"xferlog /var/log/vsftpd-global.xferlog"}; !slices.Equal(sinks, want) {
				t.Errorf("sinks %v, want %v", sinks, want)
			}
			if !hasItem(res.Report, "vsftpd.local.conf", "xferlog sink", Note, "/var/log/vsftpd-local.xferlog is no longer written") {
				t.Errorf("dropped xferlog not reported:\n%s", reportText(res.Report))
			}
			// The report is in the file as comments, and names lines.
			for _, s := range []string{"# mapped      testdata/twofile/vsftpd.global.conf:13  pasv_address=198.51.100.10", "# not needed  testdata/twofile/vsftpd.local.conf:24  seccomp_sandbox=NO"} {
				if !strings.Contains(string(res.Config), s) {
					t.Errorf("config lacks report line %q\n%s", s, res.Config)
				}
			}
			if !hasItem(res.Report, "", "local_enable", Mapped, "auth.store = \"system\"") || cfg.Auth.Store != config.StoreSystem {
				t.Errorf("local users not mapped to the system store (store %q):\n%s", cfg.Auth.Store, reportText(res.Report))
			}
		})
	}
}

func hasItem(r Report, pos, directive string, st Status, text string) bool {
	return slices.ContainsFunc(r, func(it Item) bool {
		return strings.Contains(it.Pos, pos) && strings.HasPrefix(it.Directive, directive) && it.Status == st && strings.Contains(it.Text, text)
	})
}

func TestDebianStock(t *testing.T) {
	res := mustImport(t, Options{}, "testdata/debian/vsftpd.conf")
	cfg := checkConfig(t, res, nil)
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Address != "[::]:21" || cfg.Listeners[0].TLS != config.TLSOff {
		t.Fatalf("listeners %+v", cfg.Listeners)
	}
	if cfg.Auth.Anonymous {
		t.Error("anonymous logins on; Debian's config has anonymous_enable=NO")
	}
	for _, c := range []struct {
		pos, directive string
		st             Status
		text           string
	}{
		{":14", "listen=NO", NotNeeded, "IPv4"},
		{":22", "listen_ipv6=YES", Mapped, "[::]:21"},
		{":48", "dirmessage_enable=YES", Unsupported, "banner"},
		{":60", "connect_from_port_20=YES", NotNeeded, "ephemeral"},
		{":145", "pam_service_name=vsftpd", Unsupported, "/etc/shadow"},
		{":151", "ssl_enable=NO", Mapped, "tls = \"off\""},
		{"", "local_enable", Mapped, "auth.store = \"system\""},
	} {
		if !hasItem(res.Report, c.pos, c.directive, c.st, c.text) {
			t.Errorf("no %s item %s %s ~ %q in\n%s", c.st, c.pos, c.directive, c.text, reportText(res.Report))
		}
	}
}

func TestVirtualUsers(t *testing.T) {
	res := mustImport(t, Options{Root: "testdata/virtual/root"}, "testdata/virtual/vsftpd.conf")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := certs.SelfSigned([]string{"localhost"}, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	cfg := checkConfig(t, res, func(c *config.Config) {
		c.Listeners[0].TLSCert, c.Listeners[0].TLSKey = cert, key
	})
	if cfg.Storage.Root == "" || !strings.Contains(string(res.Config), `root = "/srv/ftp/virtual"`) {
		t.Errorf("storage root not the homes' common directory:\n%s", res.Config)
	}
	l := cfg.Listeners[0]
	if l.TLS != config.TLSRequired || l.DataTLS() != config.PolicyOptional || l.PassivePorts != "40000-40049" {
		t.Errorf("listener tls %q data %q ports %q", l.TLS, l.DataTLS(), l.PassivePorts)
	}
	f, err := auth.LoadUsersFile(filepath.Join(filepath.Dir(cfg.File), "users.toml"))
	if err != nil {
		t.Fatal(err)
	}
	users := f.Users()
	if len(users) != 2 {
		t.Fatalf("%d users, want alice and bob:\n%s", len(users), res.Users)
	}
	alice, bob := users[0], users[1]
	if alice.Name != "alice" || alice.Home != "alice" || !slices.Equal(alice.Permissions, []string{"list", "download", "upload", "overwrite", "delete", "rename", "mkdir", "chmod"}) {
		t.Errorf("alice %+v", alice)
	}
	if alice.UploadRate != 512<<10 || alice.DownloadRate != 512<<10 {
		t.Errorf("alice's rates %d/%d, want the per-user local_max_rate", alice.UploadRate, alice.DownloadRate)
	}
	if !slices.Equal(alice.DeniedPatterns, []string{"*.exe", "*.bat"}) {
		t.Errorf("alice's denied_patterns %v", alice.DeniedPatterns)
	}
	if bob.Name != "bob" || bob.Home != "shared" || !slices.Equal(bob.Permissions, []string{"list", "download"}) || bob.UploadRate != 1<<20 {
		t.Errorf("bob %+v", bob)
	}
	for _, u := range users {
		if !u.Disabled {
			t.Errorf("%s is not disabled: a user with a password nobody chose must not be usable", u.Name)
		}
	}
	// Nobody can log in as an imported user until a password is set.
	a := auth.NewFileAuthenticator(f, auth.Options{})
	if _, err := a.Authenticate(context.Background(), "alice", ""); err == nil {
		t.Error("alice logged in with an empty password")
	}
	for _, c := range []struct {
		pos, directive string
		st             Status
		text           string
	}{
		{"users/bob:4", "idle_session_timeout=60", Unsupported, "per user"},
		{"users/bob", "user bob", Mapped, "permissions list,download"},
		{"vsftpd.conf:27", "hide_file", Unsupported, "listings"},
		{"vsftpd.conf:6", "guest_enable=YES", Mapped, "2 users.toml"},
	} {
		if !hasItem(res.Report, c.pos, c.directive, c.st, c.text) {
			t.Errorf("no %s item %s %s ~ %q in\n%s", c.st, c.pos, c.directive, c.text, reportText(res.Report))
		}
	}
}

// TestEveryOption imports a file that sets each option vsftpdconf knows:
// each gets an outcome with a reason, none is left without a rule.
func TestEveryOption(t *testing.T) {
	values := map[string]string{
		"listen_address": "10.0.0.1", "listen_address6": "::1", "pasv_address": "198.51.100.1",
		"listen_port": "21", "pasv_min_port": "50000", "pasv_max_port": "50010",
	}
	for _, name := range vsftpdconf.Names() {
		typ, _ := vsftpdconf.Known(name)
		v := values[name]
		if v == "" {
			v = map[vsftpdconf.Type]string{vsftpdconf.Bool: "YES", vsftpdconf.Num: "7", vsftpdconf.Str: "/x"}[typ]
		}
		if name == "listen" {
			v = "NO" // with listen_ipv6=YES vsftpd refuses both
		}
		for _, base := range []string{"ssl_enable=NO\n", "ssl_enable=YES\nlocal_enable=YES\nguest_enable=YES\nanonymous_enable=YES\nxferlog_enable=YES\n"} {
			data := base + name + "=" + v + "\n"
			f := vsftpdconf.Parse("t.conf", []byte(data))
			if len(f.Errors) > 0 {
				t.Fatalf("%s: %v", name, f.Errors[0])
			}
			res, err := Import([]*vsftpdconf.File{f}, Options{Root: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(res.Report, func(it Item) bool { return it.Pos == "t.conf:"+strconv.Itoa(strings.Count(base, "\n")+1) })
			if i < 0 {
				t.Fatalf("%s: no report item for its line:\n%s", name, reportText(res.Report))
			}
			it := res.Report[i]
			if it.Text == "" || strings.Contains(it.Text, "no rule") || it.Status == Invalid {
				t.Errorf("%s=%s (after %q): %s %q", name, v, base, it.Status, it.Text)
			}
		}
	}
}

func TestErrorsNamed(t *testing.T) {
	f := vsftpdconf.Parse("bad.conf", []byte("listen=YES\nlisten_prot=21\nanonymous_enable=maybe\npasv_address=ftp.example.com\n"))
	res, err := Import([]*vsftpdconf.File{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Config != nil || res.Users != nil {
		t.Error("files generated from a config with errors")
	}
	for _, c := range []struct{ pos, text string }{
		{"bad.conf:2", `unknown option "listen_prot"`},
		{"bad.conf:3", "not a boolean"},
		{"bad.conf:4", "pasv_addr_resolve=YES"},
	} {
		if !hasItem(res.Report, c.pos, "", Invalid, c.text) {
			t.Errorf("no error at %s ~ %q:\n%s", c.pos, c.text, reportText(res.Report))
		}
	}
}

// TestLocalUsersSystemStore: local_enable=YES becomes auth.store =
// "system" with the main config's permissions, passwd homes below
// storage.root = "/home", and userlist_enable/userlist_deny/userlist_file
// as the store's userlist; no users.toml entry is made for the accounts.
func TestLocalUsersSystemStore(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/vsftpd.user_list"), []byte("alice\nbob\n"), 0o644)
	conf := filepath.Join(t.TempDir(), "vsftpd.conf")
	os.WriteFile(conf, []byte("listen=YES\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\nuserlist_enable=YES\nuserlist_deny=NO\nuserlist_file=/etc/vsftpd.user_list\n"), 0o644)
	res := mustImport(t, Options{Root: root}, conf)
	cfg := checkConfig(t, res, nil)
	s := cfg.Auth.System
	if cfg.Auth.Store != config.StoreSystem || cfg.Auth.UsersFile != "" || s.Home != config.HomePasswd ||
		s.UserlistFile == "" || s.DenyUserlist() || !slices.Contains(s.Permissions, "upload") {
		t.Errorf("auth %+v\n%s", cfg.Auth, res.Config)
	}
	if !strings.Contains(string(res.Config), "root = \"/home\"") {
		t.Errorf("storage.root is not /home:\n%s", res.Config)
	}
	if strings.Contains(string(res.Users), "[[user]]") {
		t.Errorf("system accounts written to users.toml:\n%s", res.Users)
	}
	if !hasItem(res.Report, "", "user alice", Mapped, "own password") {
		t.Errorf("alice not reported as a system account:\n%s", reportText(res.Report))
	}
}
