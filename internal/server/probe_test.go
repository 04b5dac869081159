package server_test

// The probe (cloudftpd probe) against a real server: a healthy one, one
// whose PASV replies name an address the client cannot reach, and the
// FTPS and login failures it has to explain. The NAT case proper, with a
// private address sent to a client on a public one, runs in nattest.

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag/diagtest"
	"github.com/cloudftpd/cloudftpd/internal/probe"
)

func runProbe(t *testing.T, opts probe.Options) *probe.Report {
	t.Helper()
	if opts.StepTimeout == 0 {
		opts.StepTimeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := probe.Run(ctx, opts)
	var b strings.Builder
	r.WriteTo(&b)
	t.Logf("probe report:\n%s", b.String())
	return r
}

// wantSteps checks the status of each step in want, and that the detail
// or fix of a step contains its strings in details.
func wantSteps(t *testing.T, r *probe.Report, want map[string]probe.Status, details map[string][]string) {
	t.Helper()
	for step, st := range want {
		diagtest.Want(t, r.Checks, step, st, details[step]...)
	}
	for step := range details {
		if _, ok := want[step]; !ok {
			t.Fatalf("test bug: details for %s, which has no wanted status", step)
		}
	}
}

func TestProbeHealthyServer(t *testing.T) {
	ts := startServer(t, nil)
	ts.write("alice/a.txt", []byte("a"))
	ts.write("alice/b.txt", []byte("b"))
	r := runProbe(t, probe.Options{Addr: ts.Addr, User: "alice", Password: "alice-secret"})
	wantSteps(t, r,
		map[string]probe.Status{"connect": probe.OK, "greeting": probe.OK, "login": probe.OK, "PASV": probe.OK, "EPSV": probe.OK},
		map[string][]string{"PASV": {"reply names 127.0.0.1:", "2 lines"}, "EPSV": {"2 lines"}, "greeting": {"220 "}})
	if r.Failed() || len(r.PassivePorts) == 0 {
		t.Errorf("Failed() = %v, passive ports %v; want a passing report naming ports", r.Failed(), r.PassivePorts)
	}
	if _, ok := r.Check("TLS"); ok {
		t.Error("a plain probe reported a TLS step")
	}
	if n := strings.Count(ts.logs.String(), "command=LIST"); n != 2 {
		t.Errorf("the server logged %d listings, want 2 (PASV and EPSV)", n)
	}
}

// A PASV address the client cannot reach: what the probe must explain.
// On loopback, 127.0.0.2 refuses at once (the passive sockets listen on
// 127.0.0.1 only), while the same port on the control address works, as
// for clients that ignore the PASV address.
func TestProbeUnreachablePASVAddress(t *testing.T) {
	ts := startServer(t, func(c *config.Config) {
		c.Listeners[0].Passive = []config.PassiveRule{{Clients: []string{"0.0.0.0/0"}, Address: "127.0.0.2"}}
	})
	r := runProbe(t, probe.Options{Addr: ts.Addr, User: "alice", Password: "alice-secret"})
	wantSteps(t, r,
		map[string]probe.Status{"login": probe.OK, "PASV": probe.Fail, "EPSV": probe.OK},
		map[string][]string{"PASV": {
			"reply names 127.0.0.2, but the control connection reached 127.0.0.1",
			"connection refused",
			"as curl, lftp and FileZilla do by default: LIST 0 lines",
			`address = "control"`,
		}})
	if !r.Failed() {
		t.Error("Failed() = false with a PASV address the client cannot reach")
	}
}

func TestProbeLoginFailures(t *testing.T) {
	cert := newFTPSCert(t)
	tests := []struct {
		name    string
		mutate  func(*config.Config)
		user    string
		pass    string
		wantFix string
	}{
		{"wrong password", nil, "alice", "wrong", "check the user name and password"},
		{"anonymous refused", nil, "", "", "for anonymous"},
		{"TLS required", ftpsMode(cert, config.TLSRequired, nil), "alice", "alice-secret", "--tls explicit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.mutate)
			r := runProbe(t, probe.Options{Addr: ts.Addr, User: tt.user, Password: tt.pass})
			wantSteps(t, r,
				map[string]probe.Status{"greeting": probe.OK, "login": probe.Fail, "PASV": probe.Skipped, "EPSV": probe.Skipped},
				map[string][]string{"login": {"530 ", tt.wantFix}})
		})
	}
}

// FTPS: the certificate is checked as a partner's client would, and the
// data connections are protected and resume the control session (the
// listener requires it). The test certificate is valid for a day, so the
// probe warns that it expires soon.
func TestProbeFTPS(t *testing.T) {
	cert := newFTPSCert(t)
	trusted := cert.client()
	tests := []struct {
		name    string
		mode    config.TLSMode
		probeAs probe.TLSMode
		conf    *tls.Config
		want    map[string]probe.Status
		details map[string][]string
	}{
		{"explicit, trusted", config.TLSExplicit, probe.TLSExplicit, trusted,
			map[string]probe.Status{"TLS": probe.Warn, "login": probe.OK, "PASV": probe.OK, "EPSV": probe.OK},
			map[string][]string{"TLS": {"TLS 1.3", "certificate for localhost, 127.0.0.1", "expires in 23 hours", "renew"}}},
		{"implicit, trusted", config.TLSImplicit, probe.TLSImplicit, trusted,
			map[string]probe.Status{"TLS": probe.Warn, "login": probe.OK, "PASV": probe.OK, "EPSV": probe.OK}, nil},
		{"explicit, self-signed", config.TLSExplicit, probe.TLSExplicit, nil,
			map[string]probe.Status{"TLS": probe.Fail, "login": probe.Skipped},
			map[string][]string{"TLS": {"does not trust", "--insecure"}}},
		{"explicit, --insecure", config.TLSExplicit, probe.TLSExplicit, &tls.Config{InsecureSkipVerify: true},
			map[string]probe.Status{"TLS": probe.Warn, "PASV": probe.OK, "EPSV": probe.OK},
			map[string][]string{"TLS": {"not verified"}}},
		{"explicit on a plain listener", config.TLSOff, probe.TLSExplicit, trusted,
			map[string]probe.Status{"TLS": probe.Fail, "login": probe.Skipped},
			map[string][]string{"TLS": {"AUTH TLS: 534"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mutate := ftpsMode(cert, tt.mode, nil)
			if tt.mode == config.TLSOff {
				mutate = nil
			}
			ts := startServer(t, mutate)
			addr := ts.Addr
			if tt.conf == trusted {
				addr = "localhost:" + ts.Port()
			}
			r := runProbe(t, probe.Options{Addr: addr, User: "alice", Password: "alice-secret", TLS: tt.probeAs, TLSConfig: tt.conf})
			wantSteps(t, r, tt.want, tt.details)
			if tt.want["EPSV"] == probe.OK && !strings.Contains(ts.logs.String(), "command=LIST") {
				t.Error("the server logged no listing")
			}
		})
	}
}

// --upload: a file stored and deleted again, and the failures a partner
// who can list but not deliver runs into.
func TestProbeUpload(t *testing.T) {
	tests := []struct {
		user, pass string
		want       probe.Status
		subs       []string
	}{
		{"alice", "alice-secret", probe.OK, []string{"1024 bytes", "deleted again"}},
		{"reader", "reader-secret", probe.Fail, []string{"STOR refused: 550", "read-only account"}},
		{"drop", "drop-secret", probe.Warn, []string{"DELE: 550", "stays on the server"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			ts := startServer(t, nil)
			r := runProbe(t, probe.Options{Addr: ts.Addr, User: tt.user, Password: tt.pass, Upload: true})
			diagtest.Want(t, r.Checks, "upload", tt.want, tt.subs...)
			if tt.user == "drop" {
				// A drop box may not list: the data path works all the same.
				diagtest.Want(t, r.Checks, "EPSV", probe.Warn, "LIST refused: 550", "network path works")
			}
			home := "alice"
			if tt.user == "drop" {
				home = "dropbox"
			}
			left := 0
			for name := range ts.store.tree(t, home) {
				if strings.HasPrefix(name, ".cloudftpd-probe-") {
					left++
				}
			}
			if wantLeft := map[probe.Status]int{probe.OK: 0, probe.Fail: 0, probe.Warn: 1}[tt.want]; left != wantLeft {
				t.Errorf("%d probe files left in %s, want %d", left, home, wantLeft)
			}
		})
	}
}

// rewritingALG is a stand-in for a firewall's FTP helper (nf_nat_ftp, a
// router's "FTP ALG"): a TCP proxy to target that rewrites the address in
// every 227 reply to to, keeping the port, and passes the rest through.
func rewritingALG(t *testing.T, target string, to [4]byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	re := regexp.MustCompile(`^227 (.*)\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)(.*)$`)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go func() {
				defer c.Close()
				r := bufio.NewReader(s)
				for {
					line, err := r.ReadString('\n')
					if m := re.FindStringSubmatch(strings.TrimRight(line, "\r\n")); m != nil {
						line = fmt.Sprintf("227 %s(%d,%d,%d,%d,%s,%s)%s\r\n", m[1], to[0], to[1], to[2], to[3], m[6], m[7], m[8])
					}
					if _, werr := io.WriteString(c, line); werr != nil || err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestProbeRewrittenPASV: a middlebox that rewrites PASV replies is named
// as such, by comparing the reply that arrived with what the server says
// (in STAT) it sent: a rewrite to an address that does not work fails, a
// "helpful" one that happens to work warns; both point to EPSV or FTPS.
func TestProbeRewrittenPASV(t *testing.T) {
	t.Run("breaks", func(t *testing.T) {
		ts := startServer(t, nil)
		alg := rewritingALG(t, ts.Addr, [4]byte{127, 0, 0, 2})
		r := runProbe(t, probe.Options{Addr: alg, User: "alice", Password: "alice-secret"})
		wantSteps(t, r, map[string]probe.Status{"PASV": probe.Fail, "EPSV": probe.OK},
			map[string][]string{"PASV": {"the server sent 127.0.0.1:", "names 127.0.0.2:", "rewrites FTP replies", "EPSV", "FTPS"}})
	})
	t.Run("works-by-luck", func(t *testing.T) {
		ts := startServer(t, func(c *config.Config) {
			c.Listeners[0].Passive = []config.PassiveRule{{Clients: []string{"0.0.0.0/0"}, Address: "127.0.0.2"}}
		})
		alg := rewritingALG(t, ts.Addr, [4]byte{127, 0, 0, 1})
		r := runProbe(t, probe.Options{Addr: alg, User: "alice", Password: "alice-secret"})
		wantSteps(t, r, map[string]probe.Status{"PASV": probe.Warn, "EPSV": probe.OK},
			map[string][]string{"PASV": {"the server sent 127.0.0.2:", "names 127.0.0.1:", "LIST over the rewritten address", "rewrites FTP replies"}})
	})
	t.Run("untouched", func(t *testing.T) {
		ts := startServer(t, nil)
		r := runProbe(t, probe.Options{Addr: ts.Addr, User: "alice", Password: "alice-secret"})
		wantSteps(t, r, map[string]probe.Status{"PASV": probe.OK}, nil)
	})
}
