package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/console"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/ftp"
	"github.com/cloudftpd/cloudftpd/internal/pgusers"
)

// apiServer is the operations API's listener, once started.
type apiServer struct {
	hs      *http.Server
	addr    net.Addr
	certs   *certs.Store // nil for plain HTTP
	address string       // api.address it was started with
	// stopRates stops the throughput sampler the API's status reads.
	stopRates chan struct{}
}

// startAPI serves the operations API when the config enables it: its
// own listener, TLS with the certificate handling of FTPS (reloaded with
// the config), tokens from the tokens file.
func (s *Server) startAPI(cfg *config.Config) error {
	ac := &cfg.API
	if !ac.Enabled {
		return nil
	}
	a := &apiServer{address: ac.Address}
	ln, err := net.Listen("tcp", ac.Address)
	if err != nil {
		return fmt.Errorf("server: api.address: %w", err)
	}
	if ac.TLS() {
		if a.certs, err = certs.Load(cfg.Path(ac.TLSCert), cfg.Path(ac.TLSKey)); err != nil {
			ln.Close()
			return fmt.Errorf("server: api: %w", err)
		}
		tc := a.certs.ServerConfig()
		tc.NextProtos = []string{"http/1.1"} // not FTPS's "ftp"
		ln = tls.NewListener(ln, tc)
	}
	keys := api.NewKeyring(cfg.APITokensFile())
	admins := api.NewAdmins(cfg.APIAdminsFile())
	h := api.NewHandler(apiService{controlService{s}}, keys, api.Options{
		Logger:       s.logger,
		AuthFailed:   s.apiAuthFailed,
		LoginFailed:  s.apiLoginFailed,
		Record:       s.recordAdmin,
		Audit:        s.auditRing,
		Admins:       admins,
		SecureCookie: ac.TLS(),
	})
	a.stopRates = make(chan struct{})
	go s.sampleThroughput(a.stopRates)
	a.hs = &http.Server{
		// The web console at /, the API under /v1/.
		Handler:           console.Handler(h),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	a.addr = ln.Addr()
	s.mu.Lock()
	s.api = a
	s.mu.Unlock()
	// Banned addresses are closed at accept, as on the FTP listeners.
	go a.hs.Serve(admitListener{ln, s})
	scheme := "http"
	if a.certs != nil {
		scheme = "https"
	}
	s.logger.Info("operations API", "address", a.addr.String(), "scheme", scheme, "tokens_file", keys.Path(), "admins_file", admins.Path())
	return nil
}

// stopAPI closes the API listener and its connections.
func (s *Server) stopAPI() {
	s.mu.Lock()
	a := s.api
	s.api = nil
	s.mu.Unlock()
	if a != nil {
		a.hs.Close()
		close(a.stopRates)
	}
}

// reloadAPI re-reads the API's certificate; moving or turning the API
// on or off takes a restart.
func (s *Server) reloadAPI(prev, cfg *config.Config) {
	s.mu.Lock()
	a := s.api
	s.mu.Unlock()
	if prev.API.Enabled != cfg.API.Enabled || a != nil && a.address != cfg.API.Address ||
		prev.API.TLSCert != cfg.API.TLSCert || prev.API.TLSKey != cfg.API.TLSKey || prev.API.TokensFile != cfg.API.TokensFile ||
		prev.API.AdminsFile != cfg.API.AdminsFile {
		s.logger.Warn("[api] changed: that takes a restart; the API stays as it was")
	}
	if a != nil && a.certs != nil {
		if err := a.certs.Reload(); err != nil {
			s.logger.Error("API certificate not reloaded; the old one stays", "err", err)
		}
	}
}

// APIAddr is the address the API listens on, or nil.
func (s *Server) APIAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.api == nil {
		return nil
	}
	return s.api.addr
}

func (s *Server) apiAuthFailed(client netip.Addr) {
	if s.defender != nil {
		s.defender.Score(client, defender.APIAuthFailed)
	}
}

// apiLoginFailed scores a failed console login as the FTP login it is
// like: a wrong password, or a name that is no admin's.
func (s *Server) apiLoginFailed(client netip.Addr, unknownUser bool) {
	if s.defender == nil {
		return
	}
	if unknownUser {
		s.defender.Score(client, defender.UnknownUser)
	} else {
		s.defender.Score(client, defender.LoginFailed)
	}
}

func (s *Server) recordAdmin(e events.Event) {
	if s.events == nil {
		return
	}
	if err := s.events.Record(e); err != nil {
		s.logger.Error("admin.action event not recorded", "err", err)
	}
}

// admitListener closes connections from banned addresses at accept.
type admitListener struct {
	net.Listener
	s *Server
}

func (l admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.s.admit(c) {
			return c, err
		}
	}
}

// apiService is what the API controls; the bans are the control
// socket's.
type apiService struct{ controlService }

var _ api.Service = apiService{}

func (a apiService) Status() api.Status {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wiring
	st := api.Status{Version: s.opts.Version, Started: s.startedAt, ConfigFile: w.Config.File, Sessions: len(s.sessions)}
	bound := map[string]string{}
	for _, l := range s.listeners {
		bound[l.key] = l.ln.Addr().String()
	}
	for _, lw := range w.Listeners {
		st.Listeners = append(st.Listeners, api.ListenerStatus{Address: lw.Config.Address, Bound: bound[lw.key],
			TLS: string(lw.Config.TLS), PassivePorts: lw.Config.PassivePorts})
	}
	st.UploadRate, st.DownloadRate, st.RateWindow = s.rates.rates()
	st.PrivatePASVReplies, st.PassivePortsExhausted = s.ops.privatePASV.Load(), s.ops.portsExhausted.Load()
	return st
}

func (a apiService) Passive() []api.PassiveStatus {
	s := a.s
	s.mu.Lock()
	w := s.wiring
	bound := map[string]string{}
	for _, l := range s.listeners {
		bound[l.key] = l.ln.Addr().String()
	}
	s.mu.Unlock()
	var out []api.PassiveStatus
	for _, lw := range w.Listeners {
		p := api.PassiveStatus{Listener: lw.Config.Address, Bound: bound[lw.key], Ports: lw.Config.PassivePorts}
		if lw.Ports != nil {
			st := lw.Ports.Stats()
			p.Size, p.Open, p.Busy, p.Waiting = st.Size(), st.Open, st.Busy, st.Waiting
		}
		out = append(out, p)
	}
	return out
}

// doctorTimeout bounds a doctor run through the API: discovery of a
// passive address may wait on the network.
const doctorTimeout = 30 * time.Second

func (a apiService) Doctor(ctx context.Context) ([]diag.Check, error) {
	s := a.s
	if s.opts.Doctor == nil {
		return nil, fmt.Errorf("the doctor is not built into this program: %w", control.ErrUnavailable)
	}
	s.mu.Lock()
	cfg := s.wiring.Config
	s.mu.Unlock()
	// One at a time: a run binds every passive port to see it is free.
	s.doctorMu.Lock()
	defer s.doctorMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	return s.opts.Doctor(ctx, cfg), nil
}

func (a apiService) Sessions() []ftp.SessionInfo {
	s := a.s
	s.mu.Lock()
	live := make([]*ftp.Session, 0, len(s.sessions))
	for sess := range s.sessions {
		live = append(live, sess)
	}
	s.mu.Unlock()
	out := make([]ftp.SessionInfo, 0, len(live))
	for _, sess := range live {
		out = append(out, sess.Info())
	}
	return out
}

func (a apiService) EndSession(id string) (ftp.SessionInfo, error) {
	s := a.s
	s.mu.Lock()
	var victim *ftp.Session
	for sess := range s.sessions {
		if sess.ID() == id {
			victim = sess
			break
		}
	}
	s.mu.Unlock()
	if victim == nil {
		return ftp.SessionInfo{}, api.ErrNoSession
	}
	info := victim.Info()
	victim.Close()
	s.logger.Info("session ended through the API", "session", id, "user", info.User, "client", info.Client.String())
	return info, nil
}

func (a apiService) Reload(ctx context.Context) (string, error) {
	s := a.s
	s.mu.Lock()
	file := s.wiring.Config.File
	s.mu.Unlock()
	if file == "" {
		return "", api.ErrNoConfigFile
	}
	cfg, err := config.Load(file)
	if err != nil {
		s.logger.Error("config not reloaded; the server keeps running as it was", "file", file, "err", err)
		return file, err
	}
	return file, s.Reload(ctx, cfg)
}

func (a apiService) Users(ctx context.Context) ([]auth.User, error) {
	s := a.s
	s.mu.Lock()
	au, pool := s.wiring.Auth, s.wiring.pgPool
	postgres := s.wiring.Config.Auth.Store == config.StorePostgres && s.opts.Auth == nil
	s.mu.Unlock()
	if postgres && pool != nil {
		// From the table, not the authenticator's copy: a user just
		// added through the API is listed before its NOTIFY arrives.
		return listPostgresUsers(ctx, pgusers.NewStore(pool), s.logger)
	}
	if au == nil {
		return nil, nil // anonymous logins only: nobody to list
	}
	l, ok := au.(auth.Lister)
	if !ok {
		return nil, fmt.Errorf("this user store cannot list its users: %w", control.ErrUnavailable)
	}
	return l.ListUsers(ctx)
}

func listPostgresUsers(ctx context.Context, st *pgusers.Store, log *slog.Logger) ([]auth.User, error) {
	entries, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]auth.User, 0, len(entries))
	for _, e := range entries {
		u, err := auth.EntryUser(&e)
		if err != nil {
			// The authenticator refuses such a row too; list the rest.
			log.Warn("users table: a row that does not make a user is left out", "user", e.Name, "err", err)
			continue
		}
		out = append(out, u)
	}
	return out, nil
}
