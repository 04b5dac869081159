// Package ftp is cloudftpd's protocol engine: one Session per control
// connection, driving the RFC 959 / 2389 / 2428 / 3659 command set over a
// storage.Storage with data connections made as a netpolicy.Policy says.
//
// It offers:
//   - Config, what a listener hands to its sessions;
//   - Session, with Serve, Shutdown and Close, in the manner of net/http's conn;
//   - Reply, a reply as a value.
//
// The command table (commands.go) reads like the RFC's command list; every
// handler answers with a reply code, and storage errors map to codes in one
// place (errors.go).
package ftp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Config is what a listener gives each of its sessions. It must not be
// changed while sessions use it.
type Config struct {
	Banner            string
	IdleTimeout       time.Duration // control connection without a command
	DataTimeout       time.Duration // waiting for a data connection
	StallTimeout      time.Duration // a transfer moving no data
	LoginTimeout      time.Duration // connected but not logged in
	MaxLoginFailures  int
	LoginFailureDelay time.Duration
	// MaxLineLength bounds a command line (default 4096 bytes).
	MaxLineLength int
	// MaxBadLines closes a session after this many consecutive over-long or
	// unparseable lines (default 10).
	MaxBadLines int

	// TLS is the FTPS policy; the zero value means no TLS.
	TLS TLSPolicy

	Auth    auth.Authenticator
	Storage storage.Backend
	Network *netpolicy.Policy
	Logger  *slog.Logger
	// Metrics counts logins, transfers and trouble; nil counts nothing.
	Metrics Metrics
}

func (c *Config) maxLine() int {
	if c.MaxLineLength > 0 {
		return c.MaxLineLength
	}
	return 4096
}

func (c *Config) maxBadLines() int {
	if c.MaxBadLines > 0 {
		return c.MaxBadLines
	}
	return 10
}

// Session is one control connection.
type Session struct {
	cfg    *Config
	conn   net.Conn
	lr     lineReader
	client netip.Addr // after PROXY protocol, if any
	local  netip.Addr // the address the client connected to
	log    *slog.Logger
	start  time.Time

	ctx    context.Context
	cancel context.CancelFunc

	wmu  sync.Mutex // serialises replies
	wbuf []byte

	// Login state.
	userName      string // from USER, before PASS
	user          *auth.User
	fs            storage.Storage
	cwd           string
	loginFailures int
	badLines      int

	// Transfer parameters.
	binary      bool
	restOffset  int64
	renameFrom  string
	epsvAll     bool
	pasv        *netpolicy.Reservation
	active      netip.AddrPort // PORT/EPRT target
	mlstFacts   factSet
	warnedNAT   bool
	utf8        bool
	commandSeen string // verb being served, for panic logs

	// FTPS state (RFC 4217).
	tlsConf *tls.Config // per-session clone, see sessionTLS
	secure  bool        // control connection is TLS
	pbsz    bool        // PBSZ seen
	protP   bool        // data connections are protected

	mu       sync.Mutex
	xfer     *transfer // running transfer, or nil
	shutdown bool      // Shutdown was called
	closed   atomic.Bool
}

// NewSession prepares a session on conn. client is the peer's address as
// the server sees it (after PROXY protocol); local is the address it reached.
func NewSession(cfg *Config, conn net.Conn, client, local netip.Addr) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		cfg:       cfg,
		conn:      conn,
		client:    client.Unmap(),
		local:     local.Unmap(),
		ctx:       ctx,
		cancel:    cancel,
		cwd:       "/",
		mlstFacts: defaultFacts,
		start:     time.Now(),
	}
	setOOBInline(conn)
	s.lr = lineReader{r: bufio.NewReaderSize(conn, 512), max: cfg.maxLine()}
	s.log = cfg.Logger.With("client", s.client.String())
	return s
}

// Serve runs the session until the client quits, a timeout fires or the
// session is closed. A panic ends only this session.
func (s *Session) Serve() {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in session", "command", s.commandSeen, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.reply(421, "Internal server error; closing control connection.")
		}
		s.Close()
		// The session ends when its transfer has finished cleaning up (an
		// abandoned upload removed), not before.
		if x := s.currentTransfer(); x != nil {
			<-x.done
		}
		s.log.Info("session end", "user", s.userLabel(), "duration", time.Since(s.start).Round(time.Millisecond))
	}()
	s.log.Info("session start", "local", s.local.String())
	if s.cfg.TLS.Implicit {
		if err := s.upgradeControl(); err != nil {
			s.log.Warn("TLS handshake on implicit FTPS connection failed", "err", err)
			s.cfg.metrics().TLSHandshakeFailed(false)
			return
		}
		// Implicit FTPS protects data connections from the start.
		s.pbsz, s.protP = true, true
	}
	s.reply(220, s.cfg.Banner)
	for !s.closed.Load() {
		s.conn.SetReadDeadline(s.readDeadline())
		line, err := s.lr.readLine()
		if err != nil {
			if s.handleReadError(err) {
				continue
			}
			return
		}
		s.badLines = 0
		s.dispatch(line)
	}
}

// readDeadline is the idle limit, tightened to the login limit until the
// client has logged in.
func (s *Session) readDeadline() time.Time {
	d := time.Now().Add(s.cfg.IdleTimeout)
	if s.user == nil && s.cfg.LoginTimeout > 0 {
		if ld := s.start.Add(s.cfg.LoginTimeout); ld.Before(d) {
			d = ld
		}
	}
	return d
}

// handleReadError decides what a failed control read means; it returns
// true when the session goes on.
func (s *Session) handleReadError(err error) bool {
	if errors.Is(err, errLineTooLong) {
		s.badLines++
		if s.badLines >= s.cfg.maxBadLines() {
			s.reply(421, "Too many invalid command lines; closing control connection.")
			s.log.Warn("session closed: flood of over-long command lines")
			return false
		}
		s.reply(500, fmt.Sprintf("Command line too long (limit %d bytes).", s.cfg.maxLine()))
		return true
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !s.closed.Load() {
		if s.transferRunning() {
			return true // a long transfer is not an idle session
		}
		if s.user == nil && time.Since(s.start) >= s.cfg.LoginTimeout {
			s.reply(421, "Login timeout; closing control connection.")
		} else {
			s.reply(421, "Idle timeout; closing control connection.")
		}
		s.log.Info("session timed out", "user", s.userLabel())
		return false
	}
	// The client went away. An upload still running is abandoned, not
	// committed: the client cannot have seen it succeed.
	if x := s.currentTransfer(); x != nil {
		x.abandon()
	}
	return false
}

// dispatch parses one command line and runs its handler.
func (s *Session) dispatch(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(strings.TrimSpace(verb))
	if verb == "" {
		s.reply(500, "Empty command.")
		return
	}
	cmd, ok := commands[verb]
	if !ok {
		s.reply(500, fmt.Sprintf("Unknown command %q.", truncate(verb, 16)))
		return
	}
	s.commandSeen = verb
	if !cmd.duringTransfer {
		s.waitTransfer()
	}
	if s.closed.Load() {
		return
	}
	if !cmd.beforeLogin && s.user == nil {
		s.reply(530, "Please log in with USER and PASS first.")
		return
	}
	if cmd.argument == argRequired && arg == "" {
		s.reply(501, verb+" needs an argument.")
		return
	}
	if cmd.argument == argNone && arg != "" {
		s.reply(501, verb+" takes no argument.")
		return
	}
	if verb != "RNTO" {
		s.renameFrom = "" // RNTO must follow RNFR immediately
	}
	// REST stays set until the next transfer command takes it: clients
	// send PASV, TYPE or SIZE between REST and RETR.
	cmd.handler(s, arg)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Shutdown asks the session to end gracefully: at once when it is idle,
// after the running transfer otherwise.
func (s *Session) Shutdown() {
	s.mu.Lock()
	s.shutdown = true
	busy := s.xfer != nil
	s.mu.Unlock()
	if !busy {
		s.reply(421, "Server shutting down; closing control connection.")
		s.Close()
	}
}

// Close ends the session at once, aborting any transfer.
func (s *Session) Close() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.cancel()
	if x := s.currentTransfer(); x != nil {
		x.abandon()
	}
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	conn.Close()
	s.releasePassive()
	s.closeStorage()
}

// closeStorage releases the user's storage tree once the session is closed
// and no transfer uses it any more; whichever of Close and the transfer's
// end comes last does it.
func (s *Session) closeStorage() {
	s.mu.Lock()
	fs := s.fs
	if s.xfer != nil || !s.closed.Load() {
		fs = nil
	} else {
		s.fs = nil
	}
	s.mu.Unlock()
	if fs != nil {
		fs.Close()
	}
}

// Done reports whether the session has ended.
func (s *Session) Done() bool { return s.closed.Load() }

// Busy reports whether a transfer is running.
func (s *Session) Busy() bool { return s.transferRunning() }

func (s *Session) userLabel() string {
	if s.user != nil {
		return s.user.Name
	}
	return s.userName
}

// setPassive records a new passive reservation, releasing the previous one:
// a session holds at most one, so PASV in a loop cannot drain the range.
func (s *Session) setPassive(r *netpolicy.Reservation) {
	s.mu.Lock()
	old := s.pasv
	s.pasv = r
	s.mu.Unlock()
	if old != nil {
		old.Release()
	}
}

// takePassive hands the pending reservation to a transfer.
func (s *Session) takePassive() *netpolicy.Reservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.pasv
	s.pasv = nil
	return r
}

func (s *Session) releasePassive() { s.setPassive(nil) }
