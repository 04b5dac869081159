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

	"golang.org/x/time/rate"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/bandwidth"
	"github.com/cloudftpd/cloudftpd/internal/events"
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
	// ReplaceGrace is how long an upload that would replace an existing
	// file waits, after its data connection ended, for a sign that the
	// client died mid-upload (its control connection closing) before the
	// old file is replaced; 0 does not wait. See clientDied.
	ReplaceGrace time.Duration
	// KeepPartial commits what arrived of a failed upload of a new
	// file (STOR, STOU), so the client can resume it; see keepPartial.
	KeepPartial bool
	// BinaryOnly transfers files unchanged whatever TYPE says (see
	// convertsASCII).
	BinaryOnly bool
	// MaxLineLength bounds a command line (default 4096 bytes).
	MaxLineLength int
	// MaxBadLines closes a session after this many consecutive over-long or
	// unparseable lines (default 10).
	MaxBadLines int
	// CommandRate paces a session's commands: at most this many per
	// second after a burst of CommandBurst (at least 1); 0 does not pace.
	// The next command is read only when its turn comes, so a flood of
	// NOOPs waits in the client's socket rather than keeping the engine
	// busy.
	CommandRate  float64
	CommandBurst int

	// UploadLimit and DownloadLimit are the listener's bandwidth limits,
	// shared by its sessions; nil (or a rate of 0) limits nothing.
	UploadLimit, DownloadLimit *bandwidth.Limiter
	// UserRates holds the buckets of users' upload_rate and
	// download_rate, one per user shared by all of that user's sessions:
	// the server's, the same for every listener. Nil gives each session
	// buckets of its own.
	UserRates *bandwidth.Shared

	// TLS is the FTPS policy; the zero value means no TLS.
	TLS TLSPolicy

	Auth    auth.Authenticator
	Storage storage.Backend
	// Volumes are the named backends that users' virtual folders may
	// mount ([[volume]] in the config); a folder without a volume is on
	// Storage.
	Volumes map[string]storage.Backend
	Network *netpolicy.Policy
	Logger  *slog.Logger
	// Metrics counts logins, transfers and trouble; nil counts nothing.
	Metrics Metrics
	// Events receives what happened (uploads, logins, deletions...);
	// nil records nothing.
	Events events.Recorder
	// Guard hears about clients' offences (failed logins...); nil
	// ignores them.
	Guard Guard
	// UploadChecksum computes the SHA-256 of every whole upload (STOR,
	// STOU; not APPE or REST + STOR) as it arrives, for its event, its
	// log line and the backend to store (storage.ChecksumSetter). It
	// costs the zero-copy path of local uploads (splice): off, a plain
	// local upload stays zero-copy.
	UploadChecksum bool
	// HashMaxSize is the largest file that HASH and the X commands hash
	// on request when no SHA-256 is stored with it (or another algorithm
	// is asked for); 0 computes nothing on request.
	HashMaxSize int64
	// HashRate bounds the bytes a second that one session hashes on
	// request; 0 is no limit.
	HashRate int64
	// Quotas holds users' storage quotas (quota.go); nil enforces none.
	Quotas QuotaKeeper
	// UserSessions counts users' logged-in sessions server-wide, for
	// their max_sessions; nil counts nothing and enforces no
	// max_sessions (a login of a user who has one logs a warning).
	UserSessions SessionCounter
	// Listener and StorageName label events: the listener's configured
	// address and the storage backend ("local", "s3").
	Listener, StorageName string
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
//
// Ownership of its state, so that every field has one writer:
//   - set in NewSession and never changed: cfg, client, local, log, ctx,
//     cancel, out (which has its own lock) and raw;
//   - the command goroutine (the one running Serve) owns everything under
//     "command state": only it writes those fields. A transfer goroutine
//     reads some of them (fs, user, mlstFacts, binary) while it runs; that
//     is safe because the commands that change them are not duringTransfer
//     and so wait for the transfer (the go statement and the transfer's done
//     channel order the accesses);
//   - mu guards conn (swapped by AUTH TLS and CCC, closed by Close from any
//     goroutine), xfer and shutdown;
//   - closed is atomic.
//
// Teardown has one path: whatever ends the session (QUIT, a timeout, the
// client going away, Server.Close or Shutdown, a panic), Serve's deferred
// teardown stops the transfer, waits for it, and releases the passive
// port and the user's storage. Close from other goroutines only stops the
// I/O, which makes Serve return.
type Session struct {
	cfg    *Config
	id     string     // unique, for events and logs
	client netip.Addr // after PROXY protocol, if any
	local  netip.Addr // the address the client connected to
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	out    *replyWriter // every byte sent on the control connection
	raw    net.Conn     // the accepted connection, for peerClosed

	// Command state: written by the command goroutine only.
	lr                 lineReader
	start              time.Time
	userName           string // from USER, before PASS
	slotUser           string // holds a max_sessions slot of this user
	user               *auth.User
	fs                 storage.Storage
	cwd                string
	loginFailures      int
	badLines           int
	binary             bool
	restOffset         int64
	renameFrom         string
	epsvAll            bool
	pasv               *netpolicy.Reservation
	active             netip.AddrPort // PORT/EPRT target
	mlstFacts          factSet
	pasvSent           netip.AddrPort    // address and port of the last PASV reply, for STAT (an ALG cannot rewrite that)
	warnedNAT          bool              // the private-PASV-address warning was logged
	refusedBeforeLogin bool              // a command was refused for want of a login
	commandSeen        string            // verb being served, for panic logs
	tlsConf            *tls.Config       // per-session clone, see sessionTLS
	secure             bool              // control connection is TLS
	pbsz               bool              // PBSZ seen
	protP              bool              // data connections are protected
	hashAlgo           int               // index in hashAlgos chosen by OPTS HASH
	hashRate           *rate.Limiter     // hashing on request; see hashLimiter
	quota              Quota             // the user's, once an upload or deletion needed it
	commands           *rate.Limiter     // paces commands (Config.CommandRate); nil: unpaced
	ownRates           *bandwidth.Shared // user buckets when Config.UserRates is nil

	mu       sync.Mutex
	conn     net.Conn  // the control connection (TLS after AUTH)
	xfer     *transfer // running transfer, or nil
	shutdown bool      // Shutdown was called
	// lastVerb and lastActive are the last command and when it came,
	// for Info (info.go); bytesUp and bytesDown are the file data of
	// finished transfers, added under mu as xfer is cleared, so that
	// Info never counts a transfer twice or not at all.
	lastVerb           string
	lastActive         time.Time
	bytesUp, bytesDown atomic.Int64
	closed             atomic.Bool
}

// NewSession prepares a session on conn. client is the peer's address as
// the server sees it (after PROXY protocol); local is the address it reached.
func NewSession(cfg *Config, conn net.Conn, client, local netip.Addr) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		cfg:       cfg,
		id:        events.NewID(time.Now()),
		conn:      conn,
		raw:       conn,
		out:       newReplyWriter(conn, cfg.IdleTimeout),
		client:    client.Unmap(),
		local:     local.Unmap(),
		ctx:       ctx,
		cancel:    cancel,
		cwd:       "/",
		mlstFacts: defaultFacts,
		start:     time.Now(),
	}
	if cfg.CommandRate > 0 {
		s.commands = rate.NewLimiter(rate.Limit(cfg.CommandRate), max(cfg.CommandBurst, 1))
	}
	setOOBInline(conn)
	s.lr = lineReader{r: bufio.NewReaderSize(conn, 512), max: cfg.maxLine()}
	s.log = cfg.Logger.With("client", s.client.String(), "session", s.id)
	return s
}

// Serve runs the session until the client quits, a timeout fires or the
// session is closed. A panic ends only this session.
func (s *Session) Serve() {
	defer s.teardown()
	s.log.Info("session start", "local", s.local.String())
	if s.cfg.TLS.Implicit {
		if err := s.upgradeControl(); err != nil {
			s.log.Warn("TLS handshake on implicit FTPS connection failed", "err", err)
			s.cfg.metrics().TLSHandshakeFailed(false)
			s.offend(OffenceTLSHandshake)
			return
		}
		// Implicit FTPS protects data connections from the start.
		s.pbsz, s.protP = true, true
	}
	s.reply(220, s.cfg.Banner)
	for !s.closed.Load() {
		if s.commands != nil && s.commands.Wait(s.ctx) != nil {
			return // the session was closed while it waited
		}
		s.controlConn().SetReadDeadline(s.readDeadline())
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

// teardown is the one place a session's resources are released, in the
// command goroutine, whatever ended it.
func (s *Session) teardown() {
	if v := recover(); v != nil {
		s.log.Error("panic in session", "command", s.commandSeen, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		s.reply(421, "Internal server error; closing control connection.")
	}
	s.Close()
	// The transfer finishes its cleanup (an abandoned upload removed, a
	// file closed) before the storage it uses is released.
	if x := s.currentTransfer(); x != nil {
		<-x.done
	}
	s.releasePassive()
	if s.commandSeen == "" && s.user == nil && !s.cfg.TLS.Implicit {
		s.offend(OffenceNoCommand) // a scanner's connect, or a port check
	}
	took := time.Since(s.start)
	s.record(events.Event{Type: events.SessionEnded, Duration: took, Result: events.ResultOK})
	if s.fs != nil {
		s.fs.Close()
		s.fs = nil
	}
	s.releaseSlot()
	s.log.Info("session end", "user", s.userLabel(), "duration", took.Round(time.Millisecond))
}

// controlConn is the current control connection.
func (s *Session) controlConn() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
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
		if s.user == nil && s.cfg.LoginTimeout > 0 && time.Since(s.start) >= s.cfg.LoginTimeout {
			s.reply(421, "Login timeout; closing control connection.")
		} else {
			s.reply(421, "Idle timeout; closing control connection.")
		}
		s.log.Info("session timed out", "user", s.userLabel())
		return false
	}
	// The client went away; teardown abandons a running upload, which is
	// not committed: the client cannot have seen it succeed.
	return false
}

// dispatch parses one command line and runs its handler.
func (s *Session) dispatch(line string) {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(strings.TrimSpace(verb))
	if verb != "RNTO" {
		// RNTO must follow RNFR immediately: any other line, even one
		// refused below, cancels the rename.
		s.renameFrom = ""
	}
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
	s.noteCommand(verb)
	if !cmd.duringTransfer {
		s.waitTransfer()
	}
	if s.closed.Load() {
		return
	}
	if !cmd.beforeLogin && s.user == nil {
		if !s.refusedBeforeLogin {
			// Once per connection: a confused client sending a
			// few commands early is not a scanner.
			s.refusedBeforeLogin = true
			s.offend(OffenceBeforeLogin)
		}
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

// Close ends the session at once, from any goroutine: it aborts the
// running transfer and closes the control connection, which makes Serve
// return and tear the session down.
func (s *Session) Close() {
	if !s.closed.CompareAndSwap(false, true) {
		return
	}
	s.cancel()
	if x := s.currentTransfer(); x != nil {
		x.abandon()
	}
	s.controlConn().Close()
}

func (s *Session) userLabel() string {
	if s.user != nil {
		return s.user.Name
	}
	return s.userName
}

// setPassive records a new passive reservation, releasing the previous one:
// a session holds at most one, so PASV in a loop cannot drain the range.
func (s *Session) setPassive(r *netpolicy.Reservation) {
	old := s.pasv
	s.pasv = r
	if old != nil {
		old.Release()
	}
}

// takePassive hands the pending reservation to a transfer.
func (s *Session) takePassive() *netpolicy.Reservation {
	r := s.pasv
	s.pasv = nil
	return r
}

func (s *Session) releasePassive() { s.setPassive(nil) }

// Client is the client's address (after PROXY protocol).
func (s *Session) Client() netip.Addr { return s.client }
