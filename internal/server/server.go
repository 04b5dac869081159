// Package server runs cloudftpd's listeners: it accepts control
// connections, enforces connection limits, hands each connection to an
// ftp.Session, and shuts down gracefully.
//
// It offers Server with Start, Serve, Addrs, Shutdown and Close, shaped like
// net/http's Server, and New, which builds one from a config.Config.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/ftp"
	"github.com/cloudftpd/cloudftpd/internal/metrics"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/local"
	"github.com/cloudftpd/cloudftpd/internal/storage/s3store"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("server: closed")

// Options are the parts of a Server that do not come from the config file.
type Options struct {
	Logger *slog.Logger
	// Auth overrides the users file named in the config.
	Auth auth.Authenticator
	// Storage overrides the backend named in the config.
	Storage storage.Backend
}

// Server serves every listener of one configuration.
type Server struct {
	cfg     *config.Config
	logger  *slog.Logger
	auth    auth.Authenticator
	storage storage.Backend
	ports   []*netpolicy.PortPool // one per listener, same index
	certs   []*certs.Store        // one per listener (nil without TLS)
	// sources are the discovered passive addresses ("aws", DNS names),
	// shared by every rule that names them so each is refreshed once.
	sources  map[string]refreshingSource
	bgCancel context.CancelFunc
	metrics  *metrics.Metrics // nil without [metrics]

	mu          sync.Mutex
	listeners   []net.Listener
	metricsSrv  *http.Server // the /metrics endpoint, once started
	metricsAddr net.Addr
	sessions    map[*ftp.Session]struct{}
	perIP       map[netip.Addr]int
	closing     bool
	serving     sync.WaitGroup // accept loops
	active      sync.WaitGroup // sessions
}

// New builds a server from cfg. Nothing listens until Start.
func New(cfg *config.Config, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		logger:   logger,
		auth:     opts.Auth,
		storage:  opts.Storage,
		sessions: make(map[*ftp.Session]struct{}),
		perIP:    make(map[netip.Addr]int),
	}
	if s.auth == nil {
		if cfg.Auth.UsersFile == "" {
			return nil, errors.New("server: auth.users_file is not set")
		}
		uf, err := auth.LoadUsersFile(cfg.Path(cfg.Auth.UsersFile))
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.auth = auth.NewFileAuthenticator(uf, auth.Options{
			Anonymous:     cfg.Auth.Anonymous,
			AnonymousHome: cfg.Auth.AnonymousHome,
			Logger:        logger,
		})
	}
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		var st *certs.Store
		if lc.TLS != config.TLSOff {
			var err error
			if st, err = certs.Load(cfg.Path(lc.TLSCert), cfg.Path(lc.TLSKey)); err != nil {
				return nil, fmt.Errorf("server: listener[%d]: %w", i, err)
			}
		}
		s.certs = append(s.certs, st)
	}
	if err := s.discoverAddresses(); err != nil {
		return nil, err
	}
	if cfg.Metrics.Address != "" {
		s.metrics = metrics.New()
		s.metrics.Gauge("cloudftpd_sessions", "Open control connections.", func() float64 { return float64(s.SessionCount()) })
		s.metrics.Gauge("cloudftpd_passive_ports_open", "Passive sockets open (waiting for or lingering after a transfer), all listeners.",
			func() float64 { return float64(s.openPassivePorts()) })
	}
	if s.storage == nil {
		b, err := newBackend(cfg, logger)
		if err != nil {
			return nil, fmt.Errorf("server: storage: %w", err)
		}
		s.storage = b
	}
	return s, nil
}

// newBackend builds the storage backend the config names.
func newBackend(cfg *config.Config, logger *slog.Logger) (storage.Backend, error) {
	st := cfg.Storage
	if st.Backend == "s3" {
		// Bounded: New checks the bucket once, so a wrong endpoint or
		// missing permission stops the start with its reason.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s3store.New(ctx, s3store.Options{
			Bucket:      st.Bucket,
			Prefix:      st.Prefix,
			Region:      st.Region,
			Endpoint:    st.Endpoint,
			PathStyle:   st.PathStyle,
			PartSize:    int64(st.PartSize),
			Concurrency: st.Concurrency,
			Logger:      logger,

			// Shared by all sessions: bounds the part buffers of all
			// uploads, and the silence of any one S3 request.
			UploadMemory:   int64(st.UploadMemory),
			RequestTimeout: st.RequestTimeout.D(),
		})
	}
	return local.New(cfg.Path(st.Root), local.Options{})
}

// refreshingSource is an address source that keeps itself current.
type refreshingSource interface {
	netpolicy.AddressSource
	Run(ctx context.Context)
}

// discoverAddresses resolves every "aws" and DNS-name passive address once,
// at start-up: a server that cannot learn its public address refuses to
// start with the reason, instead of handing clients addresses that hang.
func (s *Server) discoverAddresses() error {
	s.sources = make(map[string]refreshingSource)
	for i := range s.cfg.Listeners {
		for j, r := range s.cfg.Listeners[i].Passive {
			key := strings.ToLower(r.Address)
			if _, done := s.sources[key]; done {
				continue
			}
			var src refreshingSource
			var err error
			switch r.Kind() {
			case config.AddressAWS:
				src, err = netpolicy.NewAWSAddress(context.Background(), netpolicy.AWSOptions{Logger: s.logger})
			case config.AddressDNS:
				src, err = netpolicy.NewDNSAddress(context.Background(), r.Address, netpolicy.DNSOptions{Logger: s.logger})
			default:
				continue
			}
			if err != nil {
				return fmt.Errorf("server: listener[%d].passive[%d].address %q: %w", i, j, r.Address, err)
			}
			s.sources[key] = src
		}
	}
	return nil
}

// Start opens every configured listener and serves them in the background.
// If one cannot be opened, the others are closed and the error returned.
func (s *Server) Start() error {
	bg, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.bgCancel = cancel
	s.mu.Unlock()
	for _, src := range s.sources {
		go src.Run(bg)
	}
	if err := s.startMetrics(); err != nil {
		return err
	}
	var lns []net.Listener
	for i := range s.cfg.Listeners {
		lc := &s.cfg.Listeners[i]
		ln, err := net.Listen("tcp", lc.AddrPort().String())
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			s.stopMetrics()
			return fmt.Errorf("server: listener[%d]: %w", i, err)
		}
		lns = append(lns, ln)
	}
	for i, ln := range lns {
		if lc := &s.cfg.Listeners[i]; lc.ProxyProtocol {
			ln = netpolicy.WrapProxyProtocol(ln, lc.TrustedProxies())
		}
		if err := s.track(ln); err != nil {
			return err
		}
		sc, err := s.sessionConfig(i)
		if err != nil {
			return err
		}
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			s.serve(ln, sc)
		}()
		s.logger.Info("listening", "address", ln.Addr().String(), "passive_ports", s.cfg.Listeners[i].PassivePorts)
	}
	return nil
}

// startMetrics serves /metrics when the config asks for it. Plain HTTP:
// the numbers hold no secrets, and the address is meant to be private
// (loopback, or a monitoring network).
func (s *Server) startMetrics() error {
	if s.metrics == nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Metrics.Address)
	if err != nil {
		return fmt.Errorf("server: metrics.address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	s.metricsSrv, s.metricsAddr = hs, ln.Addr()
	s.mu.Unlock()
	go hs.Serve(ln) // ends when stopMetrics closes the server
	s.logger.Info("metrics", "address", ln.Addr().String(), "path", "/metrics")
	return nil
}

// stopMetrics closes the endpoint and its scrapers' kept-alive
// connections.
func (s *Server) stopMetrics() {
	s.mu.Lock()
	hs := s.metricsSrv
	s.metricsSrv = nil
	s.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
}

// MetricsAddr is the address /metrics is served on, or nil.
func (s *Server) MetricsAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metricsAddr
}

// Addrs returns the addresses of the open listeners, in config order.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		out[i] = l.Addr()
	}
	return out
}

func (s *Server) track(ln net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		ln.Close()
		return ErrServerClosed
	}
	s.listeners = append(s.listeners, ln)
	return nil
}

// sessionConfig builds what listener i gives its sessions.
func (s *Server) sessionConfig(i int) (*ftp.Config, error) {
	lc := &s.cfg.Listeners[i]
	lo, hi, _ := lc.PortRange()
	pool, err := netpolicy.NewPortPool(lc.AddrPort().Addr(), lo, hi, s.logger)
	if err != nil {
		return nil, fmt.Errorf("server: listener[%d]: %w", i, err)
	}
	s.mu.Lock()
	s.ports = append(s.ports, pool)
	s.mu.Unlock()
	policy := &netpolicy.Policy{Ports: pool, ActiveAllowed: lc.ActiveAllowed(), Logger: s.logger}
	if lc.PassiveProxyProtocol {
		trusted := lc.TrustedProxies()
		pool.SetListenerWrapper(func(l net.Listener) net.Listener { return netpolicy.WrapProxyProtocol(l, trusted) })
	}
	policy.Rules = s.passiveRules(lc)
	var tp ftp.TLSPolicy
	if st := s.certs[i]; st != nil {
		tp = ftp.TLSPolicy{
			Config:         st.ServerConfig(),
			Implicit:       lc.TLS == config.TLSImplicit,
			RequireControl: lc.TLS == config.TLSRequired || lc.TLS == config.TLSImplicit,
			RequireData:    lc.TLSData == config.PolicyRequired,
			RequireReuse:   lc.TLSSessionReuse == config.PolicyRequired,
			AllowCCC:       lc.TLSAllowCCC,
		}
	}
	sc := s.cfg.Server
	return &ftp.Config{
		TLS:               tp,
		Banner:            sc.Banner,
		IdleTimeout:       sc.IdleTimeout.D(),
		DataTimeout:       sc.DataTimeout.D(),
		StallTimeout:      sc.StallTimeout.D(),
		LoginTimeout:      sc.LoginTimeout.D(),
		MaxLoginFailures:  sc.MaxLoginFailures,
		LoginFailureDelay: sc.LoginFailureDelay.D(),
		Auth:              s.auth,
		Storage:           s.storage,
		Network:           policy,
		Logger:            s.logger,
		Metrics:           s.sessionMetrics(),
	}, nil
}

// sessionMetrics is what sessions report to: nothing (a nil interface,
// not a nil *metrics.Metrics in one) without [metrics].
func (s *Server) sessionMetrics() ftp.Metrics {
	if s.metrics == nil {
		return nil
	}
	return s.metrics
}

// countRefused counts a turned-away connection.
func (s *Server) countRefused(reason string) {
	if s.metrics != nil {
		s.metrics.SessionRefused(reason)
	}
}

func (s *Server) openPassivePorts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.ports {
		n += p.OpenPorts()
	}
	return n
}

// passiveRules turns a listener's passive rules into the policy's, with
// the address sources discoverAddresses made.
func (s *Server) passiveRules(lc *config.Listener) []netpolicy.Rule {
	var rules []netpolicy.Rule
	for j := range lc.Passive {
		r := &lc.Passive[j]
		rule := netpolicy.Rule{Clients: r.ClientPrefixes()}
		switch r.Kind() {
		case config.AddressControl:
		case config.AddressLiteral:
			rule.Source = netpolicy.StaticAddress(netip.MustParseAddr(r.Address))
		default:
			rule.Source = s.sources[strings.ToLower(r.Address)]
		}
		rules = append(rules, rule)
	}
	return rules
}

// serve is the accept loop of one listener.
func (s *Server) serve(ln net.Listener, sc *ftp.Config) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger.Error("accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			s.logger.Error("accept loop ends", "address", ln.Addr().String(), "err", err)
			return
		}
		backoff = 0
		// Admission runs in the connection's own goroutine: with PROXY
		// protocol, learning the client address means reading a header.
		s.active.Add(1)
		go func() {
			defer s.active.Done()
			s.handle(c, sc)
		}()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// handle admits one control connection and serves it, or turns it away
// with 421.
func (s *Server) handle(c net.Conn, sc *ftp.Config) {
	if err := netpolicy.CheckProxyHeader(c); err != nil {
		s.countRefused("proxy_header")
		s.logger.Warn("connection refused", "err", err)
		c.Close()
		return
	}
	client := netpolicy.RemoteAddr(c)
	local := netpolicy.SocketLocalAddr(c)
	s.mu.Lock()
	reason, label := "", ""
	switch {
	case s.closing:
		reason, label = "Server shutting down.", "shutdown"
	case s.cfg.Server.MaxSessions > 0 && len(s.sessions) >= s.cfg.Server.MaxSessions:
		reason, label = "Too many users connected; try again later.", "max_sessions"
	case s.cfg.Server.MaxSessionsPerIP > 0 && s.perIP[client] >= s.cfg.Server.MaxSessionsPerIP:
		reason, label = "Too many connections from your address; try again later.", "max_sessions_per_ip"
	}
	if reason != "" {
		s.mu.Unlock()
		s.countRefused(label)
		s.logger.Warn("connection refused", "client", client.String(), "reason", reason)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte("421 " + reason + "\r\n"))
		c.Close()
		return
	}
	sess := ftp.NewSession(sc, c, client, local)
	s.sessions[sess] = struct{}{}
	s.perIP[client]++
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.SessionStarted()
	}
	sess.Serve()
	s.mu.Lock()
	delete(s.sessions, sess)
	if s.perIP[client]--; s.perIP[client] <= 0 {
		delete(s.perIP, client)
	}
	s.mu.Unlock()
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// stopAccepting closes the listeners and returns the live sessions.
func (s *Server) stopAccepting() []*ftp.Session {
	s.mu.Lock()
	s.closing = true
	lns := s.listeners
	s.listeners = nil
	sessions := make([]*ftp.Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, l := range lns {
		l.Close()
	}
	s.serving.Wait()
	return sessions
}

// Shutdown stops accepting connections, ends idle sessions at once and
// lets running transfers finish until ctx ends; then it closes whatever is
// left. It returns ctx.Err() if it had to cut transfers short.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, sess := range s.stopAccepting() {
		sess.Shutdown()
	}
	done := make(chan struct{})
	go func() {
		s.active.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.closeSessions()
		<-done
	}
	s.closePorts()
	s.stopMetrics()
	return err
}

// Close stops everything at once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.closeSessions()
	s.active.Wait()
	s.closePorts()
	s.stopMetrics()
	return nil
}

func (s *Server) closeSessions() {
	s.mu.Lock()
	sessions := make([]*ftp.Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.Close()
	}
}

func (s *Server) closePorts() {
	s.mu.Lock()
	ports := s.ports
	if s.bgCancel != nil {
		s.bgCancel() // address refresh loops
	}
	s.mu.Unlock()
	for _, p := range ports {
		p.Close()
	}
}

// ReloadUsers re-reads the users file named in the config (SIGHUP). New
// logins see the change at once; sessions already logged in keep their
// user. It does nothing when the authenticator did not come from the file.
func (s *Server) ReloadUsers() error {
	fa, ok := s.auth.(*auth.FileAuthenticator)
	if !ok || s.cfg.Auth.UsersFile == "" {
		return nil
	}
	uf, err := auth.LoadUsersFile(s.cfg.Path(s.cfg.Auth.UsersFile))
	if err != nil {
		return fmt.Errorf("server: reload users: %w", err)
	}
	fa.Reload(uf)
	s.logger.Info("users reloaded", "users", len(uf.Users()))
	return nil
}

// ReloadCertificates re-reads every listener's certificate and key
// (SIGHUP). New handshakes use the new certificate; established sessions
// keep theirs. A listener whose files fail to load keeps its old one.
func (s *Server) ReloadCertificates() error {
	var errs []error
	for i, st := range s.certs {
		if st == nil {
			continue
		}
		if err := st.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("listener[%d]: %w", i, err))
			continue
		}
		s.logger.Info("certificate reloaded", "listener", i, "subject", st.Leaf().Subject.String(), "not_after", st.Leaf().NotAfter)
	}
	return errors.Join(errs...)
}

// SessionCount reports the number of live sessions.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
