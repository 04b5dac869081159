// Package probe diagnoses an FTP server from a client's side of the
// network. It logs in as a client would, opens passive data connections
// the way clients that trust the PASV address do and the way EPSV clients
// do, and says for each step what went wrong and what fixes it: above all
// the failure cloudftpd exists for, a server behind NAT that hands out its
// private address ("login works, ls hangs"), and its cousins, a firewall
// that drops the passive ports and a certificate the client rejects.
//
// It speaks to any FTP server, not only cloudftpd. It writes only when
// asked to (Options.Upload): one small file, deleted again.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/diag"
)

// TLSMode says whether and how the probe speaks TLS.
type TLSMode int

const (
	TLSOff      TLSMode = iota // plain FTP
	TLSExplicit                // AUTH TLS on the control connection, then PROT P
	TLSImplicit                // TLS from the first byte (FTPS on port 990)
)

// DefaultStepTimeout bounds each network step (a dial, a reply, a
// listing) when Options.StepTimeout is zero.
const DefaultStepTimeout = 5 * time.Second

// Options says which server to probe and how.
type Options struct {
	// Addr is host:port, or a host alone for port 21 (990 with
	// TLSImplicit).
	Addr string
	// User and Password log in; an empty User logs in as "anonymous".
	User, Password string
	TLS            TLSMode
	// TLSConfig verifies the server's certificate. Nil verifies it
	// against the system's roots for Addr's host.
	TLSConfig *tls.Config
	// StepTimeout bounds each dial, reply and listing.
	StepTimeout time.Duration
	// Upload also stores a small file (.cloudftpd-probe-*) in the login
	// directory and deletes it again.
	Upload bool
}

// Status and Check are the diagnosis' vocabulary, shared with the
// server-side doctor.
type (
	Status = diag.Status
	Check  = diag.Check
)

const (
	OK      = diag.OK
	Warn    = diag.Warn
	Fail    = diag.Fail
	Skipped = diag.Skipped
)

// Report is the outcome of a probe, step by step.
type Report struct {
	Target string  // the address probed
	User   string  // the user it logged in as
	Checks []Check // in the order they ran
	// PassivePorts are the ports the server's PASV and EPSV replies named,
	// for the firewall rules.
	PassivePorts []uint16
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool { return diag.Failed(r.Checks) }

// Check returns the check of a step and whether it ran.
func (r *Report) Check(step string) (Check, bool) { return diag.Find(r.Checks, step) }

// WriteTo prints the report for a person: one line a check, its detail
// and fix indented below.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var extra []string
	if len(r.PassivePorts) > 0 {
		ports := make([]string, len(r.PassivePorts))
		for i, p := range r.PassivePorts {
			ports[i] = strconv.Itoa(int(p))
		}
		extra = append(extra, "passive ports seen: "+strings.Join(ports, ", "))
	}
	return diag.Write(w, fmt.Sprintf("probe %s as %s", r.Target, r.User), r.Checks, extra...)
}

// Run probes the server and reports every step it got to. It stops at the
// first step the rest depend on (connecting, the greeting, TLS, login)
// and marks the rest skipped.
func Run(ctx context.Context, opts Options) *Report {
	p := newProber(opts)
	defer p.close()
	steps := []struct {
		name string
		run  func(context.Context) Check
	}{
		{"connect", p.connect},
		{"greeting", p.greeting},
		{"TLS", p.startTLS},
		{"login", p.login},
		{"PASV", p.pasv},
		{"EPSV", p.epsv},
		{"upload", p.upload},
	}
	failed := false
	for _, s := range steps {
		if (s.name == "TLS" && opts.TLS == TLSOff) || (s.name == "upload" && !opts.Upload) {
			continue
		}
		if failed {
			p.report.Checks = append(p.report.Checks, Check{Step: s.name, Status: Skipped, Detail: "not tried: an earlier step failed"})
			continue
		}
		c := s.run(ctx)
		c.Step = s.name
		p.report.Checks = append(p.report.Checks, c)
		// The data checks are independent of each other; everything
		// before them is a precondition.
		if c.Status == Fail && s.name != "PASV" {
			failed = true
		}
	}
	if !failed {
		p.quit()
	}
	return &p.report
}

// prober holds the state of one probe: the control connection and what
// the steps learnt.
type prober struct {
	opts    Options
	report  Report
	host    string // Addr's host, for the certificate
	conn    net.Conn
	ctrl    *textproto.Conn
	server  netip.Addr // the address the control connection reached
	tlsConf *tls.Config
	protP   bool  // data connections are TLS
	budget  int64 // bytes the current reply may still take (see replyBudget)
}

func newProber(opts Options) *prober {
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = DefaultStepTimeout
	}
	port := "21"
	if opts.TLS == TLSImplicit {
		port = "990"
	}
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		host = strings.Trim(opts.Addr, "[]")
		opts.Addr = net.JoinHostPort(host, port)
	}
	user := opts.User
	if user == "" {
		user = "anonymous"
	}
	conf := opts.TLSConfig
	if conf == nil {
		conf = &tls.Config{}
	} else {
		conf = conf.Clone()
	}
	if conf.ServerName == "" {
		// Also with InsecureSkipVerify: the client session cache is keyed
		// by ServerName, else by the remote address, which differs for each
		// data connection, and then no data connection resumes.
		conf.ServerName = host
	}
	if conf.ClientSessionCache == nil {
		// Servers commonly require data connections to resume the
		// control connection's TLS session (vsftpd's require_ssl_reuse).
		conf.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	}
	return &prober{
		opts:    opts,
		report:  Report{Target: opts.Addr, User: user},
		host:    host,
		tlsConf: conf,
	}
}

func (p *prober) close() {
	if p.conn != nil {
		p.conn.Close()
	}
}

// command sends one command and reads its reply, within the step timeout.
func (p *prober) command(format string, args ...any) (int, string, error) {
	p.conn.SetDeadline(time.Now().Add(p.opts.StepTimeout))
	if err := p.ctrl.PrintfLine(format, args...); err != nil {
		return 0, "", err
	}
	return p.reply()
}

// replyBudget bounds what the probe reads for one reply: a server that
// sends continuation lines without end gets an error, not the probe's
// memory (textproto keeps a multi-line reply whole).
const replyBudget = 64 << 10

var errReplyTooLong = fmt.Errorf("reply longer than %d bytes", replyBudget)

// budgetConn is the control connection as textproto reads it, failing a
// reply that outgrows the prober's budget.
type budgetConn struct {
	net.Conn
	left *int64
}

func (c budgetConn) Read(b []byte) (int, error) {
	if *c.left <= 0 {
		return 0, errReplyTooLong
	}
	if int64(len(b)) > *c.left {
		b = b[:*c.left]
	}
	n, err := c.Conn.Read(b)
	*c.left -= int64(n)
	return n, err
}

// reply reads one reply, single- or multi-line, whatever its code.
func (p *prober) reply() (int, string, error) {
	p.budget = replyBudget
	p.conn.SetDeadline(time.Now().Add(p.opts.StepTimeout))
	code, msg, err := p.ctrl.ReadResponse(0)
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) {
		err = nil // a reply with an unexpected code: the caller judges it
	}
	return code, msg, err
}

func (p *prober) connect(ctx context.Context) Check {
	d := net.Dialer{Timeout: p.opts.StepTimeout}
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", p.opts.Addr)
	if err != nil {
		return dialFailure("the control connection to "+p.opts.Addr, err, "TCP port "+portOf(p.opts.Addr)+" on the server")
	}
	p.conn = c
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	p.server = ap.Addr().Unmap()
	if p.opts.TLS == TLSImplicit {
		tc := tls.Client(c, p.tlsConf)
		hctx, cancel := context.WithTimeout(ctx, p.opts.StepTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			ch := tlsFailure(err, p.host)
			ch.Detail = "implicit TLS: " + ch.Detail
			return ch
		}
		p.conn = tc
	}
	p.ctrl = textproto.NewConn(budgetConn{p.conn, &p.budget})
	return Check{Status: OK, Detail: fmt.Sprintf("%s from %s in %s",
		c.RemoteAddr(), c.LocalAddr(), time.Since(start).Round(100*time.Microsecond))}
}

func (p *prober) greeting(context.Context) Check {
	code, msg, err := p.reply()
	switch {
	case isTimeout(err):
		return Check{Status: Fail,
			Detail: fmt.Sprintf("connected, but no greeting within %s", p.opts.StepTimeout),
			Fix: "a server that accepts and stays silent usually waits for a PROXY protocol header: " +
				"either a load balancer that should send one does not, or the server expects one " +
				"from this address (cloudftpd: the listener's proxy_protocol and trusted balancers)"}
	case errors.Is(err, errReplyTooLong):
		return Check{Status: Fail, Detail: "reading the greeting: " + err.Error(),
			Fix: "what answers on this port does not end its reply: it is not an FTP server, or a broken one"}
	case err != nil:
		return Check{Status: Fail, Detail: "reading the greeting: " + err.Error(),
			Fix: "the server closed the connection at once: look at its log (too many sessions, or this address refused)"}
	case code != 220:
		return Check{Status: Fail, Detail: fmt.Sprintf("%d %s", code, msg),
			Fix: "the server refused the session; its message says why"}
	}
	return Check{Status: OK, Detail: fmt.Sprintf("%d %s", code, firstLine(msg))}
}

func (p *prober) startTLS(ctx context.Context) Check {
	if p.opts.TLS == TLSExplicit {
		code, msg, err := p.command("AUTH TLS")
		if err != nil {
			return controlFailure("AUTH TLS", err)
		}
		if code != 234 {
			return Check{Status: Fail, Detail: fmt.Sprintf("AUTH TLS: %d %s", code, msg),
				Fix: "the server does not offer explicit FTPS here (cloudftpd: tls = \"explicit\" and a certificate on the listener)"}
		}
		tc := tls.Client(p.conn, p.tlsConf)
		hctx, cancel := context.WithTimeout(ctx, p.opts.StepTimeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			return tlsFailure(err, p.host)
		}
		p.conn = tc
		p.ctrl = textproto.NewConn(budgetConn{tc, &p.budget})
	}
	// Implicit FTPS too: clients send PBSZ and PROT there as well.
	for _, c := range []string{"PBSZ 0", "PROT P"} {
		code, msg, err := p.command("%s", c)
		if err != nil {
			return controlFailure(c, err)
		}
		if code != 200 {
			return Check{Status: Fail, Detail: fmt.Sprintf("%s: %d %s", c, code, msg),
				Fix: "the server does not protect data connections; clients that require PROT P cannot transfer"}
		}
	}
	p.protP = true
	tc := p.conn.(*tls.Conn)
	return tlsSuccess(tc.ConnectionState())
}

func (p *prober) login(context.Context) Check {
	user, pass := p.report.User, p.opts.Password
	if p.opts.User == "" && pass == "" {
		pass = "probe@"
	}
	code, msg, err := p.command("USER %s", user)
	if err != nil {
		return controlFailure("USER", err)
	}
	if code == 331 || code == 332 {
		code, msg, err = p.command("PASS %s", pass)
		if err != nil {
			return controlFailure("PASS", err)
		}
	}
	switch {
	case code == 230:
		return Check{Status: OK, Detail: fmt.Sprintf("%d %s", code, firstLine(msg))}
	case code == 530 && p.opts.TLS == TLSOff && mentionsTLS(msg):
		return Check{Status: Fail, Detail: fmt.Sprintf("%d %s", code, msg),
			Fix: "the server requires FTPS: probe again with --tls explicit"}
	case code == 530:
		return Check{Status: Fail, Detail: fmt.Sprintf("%d %s", code, msg),
			Fix: "check the user name and password (and, for anonymous, whether the server allows it)"}
	}
	return Check{Status: Fail, Detail: fmt.Sprintf("%d %s", code, msg), Fix: "the server refused the login; its message says why"}
}

// mentionsTLS guesses whether a 530 refuses a clear-text login: cloudftpd
// says "TLS required", vsftpd "Non-anonymous sessions must use
// encryption", ProFTPD and Pure-FTPd name SSL/TLS or AUTH.
func mentionsTLS(msg string) bool {
	m := strings.ToUpper(msg)
	for _, w := range []string{"TLS", "SSL", "AUTH", "ENCRYPT"} {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

func (p *prober) quit() {
	if p.ctrl != nil {
		p.command("QUIT")
	}
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func controlFailure(cmd string, err error) Check {
	if isTimeout(err) {
		return Check{Status: Fail, Detail: cmd + ": no reply in time",
			Fix: "the server stopped answering on the control connection; look at its log"}
	}
	return Check{Status: Fail, Detail: cmd + ": " + err.Error(),
		Fix: "the server closed the control connection; look at its log"}
}
