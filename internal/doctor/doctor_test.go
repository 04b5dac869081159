package doctor_test

// cloudftpd doctor's checks (doctor.Diagnose) against configs that are
// valid but fail their clients, on this machine or on a pretended one
// (LocalAddrs) with the addresses of an EC2 instance.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/diag/diagtest"
	"github.com/cloudftpd/cloudftpd/internal/doctor"
	"github.com/cloudftpd/cloudftpd/internal/firewall/ec2test"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy/imdstest"
	"github.com/cloudftpd/cloudftpd/internal/s3test"
)

// ec2Addrs is an EC2 instance's view of itself: a private address only.
func ec2Addrs() ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.1.5")}, nil
}

// doctorConfig is a valid config with one listener on a free loopback port
// (or on listen), a users file with one user, and local storage; extra is
// appended inside the listener.
func doctorConfig(t *testing.T, listen, extra string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	uf := &auth.UsersFile{}
	if err := uf.Add("alice", hashFor(t, "alice-secret"), "alice", mustPerms(t, "all")); err != nil {
		t.Fatal(err)
	}
	if err := uf.Save(filepath.Join(dir, "users.toml")); err != nil {
		t.Fatal(err)
	}
	if listen == "" {
		listen = clienttest.FreeAddr(t)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
[[listener]]
address = %q
%s
[storage]
root = %q
[auth]
users_file = %q
`, listen, extra, filepath.Join(dir, "data"), filepath.Join(dir, "users.toml"))))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func diagnose(t *testing.T, cfg *config.Config, localAddrs func() ([]netip.Addr, error)) []diag.Check {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checks := doctor.Diagnose(ctx, cfg, doctor.Options{LocalAddrs: localAddrs})
	var b strings.Builder
	diag.Write(&b, "doctor", checks)
	t.Logf("\n%s", b.String())
	return checks
}

func TestDoctorHealthy(t *testing.T) {
	cfg := doctorConfig(t, "", "")
	checks := diagnose(t, cfg, nil)
	diagtest.Want(t, checks, "users", diag.OK, "1 in ")
	diagtest.Want(t, checks, "storage", diag.OK, "readable and writable")
	diagtest.Want(t, checks, "listener[0]", diag.OK, "free to listen on")
	diagtest.Want(t, checks, "listener[0] passive ports", diag.Warn, "passive_ports is not set")
	diagtest.Want(t, checks, "listener[0] PASV", diag.OK, "loopback only")
	if diag.Failed(checks) {
		t.Error("a healthy config failed")
	}
	if ents, _ := os.ReadDir(cfg.Path(cfg.Storage.Root)); len(ents) != 0 {
		t.Errorf("the storage check left %d entries behind", len(ents))
	}
}

// The mission's failure, found before any client: an instance with only a
// private address, listening on all addresses, without passive rules.
// TestDoctorPublicPort: a listener reached through a port mapping says
// which port its clients use.
func TestDoctorPublicPort(t *testing.T) {
	cfg := doctorConfig(t, "", "public_port = 21\n")
	checks := diagnose(t, cfg, ec2Addrs)
	diagtest.Want(t, checks, "listener[0]", diag.OK, "clients connect to port 21 (public_port)")
}

func TestDoctorPASVBehindNAT(t *testing.T) {
	imds := imdstest.NewServer(t, imdstest.Meta("", imdstest.ENI{
		MAC:          "0a:00:00:00:00:01",
		Associations: map[string]string{"198.51.100.10": "10.0.1.5"},
	}))
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	const vpnControl = `
  [[listener.passive]]
  clients = ["10.0.0.0/8"]
  address = "control"
`
	port := func(t *testing.T) string { _, p, _ := net.SplitHostPort(clienttest.FreeAddr(t)); return "0.0.0.0:" + p }
	tests := []struct {
		name  string
		rules string
		want  diag.Status
		subs  []string
	}{
		{"no rules", "", diag.Warn, []string{
			"other clients (no rule matches), connecting to 10.0.1.5: PASV names 10.0.1.5",
			"private address 10.0.1.5", `address = "aws"`}},
		{"literal", vpnControl + `
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "198.51.100.10"
`, diag.OK, []string{
			`clients in 10.0.0.0/8 (rule 0, address = "control"), connecting to 10.0.1.5: PASV names 10.0.1.5`,
			`clients in 0.0.0.0/0 (rule 1, address = "198.51.100.10"), connecting to 10.0.1.5: PASV names 198.51.100.10`}},
		{"aws", vpnControl + `
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "aws"
`, diag.OK, []string{`(rule 1, address = "aws"), connecting to 10.0.1.5: PASV names 198.51.100.10`}},
		{"a rule sending a private address to everyone", `
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "192.168.7.7"
`, diag.Warn, []string{"private address 192.168.7.7"}},
		{"a catch-all before a narrower rule", `
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "198.51.100.10"
` + vpnControl, diag.Warn, []string{"rule 1, address = \"control\"), but rule 0 matches them first",
			"rule 1 never applies", "list narrow ranges"}},
		{"overlapping rules", `
  [[listener.passive]]
  clients = ["10.0.0.0/16"]
  address = "control"

  [[listener.passive]]
  clients = ["10.0.0.0/8"]
  address = "198.51.100.10"
`, diag.Warn, []string{"(rule 1, address = \"198.51.100.10\"), of which 10.0.0.1 matches rule 0 first"}},
		{"mapped passive ports", `passive_ports = "50000-50009"
` + vpnControl + `
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "198.51.100.10"
  ports = "30000-30009"
`, diag.OK, []string{
			`(rule 0, address = "control"), connecting to 10.0.1.5: PASV names 10.0.1.5` + "\n",
			`(rule 1, address = "198.51.100.10"), connecting to 10.0.1.5: PASV names 198.51.100.10 and ports 30000-30009 (mapped to the bound 50000-50009`}},
		{"partner network only", `
  [[listener.passive]]
  clients = ["203.0.113.0/24"]
  address = "198.51.100.10"
`, diag.OK, []string{"clients in 203.0.113.0/24 (rule 0", "PASV names 198.51.100.10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := doctorConfig(t, port(t), tt.rules)
			checks := diagnose(t, cfg, ec2Addrs)
			diagtest.Want(t, checks, "listener[0] PASV", tt.want, tt.subs...)
		})
	}
}

func TestDoctorFailures(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, cfg *config.Config)
		step   string
		want   diag.Status
		subs   []string
	}{
		{"control port in use", func(t *testing.T, cfg *config.Config) {
			ln, err := net.Listen("tcp", cfg.Listeners[0].Address)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}, "listener[0]", diag.Warn, []string{": in use", "ss -ltnp"}},
		{"passive port in use", func(t *testing.T, cfg *config.Config) {
			cfg.Listeners[0].PassivePorts = clienttest.FreeRange(t, 2)
			mustValidate(t, cfg)
			lo, _, _ := cfg.Listeners[0].PortRange()
			ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", lo))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}, "listener[0] passive ports", diag.Warn, []string{"1 of 2 ports in use"}},
		{"address not on this machine", func(t *testing.T, cfg *config.Config) {
			cfg.Listeners[0].Address = "198.51.100.77:2121"
			cfg.Listeners[0].PassivePorts = "50000-50001"
			mustValidate(t, cfg)
		}, "listener[0]", diag.Fail, []string{"no such address", "belongs in a passive rule"}},
		{"metrics port in use", func(t *testing.T, cfg *config.Config) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			cfg.Metrics.Address = ln.Addr().String()
		}, "metrics", diag.Warn, []string{": in use"}},
		{"users file missing", func(t *testing.T, cfg *config.Config) {
			cfg.Auth.UsersFile = filepath.Join(t.TempDir(), "nope.toml")
		}, "users", diag.Fail, []string{"nope.toml"}},
		{"storage root not a directory", func(t *testing.T, cfg *config.Config) {
			f := filepath.Join(t.TempDir(), "file")
			os.WriteFile(f, nil, 0o644)
			cfg.Storage.Root = filepath.Join(f, "data")
		}, "storage", diag.Fail, []string{"create storage root"}},
		{"certificate expiring", func(t *testing.T, cfg *config.Config) {
			dir := t.TempDir()
			cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
			if err := certs.SelfSigned([]string{"ftp.example.com"}, 5*24*time.Hour, cert, key); err != nil {
				t.Fatal(err)
			}
			l := &cfg.Listeners[0]
			l.TLS, l.TLSCert, l.TLSKey = config.TLSExplicit, cert, key
		}, "listener[0] TLS", diag.Warn, []string{"certificate for ftp.example.com", "self-signed", "expires within 14 days"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := doctorConfig(t, "", "")
			tt.mutate(t, cfg)
			checks := diagnose(t, cfg, nil)
			diagtest.Want(t, checks, tt.step, tt.want, tt.subs...)
			if diag.Failed(checks) != (tt.want == diag.Fail) {
				t.Errorf("Failed() = %v with a %s check", diag.Failed(checks), tt.want)
			}
		})
	}
}

// S3 storage: a reachable bucket is checked for writing without an
// object or upload left behind, and a missing one fails.
func TestDoctorS3(t *testing.T) {
	for _, b := range []struct {
		name  string
		start func(testing.TB, string) *s3test.Server
	}{{"s3-gofakes3", s3test.Fake}, {"s3-versitygw", s3test.Versitygw}} {
		t.Run(b.name, func(t *testing.T) { testDoctorS3(t, b.start(t, s3Bucket)) })
	}
}

// The bucket and key prefix of the S3 servers.
const (
	s3Bucket = "ftp-bucket"
	s3Prefix = "homes/"
)

func testDoctorS3(t *testing.T, srv *s3test.Server) {
	srv.Env(t)
	cfg := doctorConfig(t, "", "")
	cfg.Storage = config.Storage{Backend: "s3", Bucket: srv.Bucket, Prefix: s3Prefix, Region: s3test.Region,
		Endpoint: srv.URL, PathStyle: true, PartSize: 5 << 20, Concurrency: 2}
	mustValidate(t, cfg)
	checks := diagnose(t, cfg, nil)
	diagtest.Want(t, checks, "storage", diag.OK, "s3://"+s3Bucket+"/"+s3Prefix, "readable and writable")
	if keys := srv.Keys(t, ""); len(keys) != 0 {
		t.Errorf("the storage check left keys behind: %v", keys)
	}
	ups, err := srv.Client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &srv.Bucket})
	if err == nil && len(ups.Uploads) != 0 {
		t.Errorf("the storage check left %d multipart uploads behind", len(ups.Uploads))
	}
	cfg.Storage.Bucket = "no-such-bucket"
	checks = diagnose(t, cfg, nil)
	diagtest.Want(t, checks, "storage", diag.Fail, "no-such-bucket")
}

func mustValidate(t *testing.T, cfg *config.Config) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func mustPerms(t *testing.T, perms ...string) auth.Permissions {
	t.Helper()
	p, err := auth.ParsePermissions(perms)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hashes caches the slow password hashes across tests.
var hashes sync.Map

func hashFor(t *testing.T, pw string) string {
	t.Helper()
	if h, ok := hashes.Load(pw); ok {
		return h.(string)
	}
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	hashes.Store(pw, h)
	return h
}

// TestDoctorSecurityGroups: on EC2 (an "aws" passive rule) the doctor
// reads the instance's security groups from the metadata and checks them
// against what the config needs, through a stand-in of the EC2 API: the
// missing passive range fails with the fix.
func TestDoctorSecurityGroups(t *testing.T) {
	meta := imdstest.Meta("", imdstest.ENI{MAC: "0a:00:00:00:00:01", Associations: map[string]string{"198.51.100.10": "10.0.1.5"}})
	meta["network/interfaces/macs/0a:00:00:00:00:01/security-group-ids"] = "sg-0ftp"
	meta["placement/region"] = "eu-west-1"
	imds := imdstest.NewServer(t, meta)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	ec2 := ec2test.NewServer(t, map[string]string{"sg-0ftp": ec2test.TCP(21, 21, "0.0.0.0/0")})
	t.Setenv("AWS_ENDPOINT_URL_EC2", ec2.URL)

	_, p, _ := net.SplitHostPort(clienttest.FreeAddr(t))
	rules := `passive_ports = "50000-50009"
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "aws"
`
	cfg := doctorConfig(t, "0.0.0.0:"+p, rules)
	diagtest.Want(t, diagnose(t, cfg, ec2Addrs), "security groups", diag.Fail,
		"missing: tcp 50000-50009 from 0.0.0.0/0", "add the missing rules to sg-0ftp")

	port, _ := strconv.Atoi(p)
	ec2.SetGroup("sg-0ftp", ec2test.TCP(port, port, "0.0.0.0/0")+ec2test.TCP(50000, 50009, "0.0.0.0/0"))
	diagtest.Want(t, diagnose(t, cfg, ec2Addrs), "security groups", diag.OK, "sg-0ftp: allow what the config needs")
}
