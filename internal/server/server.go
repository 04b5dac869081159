// Package server builds cloudftpd from a config and runs it: it accepts
// control connections on every listener, enforces connection limits, hands
// each connection to an ftp.Session, applies a reloaded config to new
// sessions, and shuts down gracefully.
//
// It offers Wire, which builds a server's parts (a Wiring) without
// serving them, for check-config and doctor as much as for the server; and
// Server with New, Start, Serve, Addrs, Reload, Shutdown and Close, shaped
// like net/http's Server.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/bandwidth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
	"github.com/cloudftpd/cloudftpd/internal/ftp"
	"github.com/cloudftpd/cloudftpd/internal/metrics"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
	"github.com/cloudftpd/cloudftpd/internal/pgbans"
	"github.com/cloudftpd/cloudftpd/internal/pgoutbox"
	"github.com/cloudftpd/cloudftpd/internal/quota"
	"github.com/cloudftpd/cloudftpd/internal/retention"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

// ErrServerClosed is returned by Serve, Start and Reload after Shutdown or
// Close.
var ErrServerClosed = errors.New("server: closed")

// Server serves every listener of one configuration at a time.
type Server struct {
	opts    Options
	logger  *slog.Logger
	metrics *metrics.Metrics // nil without [metrics]
	// ops counts what the operations API shows (ops.go); rates is its
	// throughput, and closedUp/closedDown (under mu) the bytes of the
	// sessions already closed.
	ops      opsCounters
	doctorMu sync.Mutex // one doctor run at a time (API)
	// auditRing is the recent admin.action events of the API and the
	// control socket, for GET /v1/audit.
	auditRing            *api.AuditRing
	rates                throughput
	closedUp, closedDown int64
	// defender decides at accept which addresses are refused; nil when
	// defender.enabled = false. It lives as long as the server: a reload
	// keeps it and its scores.
	defender *defender.Defender
	// events records what sessions report into the outbox (store) and
	// delivers it to the sinks; nil without [[events.sink]].
	events *delivery.Dispatcher
	store  *state.Store
	// sharedOutbox is the events' outbox in PostgreSQL instead of store
	// (config.SharedOutbox), on a pool of its own (outboxPool).
	sharedOutbox *pgoutbox.Store
	outboxPool   *pgxpool.Pool
	eventsStop   context.CancelFunc
	eventsDone   chan struct{}
	// locks hold the state directories (server.state_dir, and
	// events.state_dir when it is another) for this process alone.
	locks []*state.DirLock
	// sweeper deletes expired files (retention.go); sweepDone is closed
	// when its loop has ended.
	sweeper   *retention.Sweeper
	sweepDone chan struct{}
	// quotas holds every user's quota usage; its state store is opened
	// at the first use of a quota.
	quotas *quota.Keeper
	// banSync shares the defender's bans and scores through the
	// database of auth.store = "postgres" (pgbans.go), once started;
	// banPool is its database. banMu serialises their changes.
	banMu   sync.Mutex
	banSync atomic.Pointer[pgbans.Sync]
	banPool *pgxpool.Pool
	// control serves the control socket (cloudftpd ban ...), once started.
	control     *http.Server
	controlPath string
	// api is the operations API (api.go), once started.
	api *apiServer
	// startedAt is when Start opened the listeners, for the API's uptime.
	startedAt time.Time
	// userSessions counts users' logged-in sessions across listeners
	// and reloads, for max_sessions.
	userSessions userSessions

	// wireMu serialises Start and Reload, which each read the running
	// wiring, build on it and commit.
	wireMu sync.Mutex

	mu        sync.Mutex
	wiring    *Wiring     // the committed one: new sessions get its parts
	listeners []*listener // open, in config order
	// pools and closers are what committed wirings built. Sessions of an
	// older config may still use them, so they are released only when the
	// server ends.
	pools    []*netpolicy.PortPool
	closers  []io.Closer
	bg       context.Context // background work (address refreshes), from Start
	bgCancel context.CancelFunc
	started  bool
	closing  bool
	// ready is set once Start has opened the listeners and loaded the
	// users, draining once Shutdown begins: /healthz reports them.
	ready       atomic.Bool
	draining    atomic.Bool
	done        chan struct{} // closed when Shutdown or Close begins
	metricsSrv  *http.Server  // the /metrics endpoint, once started
	metricsAddr net.Addr
	sessions    map[*ftp.Session]struct{}
	perIP       map[netip.Addr]int
	// userRates are the users' bandwidth buckets, shared by all their
	// sessions on every listener, for the life of the server.
	userRates bandwidth.Shared
	serving   sync.WaitGroup // accept loops
	active    sync.WaitGroup // sessions
}

// listener is one listening socket. It outlives reloads that keep its
// address; what it gives new connections is swapped underneath.
type listener struct {
	key     string
	ln      net.Listener
	gen     atomic.Pointer[generation]
	removed atomic.Bool // closed by a reload: its accept loop ends quietly
}

// generation is what a listener gives a connection accepted now. It is
// never changed: a reload stores a new one, and sessions keep the one
// they started with.
type generation struct {
	session *ftp.Config
	// proxy is set when control connections from trusted balancers must
	// carry a PROXY header.
	proxy   bool
	trusted []netip.Prefix
	limits  config.Server
}

// New builds a server from cfg (see Wire) within ctx. It opens no socket
// and starts no goroutine: nothing listens until Start.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:      opts,
		logger:    opts.Logger,
		done:      make(chan struct{}),
		sessions:  make(map[*ftp.Session]struct{}),
		perIP:     make(map[netip.Addr]int),
		auditRing: api.NewAuditRing(),
	}
	if cfg.Metrics.Address != "" {
		s.metrics = metrics.New()
		s.ops.prom = s.metrics
		s.metrics.Gauge("cloudftpd_sessions", "Open control connections.", func() float64 { return float64(s.SessionCount()) })
		s.metrics.Gauge("cloudftpd_passive_ports_open", "Passive sockets open (waiting for or lingering after a transfer), all listeners.",
			func() float64 { return float64(s.openPassivePorts()) })
	}
	// The defender comes first: the sessions' config reports to it.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server: config: %w", err)
	}
	if err := s.lockState(cfg); err != nil {
		return nil, err
	}
	if err := s.startDefence(cfg); err != nil {
		s.unlockState()
		return nil, err
	}
	if err := s.openEvents(ctx, cfg); err != nil {
		s.stopDefence()
		s.unlockState()
		return nil, err
	}
	s.newRetention()
	s.startQuotas(cfg)
	w, err := wire(ctx, cfg, opts, nil, s.hooks())
	if err != nil {
		w.Close()
		s.stopDefence()
		s.closeQuotas()
		s.closeEvents()
		s.unlockState()
		return nil, err
	}
	s.mu.Lock()
	s.adopt(w)
	s.mu.Unlock()
	return s, nil
}

// adopt makes w the committed wiring; s.mu is held.
func (s *Server) adopt(w *Wiring) {
	s.wiring = w
	for _, c := range w.owned {
		if p, ok := c.(*netpolicy.PortPool); ok {
			s.pools = append(s.pools, p)
		} else {
			s.closers = append(s.closers, c)
		}
	}
	w.owned = nil
	w.applyRates()
	if s.opts.Level != nil {
		s.opts.Level.Set(w.Config.SlogLevel())
	}
}

// Start opens every configured listener (and /metrics) and serves them in
// the background. ctx bounds the background work, the refreshing of
// discovered passive addresses; Shutdown and Close end it too. If a
// listener cannot be opened, the others are closed and the error
// returned.
func (s *Server) Start(ctx context.Context) error {
	s.wireMu.Lock()
	defer s.wireMu.Unlock()
	s.mu.Lock()
	w, closing, started := s.wiring, s.closing, s.started
	s.mu.Unlock()
	switch {
	case closing:
		return ErrServerClosed
	case started:
		return errors.New("server: already started")
	}
	if err := s.startMetrics(); err != nil {
		return err
	}
	if err := s.startControl(ctx, w.Config); err != nil {
		s.stopMetrics()
		return err
	}
	if err := s.startAPI(w.Config); err != nil {
		s.stopMetrics()
		s.stopControl()
		return err
	}
	lns, err := listen(w.Listeners)
	if err != nil {
		s.stopMetrics()
		s.stopControl()
		s.stopAPI()
		return err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		closeAll(lns)
		s.stopMetrics()
		s.stopControl()
		s.stopAPI()
		return ErrServerClosed
	}
	s.bg, s.bgCancel = context.WithCancel(ctx)
	s.started = true
	s.startedAt = time.Now()
	s.mu.Unlock()
	s.runEvents(s.bg)
	s.startRetention(s.bg)
	s.mu.Lock()
	var opened []*listener
	for i, lw := range w.Listeners {
		l := &listener{key: lw.key, ln: lns[i]}
		l.gen.Store(newGeneration(w, lw))
		s.listeners = append(s.listeners, l)
		s.serveListener(l)
		opened = append(opened, l)
	}
	s.startSources(w)
	s.startUsers(w)
	s.mu.Unlock()
	s.syncBans(w)
	s.awaitUsers(ctx, w)
	s.awaitBans(ctx, w)
	s.ready.Store(true)
	for i, l := range opened {
		s.logger.Info("listening", "address", l.ln.Addr().String(), "passive_ports", w.Listeners[i].Config.PassivePorts)
	}
	return nil
}

// Serve is Start, then waits until Shutdown or Close and returns
// ErrServerClosed, like net/http's ListenAndServe.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-s.done
	return ErrServerClosed
}

// listen opens the sockets of lws, in order; on a failure it closes those
// it opened.
func listen(lws []*ListenerWiring) ([]net.Listener, error) {
	// KeepAlive -1: Go would give every accepted connection its default
	// keepalive (15 s); serve sets server.control_keepalive instead,
	// which a reload may change for the connections accepted after it.
	lc := net.ListenConfig{KeepAlive: -1}
	var lns []net.Listener
	for _, lw := range lws {
		ln, err := lc.Listen(context.Background(), "tcp", lw.Config.AddrPort().String())
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("server: %s.address: %w", lw.Name, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

func newGeneration(w *Wiring, lw *ListenerWiring) *generation {
	g := &generation{session: lw.Session, limits: w.Config.Server}
	if lw.Config.ControlProxy() == config.PolicyRequired {
		g.proxy, g.trusted = true, slices.Clone(lw.Config.TrustedProxies())
	}
	return g
}

// serveListener starts l's accept loop; s.mu is held and s is not closing.
func (s *Server) serveListener(l *listener) {
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		s.serve(l)
	}()
}

// startSources starts the refresh loop of every address source of w that
// has none yet; s.mu is held and s is started.
func (s *Server) startSources(w *Wiring) {
	for _, src := range w.sources {
		if src.cancel != nil {
			continue
		}
		ctx, cancel := context.WithCancel(s.bg)
		src.cancel = cancel
		go src.src.Run(ctx)
	}
}

// startUsers starts keeping the users of a database current; s.mu is
// held and s is started. A running authenticator taken over by a reload
// is already started, and starting it again does nothing.
func (s *Server) startUsers(w *Wiring) {
	if w.pgUsers != nil {
		w.pgUsers.Start(s.bg)
	}
}

// awaitUsers gives the user database the time of one query to answer at
// start-up, so that a server whose database is up takes logins from its
// first connection; one that is down starts anyway and refuses logins
// with 421 until the database answers.
func (s *Server) awaitUsers(ctx context.Context, w *Wiring) {
	if w.pgUsers == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, w.Config.Auth.Postgres.QueryTimeout())
	defer cancel()
	if !w.pgUsers.WaitReady(ctx) {
		s.logger.Warn("user database not reachable at start-up: logins are refused with 421 until it answers")
	}
}

// Reload applies cfg to the running server (SIGHUP), or changes nothing.
//
// It builds cfg's wiring (see Wire) and opens the sockets of listeners
// whose address is new. If any of that fails, the server stays exactly as
// it was; the failure is logged (error level, with cfg.File) and
// returned. Otherwise, at once for new sessions: passive rules, limits,
// timeouts, TLS settings, the users file and certificates, and the log
// level (Options.Level). A listener whose address stays keeps its socket
// and port pool, so sessions and passive reservations in flight are
// untouched; a listener no longer configured stops accepting, and its
// sessions go on until they end. Sessions already running keep their
// settings. Changing metrics.address or log.format takes a restart; a
// reload says so in the log.
//
// cfg must be a config of its own, as Load returns for the re-read file:
// the running config changed in place would hide what changed.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) error {
	s.wireMu.Lock()
	defer s.wireMu.Unlock()
	err := s.reload(ctx, cfg)
	if err != nil {
		s.logger.Error("config not reloaded; the server keeps running as it was", "file", cfg.File, "err", err)
	}
	return err
}

func (s *Server) reload(ctx context.Context, cfg *config.Config) error {
	s.mu.Lock()
	prev, started, closing := s.wiring, s.started, s.closing
	running := make(map[string]*listener, len(s.listeners))
	for _, l := range s.listeners {
		running[l.key] = l
	}
	s.mu.Unlock()
	if closing {
		return ErrServerClosed
	}
	w, err := wire(ctx, cfg, s.opts, prev, s.hooks())
	if err != nil {
		w.Close()
		return err
	}
	if err := s.checkDefenceReload(cfg); err != nil {
		w.Close()
		return err
	}
	var fresh []*ListenerWiring
	for _, lw := range w.Listeners {
		if running[lw.key] == nil {
			fresh = append(fresh, lw)
		}
	}
	var lns []net.Listener
	if started {
		if lns, err = listen(fresh); err != nil {
			w.Close()
			return err
		}
	}

	// Commit: nothing below can fail.
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		closeAll(lns)
		w.Close()
		return ErrServerClosed
	}
	var next, added, removed []*listener
	if started {
		for _, lw := range w.Listeners {
			l := running[lw.key]
			if l == nil {
				l = &listener{key: lw.key, ln: lns[0]}
				lns = lns[1:]
				l.gen.Store(newGeneration(w, lw))
				s.serveListener(l)
				added = append(added, l)
			} else {
				l.gen.Store(newGeneration(w, lw))
				delete(running, lw.key)
			}
			next = append(next, l)
		}
		for _, l := range s.listeners {
			if running[l.key] == l {
				removed = append(removed, l)
			}
		}
		s.listeners = next
	}
	s.adopt(w)
	s.reloadDefence(prev.Config, cfg)
	if w.reloadUsers != nil {
		w.reloadUsers.Reload(w.Users)
	}
	if started {
		s.startSources(w)
		s.startUsers(w)
		for key, src := range prev.sources {
			if w.sources[key] != src && src.cancel != nil {
				src.cancel() // no rule names it any more
			}
		}
	}
	s.mu.Unlock()
	if started {
		s.syncBans(w)
	}

	for _, l := range removed {
		l.removed.Store(true)
		l.ln.Close()
		s.logger.Info("listener closed by reload; its sessions carry on", "address", l.ln.Addr().String())
	}
	for _, l := range added {
		s.logger.Info("listening", "address", l.ln.Addr().String())
	}
	if w.Users != nil {
		s.logger.Info("users reloaded", "users", len(w.Users.Users()))
	}
	for i, lw := range w.Listeners {
		if lw.Certs != nil {
			leaf := lw.Certs.Leaf()
			s.logger.Info("certificate reloaded", "listener", i, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
		}
	}
	if started {
		s.reloadAPI(prev.Config, cfg)
	}
	if cfg.Metrics.Address != prev.Config.Metrics.Address {
		s.logger.Warn("metrics.address changed: that takes a restart; /metrics stays where it was",
			"running", prev.Config.Metrics.Address, "configured", cfg.Metrics.Address)
	}
	if cfg.Log.Format != prev.Config.Log.Format {
		s.logger.Warn("log.format changed: that takes a restart", "running", prev.Config.Log.Format, "configured", cfg.Log.Format)
	}
	s.logger.Info("config reloaded", "file", cfg.File, "listeners", len(w.Listeners), "added", len(added), "removed", len(removed))
	return nil
}

// startMetrics serves /metrics when the config asks for it. Plain HTTP:
// the numbers hold no secrets, and the address is meant to be private
// (loopback, or a monitoring network).
func (s *Server) startMetrics() error {
	if s.metrics == nil {
		return nil
	}
	s.mu.Lock()
	address := s.wiring.Config.Metrics.Address
	s.mu.Unlock()
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("server: metrics.address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", s.healthz)
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
	s.logger.Info("metrics", "address", ln.Addr().String(), "path", "/metrics", "health", "/healthz")
	return nil
}

// healthz tells a load balancer whether to send this node new clients:
// 200 "ready" while it serves, 503 "draining" from the start of Shutdown
// (its listeners may still accept for server.drain_delay, then running
// transfers finish), 503 "starting" before Start has opened the listeners
// and loaded the users.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case s.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "draining\n")
	case !s.ready.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "starting\n")
	default:
		io.WriteString(w, "ready\n")
	}
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
		out[i] = l.ln.Addr()
	}
	return out
}

// sessionMetrics is what sessions report to: nothing (a nil interface,
// not a nil *metrics.Metrics in one) without [metrics].
func (s *Server) sessionMetrics() ftp.Metrics { return &s.ops }

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
	for _, p := range s.pools {
		n += p.OpenPorts()
	}
	return n
}

// serve is the accept loop of one listener.
func (s *Server) serve(l *listener) {
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if s.isClosing() || l.removed.Load() {
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
			s.logger.Error("accept loop ends", "address", l.ln.Addr().String(), "err", err)
			return
		}
		backoff = 0
		// The settings current at accept are the session's for good.
		g := l.gen.Load()
		s.setKeepalive(c, g.limits.ControlKeepaliveDuration())
		if !g.proxy && !s.admit(c) {
			continue // banned: a closed socket, nothing read or sent
		}
		// Admission runs in the connection's own goroutine: with PROXY
		// protocol, learning the client address means reading a header.
		s.active.Add(1)
		go func() {
			defer s.active.Done()
			s.handle(c, g)
		}()
	}
}

// setKeepalive turns TCP keepalive on for a control connection, probing
// after d of silence and every d after that, 9 probes before the
// connection is given up (Go's count); d = 0 turns it off. A control
// connection says nothing while its transfer runs: the probes keep
// balancers and NAT gateways from dropping it as idle, and find clients
// that vanished.
func (s *Server) setKeepalive(c net.Conn, d time.Duration) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	var err error
	if d <= 0 {
		err = tc.SetKeepAlive(false)
	} else {
		err = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: d, Interval: d, Count: 9})
	}
	if err != nil {
		// A socket the client already reset, typically: the session
		// finds out by itself.
		s.logger.Debug("setting control keepalive", "client", c.RemoteAddr().String(), "err", err)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// handle admits one control connection and serves it, or turns it away
// with 421.
func (s *Server) handle(c net.Conn, g *generation) {
	if g.proxy {
		c = netpolicy.ProxyConn(c, g.trusted)
	}
	if err := netpolicy.CheckProxyHeader(c); err != nil {
		s.countRefused("proxy_header")
		s.logger.Warn("connection refused", "err", err)
		c.Close()
		return
	}
	if g.proxy && !s.admit(c) {
		return // the client address the header named is banned
	}
	client := netpolicy.RemoteAddr(c)
	local := netpolicy.SocketLocalAddr(c)
	s.mu.Lock()
	reason, label := "", ""
	switch {
	case s.closing:
		reason, label = "Server shutting down.", "shutdown"
	case g.limits.MaxSessions > 0 && len(s.sessions) >= g.limits.MaxSessions:
		reason, label = "Too many users connected; try again later.", "max_sessions"
	case g.limits.MaxSessionsPerIP > 0 && s.perIP[client] >= g.limits.MaxSessionsPerIP:
		reason, label = "Too many connections from your address; try again later.", "max_sessions_per_ip"
	}
	if reason != "" {
		s.mu.Unlock()
		s.countRefused(label)
		s.logger.Warn("connection refused", "client", client.String(), "reason", reason)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(ftp.RenderReply(ftp.Reply{Code: 421, Lines: []string{reason}}))
		c.Close()
		return
	}
	sess := ftp.NewSession(g.session, c, client, local)
	s.sessions[sess] = struct{}{}
	s.perIP[client]++
	s.mu.Unlock()
	if s.metrics != nil {
		s.metrics.SessionStarted()
	}
	sess.Serve()
	final := sess.Info()
	s.mu.Lock()
	s.closedUp += final.BytesUploaded
	s.closedDown += final.BytesDownloaded
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
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	lns := s.listeners
	s.listeners = nil
	sessions := make([]*ftp.Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, l := range lns {
		l.ln.Close()
	}
	s.serving.Wait()
	return sessions
}

// Shutdown reports the node draining on /healthz at once and goes on
// serving for server.drain_delay, so that a load balancer stops sending
// it clients first; then it stops accepting connections, ends idle
// sessions and lets running transfers finish until ctx ends; then it
// closes whatever is left. ctx bounds the drain delay too (the caller's
// budget is the delay plus the grace). It returns ctx.Err() if it had to
// cut transfers short.
func (s *Server) Shutdown(ctx context.Context) error {
	s.drain(ctx)
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
	s.release()
	s.stopMetrics()
	s.stopAPI()
	s.stopDefence()
	s.closeQuotas()
	s.closeEvents()
	s.unlockState()
	return err
}

// drain marks the node draining and waits server.drain_delay, or until
// ctx ends or Close begins.
func (s *Server) drain(ctx context.Context) {
	if s.draining.Swap(true) {
		return // a second Shutdown: the first one drained
	}
	s.mu.Lock()
	var delay time.Duration
	if s.wiring != nil {
		delay = s.wiring.Config.Server.DrainDelay.D()
	}
	started, done := s.started && !s.closing, s.done
	s.mu.Unlock()
	if delay <= 0 || !started {
		return
	}
	s.logger.Info("draining: /healthz answers 503, still accepting", "drain_delay", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-done:
	}
}

// Draining reports whether Shutdown has begun (/healthz answers 503).
func (s *Server) Draining() bool { return s.draining.Load() }

// Close stops everything at once.
func (s *Server) Close() error {
	s.draining.Store(true)
	s.stopAccepting()
	s.closeSessions()
	s.active.Wait()
	s.release()
	s.stopMetrics()
	s.stopAPI()
	s.stopDefence()
	s.closeQuotas()
	s.closeEvents()
	s.unlockState()
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

// release ends the background work and frees what every committed wiring
// built, once no session is left to use it.
func (s *Server) release() {
	s.mu.Lock()
	pools, closers := s.pools, s.closers
	s.pools, s.closers = nil, nil
	if s.bgCancel != nil {
		s.bgCancel() // address refresh loops, the retention sweep
	}
	s.mu.Unlock()
	// The sweep uses the storage and records events: it ends first.
	s.waitRetention()
	// Quota usage may be in the database of a pool closed below: written
	// out first (no session is left to change it).
	s.closeQuotas()
	// The shared bans use the database, which a closer below closes.
	s.stopBans()
	for _, p := range pools {
		p.Close()
	}
	for _, c := range closers {
		c.Close()
	}
}

// Config is the config the server runs: the last one New or a
// successful Reload took. It must not be changed.
func (s *Server) Config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wiring.Config
}

// SessionCount reports the number of live sessions.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
