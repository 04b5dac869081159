package nattest

// FTPS behind the 1:1 NAT. Inside TLS no firewall or NAT helper can read or
// rewrite a PASV reply, so the address in it is whatever the server's
// passive rules chose: right for both sides with rules, and the classic
// "login works, ls hangs" without them, now with no helper able to fix it.

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ftpsListener is the listener TOML that turns on explicit FTPS with the
// given certificate; it goes before the [[listener.passive]] rules.
func ftpsListener(certFile, keyFile string) string {
	return fmt.Sprintf("tls = \"explicit\"\ntls_cert = %q\ntls_key = %q\n", certFile, keyFile)
}

// selfSignedCert makes a certificate for both of the server's addresses
// with the cloudftpd binary under test, as the README tells users to, and
// checks what it wrote.
func selfSignedCert(t *testing.T, bin string) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	r := runCmd(dir, "", bin, "cert", "self-signed", "--host", elasticIP, "--host", srvAddr, "--cert", certFile, "--key", keyFile)
	if !r.OK() {
		t.Fatalf("cloudftpd cert self-signed: %s", r)
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block\n%s", certFile, r)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{elasticIP, srvAddr} {
		if !slices.ContainsFunc(leaf.IPAddresses, func(a net.IP) bool { return a.String() == ip }) {
			t.Errorf("certificate IP addresses %v lack %s", leaf.IPAddresses, ip)
		}
	}
	return certFile, keyFile
}

// curlFTPS are curl's options for explicit FTPS (AUTH TLS, PROT P, the
// self-signed certificate accepted) over PASV, using the PASV reply's
// address.
var curlFTPS = []string{"--ssl-reqd", "-k", "--disable-epsv", "--no-ftp-skip-pasv-ip"}

// pasvInsideTLS asserts that out (curl -v or lftp debug output) shows, in
// this order, AUTH, the control connection's TLS handshake, PROT P and the
// first PASV: the PASV reply travelled encrypted, where no NAT helper
// could have rewritten it, and the data connection was protected.
func pasvInsideTLS(t *testing.T, out, authMarker, handshakeMarker, protMarker, pasvMarker string, r fmt.Stringer) {
	t.Helper()
	markers := []string{authMarker, handshakeMarker, protMarker, pasvMarker}
	at := make([]int, len(markers))
	for i, m := range markers {
		at[i] = strings.Index(out, m)
		if at[i] < 0 || (i > 0 && at[i] < at[i-1]) {
			t.Errorf("want %q in this order; found at %v:\n%s", markers, at[:i+1], r)
			return
		}
	}
}

// testFTPS runs the FTPS scenarios in tp, each with its own server.
func testFTPS(t *testing.T, tp *topology, bin string) {
	certFile, keyFile := selfSignedCert(t, bin)
	tlsKeys := ftpsListener(certFile, keyFile)
	inet, vpn := sides(tp)

	t.Run("rules", func(t *testing.T) {
		s := startServer(t, tp, bin, tlsKeys+passiveRules)
		for _, sd := range []side{inet, vpn} {
			want := elasticIP
			if sd == vpn {
				want = srvAddr
			}
			t.Run(sd.name, func(t *testing.T) { ftpsClients(t, tp, s, sd, want) })
		}
		t.Run("log", func(t *testing.T) {
			for _, sd := range []side{inet, vpn} {
				if len(s.logLines("session start", "client="+sd.addr)) == 0 {
					t.Errorf("no session start from client=%s in the log", sd.addr)
				}
			}
			for _, bad := range []string{natWarning, "did not resume", "data connection refused", "handshake"} {
				if l := s.logLines(bad); len(l) > 0 {
					t.Errorf("log lines with %q:\n%s", bad, strings.Join(l, "\n"))
				}
			}
		})
	})

	t.Run("no-rules", func(t *testing.T) {
		// The server gives the internet client its private address, inside
		// TLS: the data connection goes nowhere.
		s := startServer(t, tp, bin, tlsKeys)
		s.putFile(t, "secret.txt", []byte("never listed\n"))
		r := curl(t, tp, inet.ns, t.TempDir(), slices.Concat(curlFTPS, []string{"--connect-timeout", "2", "ftp://" + inet.host + ":" + ftpPort + "/"})...)
		t.Logf("curl gave up: exit %d, %v", r.Code, r.Err)
		if r.Err == nil && r.Code == 0 {
			t.Fatalf("FTPS listing through the NAT without rules worked; want it to time out:\n%s", r)
		}
		if r.Code != 28 { // CURLE_OPERATION_TIMEDOUT
			t.Errorf("curl exit %d, want 28 (timed out connecting to %s):\n%s", r.Code, srvAddr, r)
		}
		if strings.Contains(r.Stdout, "secret.txt") {
			t.Errorf("listing arrived although the data address is unreachable:\n%s", r)
		}
		pasvInsideTLS(t, r.Stderr, "> AUTH ", "SSL connection using", "> PROT P", "> PASV", r)
		checkPASVLines(t, r.Stderr, srvAddr, 1)
		if !strings.Contains(r.Stderr, "Connecting to "+srvAddr+" ") {
			t.Errorf("curl did not try the private PASV address %s:\n%s", srvAddr, r)
		}
		// The server still says what is wrong.
		if l := s.logLines(natWarning, "client="+inetAddr, "advertised="+srvAddr); len(l) == 0 {
			t.Errorf("no log line with %q for client=%s advertised=%s", natWarning, inetAddr, srvAddr)
		}
	})
}

// ftpsClients runs curl and lftp over explicit FTPS from sd: listing,
// upload and download through PASV, whose reply must carry wantPASV.
func ftpsClients(t *testing.T, tp *topology, s *ftpServer, sd side, wantPASV string) {
	down := randomBytes(512<<10 + 3)
	downName := "ftps-down-" + sd.name + ".bin"
	s.putFile(t, downName, down)
	t.Run("curl", func(t *testing.T) { curlTransfers(t, tp, s, sd, wantPASV, downName, down, true) })
	t.Run("lftp", func(t *testing.T) { lftpTransfers(t, tp, s, sd, wantPASV, downName, down, true) })
}
