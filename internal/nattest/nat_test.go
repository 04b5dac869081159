package nattest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// natWarning is the start of the server's warning when a PASV reply is
// about to carry a private address to a public client.
const natWarning = "private address to a public client"

// passiveRules is the README's NAT setup: VPN clients get the address they
// connected to, everyone else the Elastic IP.
var passiveRules = fmt.Sprintf(`
  [[listener.passive]]
  clients = ["10.77.0.0/16"]
  address = "control"

  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = %q
`, elasticIP)

// side is where a client runs and how it reaches the server.
type side struct {
	name string // "internet" or "vpn"
	ns   string
	addr string // the client's own address
	host string // the address it connects to
}

func sides(tp *topology) (inet, vpn side) {
	return side{"internet", tp.inet, inetAddr, elasticIP}, side{"vpn", tp.vpn, vpnAddr, srvAddr}
}

// TestNAT builds the EC2 1:1 NAT topology once and runs every scenario in
// it, each with its own cloudftpd process.
func TestNAT(t *testing.T) {
	tp := newTopology(t)
	bin := buildServer(t, t.TempDir())
	inet, vpn := sides(tp)
	t.Logf("namespaces: srv=%s rtr=%s inet=%s vpn=%s", tp.srv, tp.rtr, tp.inet, tp.vpn)

	t.Run("rules", func(t *testing.T) {
		s := startServer(t, tp, bin, passiveRules)
		t.Run("reachability", func(t *testing.T) { checkReachability(t, tp) })
		for _, sd := range []side{inet, vpn} {
			t.Run(sd.name, func(t *testing.T) {
				// Internet clients must be given the Elastic IP, VPN
				// clients the private address they connected to.
				want := elasticIP
				if sd == vpn {
					want = srvAddr
				}
				transferClients(t, tp, s, sd, want)
			})
			t.Run(sd.name+"/probe", func(t *testing.T) {
				want := elasticIP
				if sd == vpn {
					want = srvAddr
				}
				r := probeFrom(t, tp, bin, sd)
				if r.Code != 0 {
					t.Errorf("probe exit %d, want 0:\n%s", r.Code, r)
				}
				for _, w := range []string{"ok    PASV      reply names " + want + ":", "ok    EPSV", "ok    upload", "deleted again", "result: ok"} {
					if !strings.Contains(r.Stdout, w) {
						t.Errorf("probe output lacks %q:\n%s", w, r)
					}
				}
			})
		}
		t.Run("doctor", func(t *testing.T) {
			// On the server's machine, with its real interfaces: each
			// client network's PASV address, and no warning.
			r := tp.run(tp.srv, t.TempDir(), "", bin, "doctor", "--config", s.config)
			t.Logf("doctor:\n%s", r.Stdout)
			if r.Code != 0 {
				t.Errorf("doctor exit %d, want 0:\n%s", r.Code, r)
			}
			for _, w := range []string{
				"ok    listener[0] PASV",
				"connecting to " + srvAddr + ": PASV names " + srvAddr,
				"connecting to " + srvAddr + ": PASV names " + elasticIP,
			} {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("doctor output lacks %q:\n%s", w, r)
				}
			}
		})
		t.Run("log", func(t *testing.T) {
			// Through the DNAT the server still sees the real client.
			for _, sd := range []side{inet, vpn} {
				if len(s.logLines("session start", "client="+sd.addr, "local="+srvAddr)) == 0 {
					t.Errorf("no session start from client=%s local=%s in the log", sd.addr, srvAddr)
				}
			}
			if l := s.logLines(natWarning); len(l) > 0 {
				t.Errorf("NAT warning although the rules give public clients the Elastic IP:\n%s", strings.Join(l, "\n"))
			}
			if v := s.metric(t, tp, "cloudftpd_pasv_private_address_total"); v != "0" {
				t.Errorf("cloudftpd_pasv_private_address_total = %q with rules, want 0", v)
			}
		})
	})

	t.Run("port-mapping", func(t *testing.T) {
		// A balancer or a Kubernetes Service in front of the server
		// forwards a public passive range onto another: rtr DNATs the
		// Elastic IP's ports 30000-30009 to srv's 50000-50009. Internet
		// clients must be sent the public ports, VPN clients (no mapping
		// on their way) the bound ones.
		mapped := fmt.Sprintf(`
  [[listener.passive]]
  clients = ["10.77.0.0/16"]
  address = "control"

  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = %q
  ports = "30000-30009"
`, elasticIP)
		for i := range 10 {
			rule := []string{"PREROUTING", "-i", rtrToInet, "-d", elasticIP, "-p", "tcp", "--dport", fmt.Sprint(30000 + i),
				"-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", srvAddr, 50000+i)}
			tp.iptables(t, append([]string{"-t", "nat", "-I"}, rule...)...)
			t.Cleanup(func() { tp.iptables(t, append([]string{"-t", "nat", "-D"}, rule...)...) })
		}
		s := startServer(t, tp, bin, mapped)
		down := randomBytes(300_000)
		s.putFile(t, "mapped.bin", down)
		for _, c := range []struct {
			sd   side
			port string
		}{{inet, "port 300"}, {vpn, "port 500"}} {
			t.Run(c.sd.name, func(t *testing.T) {
				dir := t.TempDir()
				url := "ftp://" + c.sd.host + ":" + ftpPort + "/"
				for _, args := range [][]string{{url}, {"-o", "got.bin", url + "mapped.bin"}} {
					r := curl(t, tp, c.sd.ns, dir, slices.Concat([]string{"--disable-epsv", "--no-ftp-skip-pasv-ip"}, args)...)
					if !r.OK() {
						t.Fatalf("curl failed:\n%s", r)
					}
					if !strings.Contains(r.Stderr, "Connecting to "+c.sd.host+" ("+c.sd.host+") "+c.port) {
						t.Errorf("curl did not connect to %s %sNN, the ports these clients reach:\n%s", c.sd.host, c.port, r)
					}
				}
				sameFile(t, "download through the port mapping", filepath.Join(dir, "got.bin"), down, nil)
				// EPSV carries the port alone: mapped the same way.
				r := curl(t, tp, c.sd.ns, dir, "-o", "epsv.bin", url+"mapped.bin")
				if !r.OK() || !strings.Contains(r.Stderr, "Entering Extended Passive Mode (|||"+strings.TrimPrefix(c.port, "port ")) {
					t.Errorf("EPSV through the port mapping:\n%s", r)
				}
			})
		}
	})

	t.Run("no-rules", func(t *testing.T) {
		// Without rules every client is given the address it connected
		// to: srv only knows 10.77.0.10, the classic EC2 failure.
		s := startServer(t, tp, bin, "")
		t.Run("internet/pasv-private-address", func(t *testing.T) {
			r := ftplib(t, tp, inet.ns, t.TempDir(), inet.host, true, 10*time.Second, ftplibStep{Op: "pasv"})
			if r.Error != "" {
				t.Fatalf("ftplib: %s\n%s", r.Error, r)
			}
			if got := r.Replies["pasv"]; !strings.HasPrefix(got, pasvPrefix(srvAddr)) {
				t.Errorf("PASV reply %q, want the private address %s (no rules)", got, srvAddr)
			}
		})
		t.Run("internet/list-hangs", func(t *testing.T) {
			start := time.Now()
			r := ftplib(t, tp, inet.ns, t.TempDir(), inet.host, true, 5*time.Second, ftplibStep{Op: "list"})
			t.Logf("LIST gave up after %v: %s", time.Since(start).Round(time.Millisecond), r.Error)
			if r.Replies["login"] == "" || !strings.HasPrefix(r.Replies["login"], "230") {
				t.Errorf("login should work, got %q\n%s", r.Replies["login"], r)
			}
			if r.FailedStep != "list" || !strings.Contains(r.Error, "timed out") {
				t.Errorf("LIST should time out connecting to %s; failed step %q, error %q\n%s", srvAddr, r.FailedStep, r.Error, r)
			}
			checkPASVLines(t, r.run.Stdout, srvAddr, 1)
		})
		t.Run("internet/warning-logged", func(t *testing.T) {
			l := s.logLines(natWarning, "client="+inetAddr)
			if len(l) == 0 {
				t.Fatalf("no log line with %q for client=%s", natWarning, inetAddr)
			}
			if !strings.Contains(l[0], "advertised="+srvAddr) {
				t.Errorf("warning does not name the advertised address %s:\n%s", srvAddr, l[0])
			}
			// Monitoring sees it too: one count per such PASV reply.
			if v := s.metric(t, tp, "cloudftpd_pasv_private_address_total"); v == "" || v == "0" {
				t.Errorf("cloudftpd_pasv_private_address_total = %q after private PASV replies to the internet client", v)
			}
			t.Logf("server log: %s", l[0])
		})
		t.Run("internet/epsv-workaround", func(t *testing.T) {
			// curl's default EPSV carries no address: it works through
			// any NAT, with or without rules.
			dir := t.TempDir()
			s.putFile(t, "epsv.txt", []byte("epsv works\n"))
			r := curl(t, tp, inet.ns, dir, "ftp://"+inet.host+":"+ftpPort+"/")
			if !r.OK() || !strings.Contains(r.Stdout, "epsv.txt") {
				t.Fatalf("curl list with EPSV failed:\n%s", r)
			}
			for _, want := range []string{"> EPSV", "< 229 Entering Extended Passive Mode"} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("curl output lacks %q:\n%s", want, r)
				}
			}
			if strings.Contains(r.Stderr, "> PASV") {
				t.Errorf("curl fell back to PASV:\n%s", r)
			}
		})
		t.Run("internet/curl-skip-pasv-ip-hides-it", func(t *testing.T) {
			// curl >= 7.74 ignores the PASV address by default
			// (--ftp-skip-pasv-ip) and so does not see the problem: that
			// is why every other curl run here passes
			// --no-ftp-skip-pasv-ip.
			r := curl(t, tp, inet.ns, t.TempDir(), "--disable-epsv", "ftp://"+inet.host+":"+ftpPort+"/")
			if !r.OK() {
				t.Fatalf("curl --disable-epsv (default skip-pasv-ip) failed:\n%s", r)
			}
			checkPASVLines(t, r.Stderr, srvAddr, 1)
			if !strings.Contains(r.Stderr, "Connecting to "+elasticIP+" ("+elasticIP+") port 500") {
				t.Errorf("curl did not open the data connection to the control address %s:\n%s", elasticIP, r)
			}
		})
		t.Run("internet/inetutils-ftp-refuses-it", func(t *testing.T) {
			// inetutils-ftp checks the PASV address against the control
			// connection's peer and gives up at once.
			r := inetutils(t, tp, inet.ns, t.TempDir(), inet.host, "-p", "ls", "bye")
			if !strings.Contains(r.Stdout, "Passive mode address mismatch") {
				t.Errorf("inetutils-ftp did not report the mismatch:\n%s", r)
			}
			checkPASVLines(t, r.Stdout, srvAddr, 1)
		})
		t.Run("doctor-warns", func(t *testing.T) {
			// Before any client tries: the server's only address is
			// private, and no rule gives internet clients another.
			r := tp.run(tp.srv, t.TempDir(), "", bin, "doctor", "--config", s.config)
			t.Logf("doctor:\n%s", r.Stdout)
			for _, w := range []string{
				"warn  listener[0] PASV",
				"other clients (no rule matches), connecting to " + srvAddr + ": PASV names " + srvAddr,
				"private address " + srvAddr, `address = "aws"`,
			} {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("doctor output lacks %q:\n%s", w, r)
				}
			}
		})
		t.Run("internet/probe-explains", func(t *testing.T) {
			// The probe, run where the partner is, names the failure and
			// the fix: the private address, the timeout, the address to
			// advertise; and that EPSV and address-ignoring clients work.
			r := probeFrom(t, tp, bin, inet)
			if r.Code != 1 {
				t.Errorf("probe exit %d, want 1:\n%s", r.Code, r)
			}
			for _, w := range []string{
				"ok    login",
				"FAIL  PASV      reply names " + srvAddr + ", but the control connection reached " + elasticIP,
				"data connection to " + srvAddr + ":",
				"no answer (timed out)",
				"to " + elasticIP + ":", "as curl, lftp and FileZilla do by default: LIST",
				"behind NAT and advertises its private address " + srvAddr,
				`address = "aws"`, `address = "` + elasticIP + `"`,
				"ok    EPSV",
				"result: FAILED",
			} {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("probe output lacks %q:\n%s", w, r)
				}
			}
		})
		t.Run("vpn/works", func(t *testing.T) {
			r := ftplib(t, tp, vpn.ns, t.TempDir(), vpn.host, true, 10*time.Second, ftplibStep{Op: "pasv"}, ftplibStep{Op: "list"})
			if r.Error != "" {
				t.Fatalf("ftplib: %s\n%s", r.Error, r)
			}
			checkPASVLines(t, r.run.Stdout, srvAddr, 2)
		})
	})

	t.Run("ftps", func(t *testing.T) { testFTPS(t, tp, bin) })

	t.Run("active", func(t *testing.T) {
		s := startServer(t, tp, bin, passiveRules)
		down := randomBytes(300<<10 + 5)
		s.putFile(t, "down-active.bin", down)
		t.Run("vpn/ftplib", func(t *testing.T) {
			dir := t.TempDir()
			up := randomBytes(700<<10 + 11)
			writeLocal(t, dir, "up.bin", up)
			r := ftplib(t, tp, vpn.ns, dir, vpn.host, false, 10*time.Second,
				ftplibStep{Op: "list"},
				ftplibStep{Op: "put", Local: "up.bin", Remote: "up-active-ftplib.bin"},
				ftplibStep{Op: "get", Local: "got.bin", Remote: "down-active.bin"})
			if r.Error != "" {
				t.Fatalf("ftplib active mode: %s\n%s", r.Error, r)
			}
			checkActive(t, r.run.Stdout, "*cmd* 'PORT ", "*resp* '200 PORT", vpnAddr, r)
			sameFile(t, "upload", filepath.Join(s.home, "up-active-ftplib.bin"), up, r)
			sameFile(t, "download", filepath.Join(dir, "got.bin"), down, r)
		})
		t.Run("vpn/curl", func(t *testing.T) {
			dir := t.TempDir()
			up := randomBytes(600<<10 + 7)
			writeLocal(t, dir, "up.bin", up)
			url := "ftp://" + vpn.host + ":" + ftpPort + "/"
			// -P names the client's own address; --disable-eprt makes
			// curl send PORT rather than EPRT.
			active := []string{"-P", vpnAddr, "--disable-eprt"}
			for _, args := range [][]string{
				{url},
				{"-T", "up.bin", url + "up-active-curl.bin"},
				{"-o", "got.bin", url + "down-active.bin"},
			} {
				r := curl(t, tp, vpn.ns, dir, append(active, args...)...)
				if !r.OK() {
					t.Fatalf("curl active mode failed:\n%s", r)
				}
				checkActive(t, r.Stderr, "> PORT ", "< 200 PORT", vpnAddr, r)
				if len(args) == 1 && !strings.Contains(r.Stdout, "down-active.bin") {
					t.Errorf("listing lacks down-active.bin:\n%s", r)
				}
			}
			sameFile(t, "upload", filepath.Join(s.home, "up-active-curl.bin"), up, nil)
			sameFile(t, "download", filepath.Join(dir, "got.bin"), down, nil)
		})
		t.Run("vpn/port-elsewhere-refused", func(t *testing.T) {
			r := ftplib(t, tp, vpn.ns, t.TempDir(), vpn.host, true, 10*time.Second,
				ftplibStep{Op: "port", Name: "other-vpn-host", Arg: "10,77,1,99,195,80"},
				ftplibStep{Op: "port", Name: "internet-host", Arg: "203,0,113,20,195,80"},
				ftplibStep{Op: "port", Name: "privileged-port", Arg: "10,77,1,20,0,21"},
				// The session carries on.
				ftplibStep{Op: "list"})
			if r.Error != "" {
				t.Fatalf("ftplib: %s\n%s", r.Error, r)
			}
			for _, k := range []string{"other-vpn-host", "internet-host", "privileged-port"} {
				if got := r.Replies[k]; !strings.HasPrefix(got, "501") {
					t.Errorf("PORT (%s): reply %q, want 501\n%s", k, got, r)
				}
			}
			if len(s.logLines("active-mode target refused", "client="+vpnAddr, "target=10.77.1.99:")) == 0 {
				t.Errorf("no log line for the refused PORT to 10.77.1.99")
			}
		})
		t.Run("internet/ftplib", func(t *testing.T) {
			// The server connects back to 203.0.113.20; rtr's SNAT makes
			// the connection come from the Elastic IP.
			dir := t.TempDir()
			r := ftplib(t, tp, inet.ns, dir, inet.host, false, 10*time.Second,
				ftplibStep{Op: "list"},
				ftplibStep{Op: "get", Local: "got.bin", Remote: "down-active.bin"})
			if r.Error != "" {
				t.Fatalf("ftplib active mode: %s\n%s", r.Error, r)
			}
			checkActive(t, r.run.Stdout, "*cmd* 'PORT ", "*resp* '200 PORT", inetAddr, r)
			sameFile(t, "download", filepath.Join(dir, "got.bin"), down, r)
		})
	})
}

// checkReachability asserts the topology is the EC2 one: the internet
// client reaches the server only through the Elastic IP, the VPN client
// reaches its private address directly.
func checkReachability(t *testing.T, tp *topology) {
	for _, c := range []struct {
		ns, addr string
		want     bool
	}{
		{tp.inet, elasticIP, true},
		{tp.inet, srvAddr, false},
		{tp.vpn, srvAddr, true},
	} {
		ok, r := tp.dialFrom(t, c.ns, c.addr+":"+ftpPort, 2*time.Second)
		if ok != c.want {
			t.Errorf("TCP connect from %s to %s:%s: connected=%v, want %v\n%s", c.ns, c.addr, ftpPort, ok, c.want, r)
		}
	}
}

// transferClients runs every client from sd in passive mode, checking
// that each PASV reply carries wantPASV and that a listing, an upload and a
// download work through it.
func transferClients(t *testing.T, tp *topology, s *ftpServer, sd side, wantPASV string) {
	down := randomBytes(512<<10 + 3)
	downName := "down-" + sd.name + ".bin"
	s.putFile(t, downName, down)
	t.Run("ftplib", func(t *testing.T) {
		dir, up := newUpload(t)
		remote := "up-" + sd.name + "-ftplib.bin"
		r := ftplib(t, tp, sd.ns, dir, sd.host, true, 10*time.Second,
			ftplibStep{Op: "pasv"},
			ftplibStep{Op: "list"},
			ftplibStep{Op: "put", Local: "up.bin", Remote: remote},
			ftplibStep{Op: "get", Local: "got.bin", Remote: downName})
		if r.Error != "" {
			t.Fatalf("ftplib failed at %s: %s\n%s", r.FailedStep, r.Error, r)
		}
		if got := r.Replies["pasv"]; !strings.HasPrefix(got, pasvPrefix(wantPASV)) {
			t.Errorf("PASV reply %q, want address %s", got, wantPASV)
		}
		// One PASV of its own, then one for each transfer.
		checkPASVLines(t, r.run.Stdout, wantPASV, 4)
		if !strings.Contains(strings.Join(r.List, "\n"), downName) {
			t.Errorf("LIST lacks %s: %q", downName, r.List)
		}
		sameFile(t, "upload", filepath.Join(s.home, remote), up, r)
		sameFile(t, "download", filepath.Join(dir, "got.bin"), down, r)
	})

	t.Run("inetutils-ftp", func(t *testing.T) {
		dir, up := newUpload(t)
		remote := "up-" + sd.name + "-inetutils.bin"
		r := inetutils(t, tp, sd.ns, dir, sd.host, "-p",
			"binary", "status", "passive", "passive", "ls", "put up.bin "+remote, "get "+downName+" got.bin", "bye")
		if !r.OK() {
			t.Fatalf("inetutils-ftp failed:\n%s", r)
		}
		// -p turned passive mode on; "passive" toggles it, so twice shows
		// the state and leaves it on. It sends PASV for IPv4 unless
		// "epsv4" is toggled on ("status" shows that state).
		if i, j := strings.LastIndex(r.Stdout, "Passive mode on."), strings.LastIndex(r.Stdout, "Passive mode off."); i < 0 || i < j {
			t.Errorf("passive mode is not on:\n%s", r)
		}
		for _, want := range []string{"Use of EPRT/EPSV for IPv4: off", "---> PASV", "226 ", "221 "} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, r)
			}
		}
		if strings.Contains(r.Stdout, "---> EPSV") {
			t.Errorf("inetutils-ftp sent EPSV:\n%s", r)
		}
		// inetutils-ftp refuses a PASV address other than the control
		// connection's peer.
		if strings.Contains(r.Stdout, "Passive mode address mismatch") {
			t.Errorf("inetutils-ftp refused the PASV address:\n%s", r)
		}
		checkPASVLines(t, r.Stdout, wantPASV, 3)
		if !strings.Contains(r.Stdout, downName) {
			t.Errorf("ls lacks %s:\n%s", downName, r)
		}
		sameFile(t, "upload", filepath.Join(s.home, remote), up, r)
		sameFile(t, "download", filepath.Join(dir, "got.bin"), down, r)
	})

	t.Run("curl", func(t *testing.T) { curlTransfers(t, tp, s, sd, wantPASV, downName, down, false) })
	t.Run("lftp", func(t *testing.T) { lftpTransfers(t, tp, s, sd, wantPASV, downName, down, false) })
}

// newUpload returns a fresh directory holding a file up.bin of a little
// over 1 MiB, and its content.
func newUpload(t *testing.T) (dir string, up []byte) {
	dir = t.TempDir()
	up = randomBytes(1<<20 + 17)
	writeLocal(t, dir, "up.bin", up)
	return dir, up
}

// curlTransfers lists, uploads and downloads with curl from sd over PASV
// (never EPSV), checking that every PASV reply carries wantPASV and that
// curl connects there. With ftps the control and data connections use TLS
// and the PASV exchange must come after the handshake.
func curlTransfers(t *testing.T, tp *topology, s *ftpServer, sd side, wantPASV, downName string, down []byte, ftps bool) {
	dir, up := newUpload(t)
	remote := "up-" + sd.name + "-curl.bin"
	// PASV instead of EPSV, and use its address: curl's default
	// --ftp-skip-pasv-ip would connect to the control address.
	opts := []string{"--disable-epsv", "--no-ftp-skip-pasv-ip"}
	if ftps {
		remote = "ftps-" + remote
		opts = curlFTPS
	}
	url := "ftp://" + sd.host + ":" + ftpPort + "/"
	for _, args := range [][]string{
		{url},
		{"-T", "up.bin", url + remote},
		{"-o", "got.bin", url + downName},
	} {
		r := curl(t, tp, sd.ns, dir, slices.Concat(opts, args)...)
		if !r.OK() {
			t.Fatalf("curl failed:\n%s", r)
		}
		if !strings.Contains(r.Stderr, "> PASV") || strings.Contains(r.Stderr, "> EPSV") {
			t.Errorf("curl did not use PASV only:\n%s", r)
		}
		if ftps {
			pasvInsideTLS(t, r.Stderr, "> AUTH ", "SSL connection using", "> PROT P", "> PASV", r)
		}
		checkPASVLines(t, r.Stderr, wantPASV, 1)
		if !strings.Contains(r.Stderr, "Connecting to "+wantPASV+" ") {
			t.Errorf("curl did not connect to the PASV address %s:\n%s", wantPASV, r)
		}
		if len(args) == 1 && !strings.Contains(r.Stdout, downName) {
			t.Errorf("listing lacks %s:\n%s", downName, r)
		}
	}
	sameFile(t, "upload", filepath.Join(s.home, remote), up, nil)
	sameFile(t, "download", filepath.Join(dir, "got.bin"), down, nil)
}

// lftpTransfers is curlTransfers with lftp (ls, put, get in one run).
func lftpTransfers(t *testing.T, tp *topology, s *ftpServer, sd side, wantPASV, downName string, down []byte, ftps bool) {
	dir, up := newUpload(t)
	remote := "up-" + sd.name + "-lftp.bin"
	tlsMode := lftpPlain
	if ftps {
		remote = "ftps-" + remote
		tlsMode = lftpFTPS
	}
	r := lftp(t, tp, sd.ns, dir, sd.host, tlsMode, "ls; put up.bin -o "+remote+"; get "+downName+" -o got.bin")
	if !r.OK() {
		t.Fatalf("lftp failed:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "---> PASV") || strings.Contains(r.Stderr, "---> EPSV") {
		t.Errorf("lftp did not use PASV only:\n%s", r)
	}
	if ftps {
		pasvInsideTLS(t, r.Stderr, "---> AUTH TLS", "<--- 234", "---> PROT P", "---> PASV", r)
	}
	checkPASVLines(t, r.Stderr, wantPASV, 3)
	if !strings.Contains(r.Stderr, "Connecting data socket to ("+wantPASV+")") {
		t.Errorf("lftp did not connect to the PASV address %s:\n%s", wantPASV, r)
	}
	if !strings.Contains(r.Stdout, downName) {
		t.Errorf("ls lacks %s:\n%s", downName, r)
	}
	sameFile(t, "upload", filepath.Join(s.home, remote), up, r)
	sameFile(t, "download", filepath.Join(dir, "got.bin"), down, r)
}

// checkPASVLines asserts that out shows at least min PASV replies and that
// every one carries addr.
func checkPASVLines(t *testing.T, out, addr string, min int) {
	t.Helper()
	const marker = "227 Entering Passive Mode ("
	n := 0
	for rest := out; ; {
		i := strings.Index(rest, marker)
		if i < 0 {
			break
		}
		rest = rest[i:]
		line, _, _ := strings.Cut(rest, "\n")
		if !strings.HasPrefix(rest, pasvPrefix(addr)) {
			t.Errorf("PASV reply carries the wrong address (want %s): %s", addr, line)
		}
		n++
		rest = rest[len(marker):]
	}
	if n < min {
		t.Errorf("%d PASV replies seen, want at least %d, in:\n%s", n, min, out)
	}
}

// checkActive asserts that out shows a PORT command naming addr (after
// cmdMarker) and its 200 reply (okMarker).
func checkActive(t *testing.T, out, cmdMarker, okMarker, addr string, r fmt.Stringer) {
	t.Helper()
	if !strings.Contains(out, cmdMarker+strings.ReplaceAll(addr, ".", ",")+",") {
		t.Errorf("no %s%s,... sent:\n%s", cmdMarker, addr, r)
	}
	if !strings.Contains(out, okMarker) {
		t.Errorf("no %q reply:\n%s", okMarker, r)
	}
}

func writeLocal(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// probeFrom runs "cloudftpd probe --upload" as the FTP user from sd's
// namespace.
func probeFrom(t *testing.T, tp *topology, bin string, sd side) clienttest.Result {
	t.Helper()
	r := tp.run(sd.ns, t.TempDir(), password+"\n", bin, "probe", "--user", user, "--password-stdin",
		"--timeout", "2s", "--upload", net.JoinHostPort(sd.host, ftpPort))
	t.Logf("probe from %s:\n%s", sd.name, r.Stdout)
	return r
}
