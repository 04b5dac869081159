package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/ftp"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
)

// hooks are what this server's sessions report to.
func (s *Server) hooks() sessionHooks {
	h := sessionHooks{metrics: s.sessionMetrics(), userRates: &s.userRates, userSessions: &s.userSessions}
	if s.events != nil {
		h.events = s.events
	}
	if s.defender != nil {
		h.guard = guard{s.defender}
	}
	if s.quotas != nil {
		h.quotas = quotaKeeper{s.quotas}
	}
	return h
}

// startDefence builds the defender from cfg's [defender]: no socket, no
// goroutine; the state file is read.
func (s *Server) startDefence(cfg *config.Config) error {
	dc := &cfg.Defender
	if !dc.On() {
		return nil
	}
	stateFile := cfg.DefenderStateFile()
	if stateFile != "" {
		if err := os.MkdirAll(filepath.Dir(stateFile), 0o750); err != nil {
			return fmt.Errorf("server: server.state_dir: %w", err)
		}
	}
	dcfg := defenderConfig(cfg)
	dcfg.OnBan = s.closeBanned
	dcfg.Logger = s.logger
	d, err := defender.New(dcfg)
	if err != nil {
		return fmt.Errorf("server: defender: %w", err)
	}
	s.defender = d
	if s.metrics != nil {
		stat := func(f func(defender.Stats) float64) func() float64 {
			return func() float64 { return f(d.Stats()) }
		}
		s.metrics.Gauge("cloudftpd_defender_bans", "Bans in force.", stat(func(st defender.Stats) float64 { return float64(st.Active) }))
		s.metrics.Gauge("cloudftpd_defender_tracked_addresses", "Client addresses with a score.", stat(func(st defender.Stats) float64 { return float64(st.Tracked) }))
		s.metrics.Counter("cloudftpd_defender_bans_total", "Bans made, automatic and by hand.", stat(func(st defender.Stats) float64 { return float64(st.Bans) }))
		s.metrics.Counter("cloudftpd_defender_refused_banned_total", "Connections closed at accept because their address is banned.", stat(func(st defender.Stats) float64 { return float64(st.RefusedBanned) }))
		s.metrics.Counter("cloudftpd_defender_refused_denied_total", "Connections closed at accept because their address is on the deny list.", stat(func(st defender.Stats) float64 { return float64(st.RefusedDenied) }))
		s.metrics.Gauge("cloudftpd_defender_shared_ready", "1 while this node's copy of the bans the nodes share in PostgreSQL is current, 0 while the database is out of reach, or when the bans are not shared.", func() float64 {
			if sy := s.banSync.Load(); sy != nil && sy.Ready() {
				return 1
			}
			return 0
		})
		s.metrics.Counter("cloudftpd_defender_evicted_total", "Scores and bans forgotten early for max_tracked or max_bans: a flood.", stat(func(st defender.Stats) float64 { return float64(st.Evicted) }))
	}
	return nil
}

// defenderConfig is what cfg's [defender] says, apart from the hooks.
func defenderConfig(cfg *config.Config) defender.Config {
	dc := &cfg.Defender
	weights := make(map[defender.Event]int, len(dc.Weights))
	for name, w := range dc.Weights {
		weights[defender.Event(name)] = w
	}
	return defender.Config{
		Threshold:  dc.Threshold,
		Window:     dc.Window.D(),
		BanTime:    dc.BanTime.D(),
		MaxBanTime: dc.MaxBanTime.D(),
		Weights:    weights,
		Allow:      dc.AllowPrefixes(),
		Deny:       dc.DenyPrefixes(),
		StateFile:  cfg.DefenderStateFile(),
		MaxTracked: dc.MaxTracked,
		MaxBans:    dc.MaxBans,
	}
}

// checkDefenceReload checks that the running defender can take cfg's
// [defender], before a reload changes anything.
func (s *Server) checkDefenceReload(cfg *config.Config) error {
	if s.defender == nil || !cfg.Defender.On() {
		return nil
	}
	if err := defender.CheckReconfigure(defenderConfig(cfg)); err != nil {
		return fmt.Errorf("server: defender: %w", err)
	}
	return nil
}

// reloadDefence applies cfg's [defender] to the running defender: the
// threshold, window, ban times, weights and lists change at once, scores
// and bans are kept. Turning the defender on or off, its state file and
// its memory bounds take a restart, which is logged.
func (s *Server) reloadDefence(prev, cfg *config.Config) {
	if prev.Defender.On() != cfg.Defender.On() {
		s.logger.Warn("defender.enabled changed: that takes a restart; the defender stays as it was", "running", prev.Defender.On(), "configured", cfg.Defender.On())
		return
	}
	if s.defender == nil {
		return
	}
	next, was := defenderConfig(cfg), defenderConfig(prev)
	if next.StateFile != was.StateFile || next.MaxTracked != was.MaxTracked || next.MaxBans != was.MaxBans {
		s.logger.Warn("defender.state_file, max_tracked or max_bans changed: that takes a restart; the rest of [defender] is reloaded")
	}
	if err := s.defender.Reconfigure(next); err != nil { // checked before: cannot fail
		s.logger.Error("defender not reloaded", "err", err)
	}
}

// admit asks the defender about a new connection; a refused one is closed
// at once, before the greeting or any TLS, so that a banned flood costs a
// lookup and a close.
func (s *Server) admit(c net.Conn) bool {
	if s.defender == nil || s.defender.Admit(netpolicy.RemoteAddr(c)) {
		return true
	}
	c.Close() // counted by the defender (cloudftpd_defender_refused_*)
	return false
}

// closeBanned ends the open sessions of a banned prefix (an attacker's
// connections already inside keep guessing otherwise).
func (s *Server) closeBanned(b defender.Ban) {
	s.mu.Lock()
	var victims []*ftp.Session
	for sess := range s.sessions {
		if b.Prefix.Contains(sess.Client()) {
			victims = append(victims, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range victims {
		sess.Close()
	}
}

// startControl serves the control socket (cloudftpd ban, sessions,
// reload, quota scan)
// when the config has one.
func (s *Server) startControl(_ context.Context, cfg *config.Config) error {
	path := cfg.ControlSocket()
	if path == "" {
		return nil
	}
	l, err := control.Listen(path)
	if err != nil {
		return fmt.Errorf("server: control.socket: %w", err)
	}
	// The operations API without its tokens: the socket's permissions
	// are the access control (cloudftpd ban, sessions, reload, quota).
	h := api.NewLocalHandler(apiService{controlService{s}}, api.Options{Logger: s.logger, Record: s.recordAdmin, Audit: s.auditRing})
	hs := &http.Server{Handler: h}
	s.mu.Lock()
	s.control, s.controlPath = hs, path
	s.mu.Unlock()
	go hs.Serve(l)
	s.logger.Info("control socket", "path", path)
	return nil
}

// stopControl closes the control socket.
func (s *Server) stopControl() {
	s.mu.Lock()
	hs, path := s.control, s.controlPath
	s.control = nil
	s.mu.Unlock()
	if hs != nil {
		hs.Close()
		os.Remove(path)
	}
}

// stopDefence closes the control socket and saves the bans.
func (s *Server) stopDefence() {
	s.stopControl()
	if s.defender != nil {
		if err := s.defender.Close(); err != nil {
			s.logger.Error("defender: saving bans", "err", err)
		}
	}
}

// guard turns the engine's offences into the defender's events.
type guard struct{ d *defender.Defender }

var offenceEvents = map[ftp.Offence]defender.Event{
	ftp.OffenceLoginFailed:  defender.LoginFailed,
	ftp.OffenceUnknownUser:  defender.UnknownUser,
	ftp.OffenceBeforeLogin:  defender.BadCommandBeforeLogin,
	ftp.OffenceTLSHandshake: defender.TLSHandshakeFailed,
	ftp.OffenceNoCommand:    defender.NoCommand,
}

func (g guard) Offend(client netip.Addr, o ftp.Offence) {
	if e, ok := offenceEvents[o]; ok {
		g.d.Score(client, e)
	}
}
