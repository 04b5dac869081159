package probe

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
)

// pasv checks passive mode the way clients that trust the PASV reply's
// address use it (Windows' ftp, Java's and Python's libraries, many
// scripts), and, when that address does not answer, the way clients that
// reuse the control connection's address do (curl, lftp, FileZilla).
func (p *prober) pasv(ctx context.Context) Check {
	if p.server.Is6() {
		return Check{Status: Skipped,
			Detail: "the control connection is IPv6, and a PASV reply cannot name an IPv6 address; clients use EPSV"}
	}
	code, msg, err := p.command("PASV")
	if err != nil {
		return controlFailure("PASV", err)
	}
	if code != 227 {
		return Check{Status: Fail, Detail: fmt.Sprintf("PASV: %d %s", code, msg),
			Fix: "the server refuses passive mode, which clients behind NAT need"}
	}
	adv, ok := parse227(msg)
	if !ok {
		return Check{Status: Fail, Detail: fmt.Sprintf("PASV: cannot read an address in %d %s", code, msg)}
	}
	p.sawPort(adv.Port())
	rewritten := p.rewrittenPASV(adv)
	listing, dialErr, bad := p.listOver(ctx, adv)
	if rewritten != "" {
		return p.rewrittenCheck(rewritten, adv, listing, dialErr, bad)
	}
	switch {
	case dialErr == nil && bad != nil:
		return *bad
	case dialErr == nil && adv.Addr() == p.server:
		return Check{Status: OK, Detail: fmt.Sprintf("reply names %s; LIST over it: %s", adv, listing)}
	case dialErr == nil:
		return Check{Status: OK, Detail: fmt.Sprintf("reply names %s (the control connection went to %s); LIST over it: %s",
			adv, p.server, listing)}
	case adv.Addr() == p.server:
		return closedPort("reply names "+adv.String()+", the control connection's address", adv.Port(), dialErr)
	}

	// The reply names an address this client cannot reach. Would the
	// control connection's address, with the same port, do?
	detail := fmt.Sprintf("reply names %s, but the control connection reached %s\ndata connection to %s: %s",
		adv.Addr(), p.server, adv, dialReason(dialErr))
	other := netip.AddrPortFrom(p.server, adv.Port())
	switch listing, err, bad := p.listOver(ctx, other); {
	case err == nil && bad == nil:
		detail += fmt.Sprintf("\nto %s instead, as curl, lftp and FileZilla do by default: LIST %s", other, listing)
	case err == nil:
		detail += fmt.Sprintf("\nto %s instead: %s", other, bad.Detail)
	default:
		detail += fmt.Sprintf("\nto %s instead: %s", other, dialReason(err))
	}
	return Check{Status: Fail, Detail: detail, Fix: p.unreachablePASVFix(adv.Addr())}
}

// rewrittenPASV asks the server, with STAT, what its last PASV reply
// said (cloudftpd names it in a line an FTP helper does not touch) and
// describes the difference from adv, what reached this client; "" when
// they agree or the server does not say.
func (p *prober) rewrittenPASV(adv netip.AddrPort) string {
	code, msg, err := p.command("STAT")
	if err != nil || code != 211 {
		return ""
	}
	for _, line := range strings.Split(msg, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Last PASV reply sent: address ")
		if !ok {
			continue
		}
		addr, port, ok := strings.Cut(rest, " port ")
		a, err1 := netip.ParseAddr(addr)
		n, err2 := strconv.ParseUint(port, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return ""
		}
		if sent := netip.AddrPortFrom(a, uint16(n)); sent != adv {
			return fmt.Sprintf("the server sent %s in its PASV reply, but the reply that reached this client names %s", sent, adv)
		}
		return ""
	}
	return ""
}

// rewrittenCheck reports a PASV reply a middlebox changed on the way: a
// firewall's or router's FTP helper (an ALG, Linux's nf_nat_ftp) that
// rewrites 227 replies, which goes wrong when the server already sends
// the right address, or rewrites it to a private one.
func (p *prober) rewrittenCheck(what string, adv netip.AddrPort, listing string, dialErr error, bad *Check) Check {
	fix := "a firewall, router or NAT between this client and the server rewrites FTP replies (an FTP helper or " +
		"\"ALG\", such as Linux's nf_nat_ftp or a router's FTP inspection). Turn it off for this server, or have " +
		"clients use EPSV (its reply carries no address) or FTPS (an encrypted control connection cannot be rewritten)"
	switch {
	case dialErr != nil:
		return Check{Status: Fail, Detail: what + "\ndata connection to " + adv.String() + ": " + dialReason(dialErr), Fix: fix}
	case bad != nil:
		bad.Detail = what + "\n" + bad.Detail
		bad.Fix = fix
		return *bad
	}
	return Check{Status: Warn, Detail: what + "\nLIST over the rewritten address: " + listing, Fix: fix}
}

// unreachablePASVFix says what to change when PASV replies name adv, an
// address this client cannot reach.
func (p *prober) unreachablePASVFix(adv netip.Addr) string {
	if netpolicy.NeedsWarning(p.server, adv) {
		return fmt.Sprintf("the server is behind NAT and advertises its private address %s to clients on the internet, "+
			"which cannot reach it. Advertise %s to them: in cloudftpd a passive rule for their networks, "+
			"address = \"aws\" on EC2 (discovered) or address = \"%s\"; in vsftpd, pasv_address=%s",
			adv, p.server, p.server, p.server)
	}
	return fmt.Sprintf("the server advertises %s, which this client cannot reach. In cloudftpd, make the passive rule "+
		"that matches this client's network give an address it reaches (address = \"control\" when clients reach the "+
		"server directly); in vsftpd, pasv_address", adv)
}

// epsv checks extended passive mode (RFC 2428): the reply names only a
// port, on the control connection's address, so NAT cannot get it wrong,
// but a firewall still can.
func (p *prober) epsv(ctx context.Context) Check {
	code, msg, err := p.command("EPSV")
	if err != nil {
		return controlFailure("EPSV", err)
	}
	switch {
	case code == 500 || code == 501 || code == 502 || code == 504:
		return Check{Status: Warn, Detail: fmt.Sprintf("EPSV: %d %s", code, msg),
			Fix: "the server does not support EPSV (RFC 2428); clients fall back to PASV and depend on its address"}
	case code != 229:
		return Check{Status: Fail, Detail: fmt.Sprintf("EPSV: %d %s", code, msg)}
	}
	port, ok := parse229(msg)
	if !ok {
		return Check{Status: Fail, Detail: fmt.Sprintf("EPSV: cannot read a port in %d %s", code, msg)}
	}
	p.sawPort(port)
	addr := netip.AddrPortFrom(p.server, port)
	listing, dialErr, bad := p.listOver(ctx, addr)
	switch {
	case dialErr != nil:
		return closedPort(fmt.Sprintf("reply names port %d", port), port, dialErr)
	case bad != nil:
		return *bad
	}
	return Check{Status: OK, Detail: fmt.Sprintf("port %d; LIST over it: %s", port, listing)}
}

func (p *prober) sawPort(port uint16) {
	for _, q := range p.report.PassivePorts {
		if q == port {
			return
		}
	}
	p.report.PassivePorts = append(p.report.PassivePorts, port)
}

// listOver opens a passive data connection to addr and runs LIST over it.
// dialErr is the failure to connect, the question the data checks ask;
// bad describes a failure after the connection opened.
func (p *prober) listOver(ctx context.Context, addr netip.AddrPort) (listing string, dialErr error, bad *Check) {
	return p.transferOver(ctx, addr, "LIST", nil)
}

// transferOver opens a passive data connection to addr and sends command
// over the control connection: a listing it reads and counts, or, with
// upload set, an upload of those bytes.
func (p *prober) transferOver(ctx context.Context, addr netip.AddrPort, command string, upload []byte) (summary string, dialErr error, bad *Check) {
	verb, _, _ := strings.Cut(command, " ")
	d := net.Dialer{Timeout: p.opts.StepTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return "", err, nil
	}
	defer conn.Close()
	fail := func(format string, args ...any) (string, error, *Check) {
		return "", nil, &Check{Status: Fail, Detail: fmt.Sprintf(format, args...)}
	}
	code, msg, err := p.command("%s", command)
	if err != nil {
		c := controlFailure(verb, err)
		return "", nil, &c
	}
	if code >= 500 && code < 600 {
		// Refused before any data: the network path works, the account
		// may not do this (a drop box that may not list).
		return "", nil, &Check{Status: Warn, Detail: fmt.Sprintf("connected to %s; %s refused: %d %s", addr, verb, code, msg),
			Fix: "the data connection opened, so the network path works; the server refused the command itself"}
	}
	if code != 125 && code != 150 {
		return fail("connected to %s; %s: %d %s", addr, verb, code, msg)
	}
	var data net.Conn = conn
	conn.SetDeadline(time.Now().Add(p.opts.StepTimeout))
	if p.protP {
		tc := tls.Client(conn, p.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("connected to %s; TLS on the data connection: %v", addr, err)
		}
		data = tc
	}
	if upload != nil {
		if _, err := data.Write(upload); err != nil {
			return fail("connected to %s; %s: sending: %v", addr, verb, err)
		}
		summary = fmt.Sprintf("%d bytes", len(upload))
	} else {
		lines, n := 0, 0
		sc := bufio.NewScanner(data)
		for sc.Scan() {
			lines++
			n += len(sc.Bytes()) + 2
		}
		if err := sc.Err(); err != nil {
			if isTimeout(err) {
				return fail("connected to %s; %s: the listing did not end within %s", addr, verb, p.opts.StepTimeout)
			}
			return fail("connected to %s; %s: reading the listing: %v", addr, verb, err)
		}
		summary = fmt.Sprintf("%d lines, %d bytes", lines, n)
		if lines == 1 {
			summary = fmt.Sprintf("1 line, %d bytes", n)
		}
	}
	data.Close() // for an upload, the end of the file
	code, msg, err = p.reply()
	if err != nil {
		c := controlFailure(verb, err)
		return "", nil, &c
	}
	if code != 226 && code != 250 {
		return fail("connected to %s; %s ended with %d %s", addr, verb, code, msg)
	}
	return summary, nil, nil
}

// probeFileSize is the size of the file the upload check stores.
const probeFileSize = 1024

// upload stores a small file through EPSV (PASV where EPSV is refused)
// and deletes it: what a partner who can list but not deliver runs into
// (a read-only account, a full disk, a bucket policy without PutObject).
func (p *prober) upload(ctx context.Context) Check {
	addr, err := p.passiveAddr()
	if err != nil {
		return Check{Status: Fail, Detail: err.Error()}
	}
	name := ".cloudftpd-probe-" + rand.Text()[:12]
	if code, msg, err := p.command("TYPE I"); err != nil || code != 200 {
		return Check{Status: Fail, Detail: fmt.Sprintf("TYPE I: %d %s %v", code, msg, err)}
	}
	body := make([]byte, probeFileSize)
	rand.Read(body)
	summary, dialErr, bad := p.transferOver(ctx, addr, "STOR "+name, body)
	switch {
	case dialErr != nil:
		return closedPort("upload: data connection to "+addr.String(), addr.Port(), dialErr)
	case bad != nil:
		bad.Status = Fail
		bad.Fix = "uploads fail: look at the reply. A read-only account gets 550 (cloudftpd: the user's permissions); " +
			"452 or 552 is a full disk or quota; on S3, the bucket policy needs s3:PutObject"
		return *bad
	}
	ch := Check{Status: OK, Detail: fmt.Sprintf("STOR %s: %s", name, summary)}
	if code, msg, err := p.command("SIZE %s", name); err == nil && code == 213 && strings.TrimSpace(msg) != fmt.Sprint(probeFileSize) {
		ch.Status = Fail
		ch.Detail += fmt.Sprintf("; SIZE says %s, not %d: the server stored something else", msg, probeFileSize)
	}
	code, msg, err := p.command("DELE %s", name)
	switch {
	case err != nil:
		return controlFailure("DELE", err)
	case code != 250:
		if ch.Status == OK {
			ch.Status = Warn
		}
		ch.Detail += fmt.Sprintf("; DELE: %d %s", code, msg)
		ch.Fix = "the probe's file " + name + " stays on the server: delete it by hand (a drop-box account may upload but not delete)"
	default:
		ch.Detail += "; deleted again"
	}
	return ch
}

// passiveAddr opens passive mode for one more transfer: EPSV on the
// control connection's address, or PASV's port on it when EPSV is refused.
func (p *prober) passiveAddr() (netip.AddrPort, error) {
	code, msg, err := p.command("EPSV")
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("EPSV: %w", err)
	}
	if code == 229 {
		if port, ok := parse229(msg); ok {
			return netip.AddrPortFrom(p.server, port), nil
		}
	}
	code, msg, err = p.command("PASV")
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("PASV: %w", err)
	}
	if ap, ok := parse227(msg); code == 227 && ok {
		return netip.AddrPortFrom(p.server, ap.Port()), nil
	}
	return netip.AddrPort{}, fmt.Errorf("neither EPSV nor PASV opened a port: %d %s", code, msg)
}

// closedPort explains a passive port this client could not connect to.
func closedPort(what string, port uint16, err error) Check {
	ch := Check{Status: Fail, Detail: what + "\ndata connection: " + dialReason(err)}
	switch {
	case isTimeout(err):
		ch.Fix = fmt.Sprintf("a firewall or security group drops port %d. Open the server's whole passive port range "+
			"to inbound TCP from the clients (cloudftpd: the listener's passive_ports)", port)
	case errors.Is(err, syscall.ECONNREFUSED):
		ch.Fix = fmt.Sprintf("nothing accepted on port %d: a NAT or load balancer forwards the control port but not the "+
			"passive range (or sends it to another machine), or a firewall rejects it", port)
	}
	return ch
}

// dialFailure explains a failed control connection.
func dialFailure(what string, err error, port string) Check {
	ch := Check{Status: Fail, Detail: what + ": " + dialReason(err)}
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		ch.Fix = "the host name does not resolve; check its spelling and the DNS records"
	case isTimeout(err):
		ch.Fix = "a firewall or security group drops the packets: allow inbound " + port
	case errors.Is(err, syscall.ECONNREFUSED):
		ch.Fix = "nothing listens there: is the server running, on this address and port?"
	}
	return ch
}

func dialReason(err error) string {
	switch {
	case isTimeout(err):
		return "no answer (timed out)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to the address"
	}
	return err.Error()
}

// tlsFailure explains a failed TLS handshake.
func tlsFailure(err error, host string) Check {
	var (
		unknown x509.UnknownAuthorityError
		name    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	ch := Check{Status: Fail, Detail: "TLS handshake: " + err.Error()}
	switch {
	case errors.As(err, &unknown):
		ch.Detail = "the certificate is signed by an authority this machine does not trust (self-signed?)"
		ch.Fix = "partners' clients will reject it too: use a certificate from a public CA (cloudftpd reloads it on SIGHUP); " +
			"to check the rest now, probe again with --insecure"
	case errors.As(err, &name):
		ch.Detail = "the certificate does not name " + host + ": " + name.Error()
		ch.Fix = "use a certificate that names the host clients connect to, or probe the name it was issued for"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		ch.Detail = "the certificate has expired: " + invalid.Error()
		ch.Fix = "renew it (cloudftpd reloads certificates on SIGHUP)"
	case isTimeout(err):
		ch.Detail = "no TLS handshake in time"
		ch.Fix = "the port does not speak TLS this way: explicit FTPS starts plain (usually port 21), implicit FTPS with TLS (port 990)"
	}
	return ch
}

func tlsSuccess(st tls.ConnectionState) Check {
	ch := Check{Status: OK, Detail: tls.VersionName(st.Version) + ", " + tls.CipherSuiteName(st.CipherSuite)}
	if len(st.PeerCertificates) == 0 {
		return ch
	}
	leaf := st.PeerCertificates[0]
	ch.Detail += fmt.Sprintf("; certificate for %s, valid until %s", strings.Join(certs.Names(leaf), ", "), leaf.NotAfter.UTC().Format(time.DateOnly))
	if len(st.VerifiedChains) == 0 {
		ch.Detail += " (not verified: --insecure)"
	}
	switch left := time.Until(leaf.NotAfter); {
	case left <= 0:
		ch.Status = Fail
		ch.Fix = "the certificate has expired: renew it (cloudftpd reloads certificates on SIGHUP)"
	case left < certs.RenewWithin:
		ch.Status = Warn
		ch.Fix = "the certificate expires in " + roughly(left) + ": renew it (cloudftpd reloads certificates on SIGHUP)"
	}
	return ch
}

// roughly prints a duration in days, hours or minutes.
func roughly(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return fmt.Sprintf("%d minutes", d/time.Minute)
}

// reply227 finds h1,h2,h3,h4,p1,p2 in a PASV reply (RFC 959 leaves the
// text around them free).
var reply227 = regexp.MustCompile(`(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})`)

func parse227(msg string) (netip.AddrPort, bool) {
	m := reply227.FindStringSubmatch(msg)
	if m == nil {
		return netip.AddrPort{}, false
	}
	var b [6]byte
	for i := range b {
		n, err := strconv.Atoi(m[i+1])
		if err != nil || n > 255 {
			return netip.AddrPort{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5])), true
}

// parse229 finds the port in an EPSV reply, "(|||port|)" with any
// delimiter (RFC 2428, section 3).
func parse229(msg string) (uint16, bool) {
	open := strings.IndexByte(msg, '(')
	if open < 0 || len(msg) < open+2 {
		return 0, false
	}
	inner, _, ok := strings.Cut(msg[open+1:], ")")
	if !ok || len(inner) < 5 {
		return 0, false
	}
	d := inner[:1]
	fields := strings.Split(inner, d)
	// "|||port|" splits into "", "", "", "port", "".
	if len(fields) != 5 || fields[1] != "" || fields[2] != "" || fields[4] != "" {
		return 0, false
	}
	port, err := strconv.ParseUint(fields[3], 10, 16)
	if err != nil || port == 0 {
		return 0, false
	}
	return uint16(port), true
}
