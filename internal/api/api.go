// Package api is cloudftpd's operations HTTP API: status, sessions,
// transfers in progress, bans, users and config reload of a running
// server, for operators and their scripts (README "Operations API").
//
// The API is described by openapi.yaml, served at /v1/openapi.yaml; the
// tests validate every request and response against it, so the document
// and the code cannot drift apart.
//
// Requests carry an API token (Authorization: Bearer cftpd_...) from the
// tokens file (tokens.go), or the session cookie of an admin logged in
// to the console (admins.go, console.go; with an X-CSRF-Token header on
// every change). A read token may GET; an admin token or account may
// also change things. Every request that changes something, allowed or
// not, is logged and recorded as an admin.action event, and kept in a
// ring of recent ones for GET /v1/audit.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/ftp"
)

// OpenAPI is the API's OpenAPI 3 document.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Service is what the API reads and controls: the server. Its bans are
// control.Service's, served by internal/control's handler.
type Service interface {
	control.Service
	Status() Status
	Sessions() []ftp.SessionInfo
	// EndSession closes the session with that id, or returns
	// ErrNoSession.
	EndSession(id string) (ftp.SessionInfo, error)
	// Reload re-reads the config file and applies it, as SIGHUP does.
	// An error wrapping ErrNoConfigFile means there is no file to read;
	// any other means the config was not applied, and its text is for
	// the operator.
	Reload(ctx context.Context) (file string, err error)
	// Users lists the users of the running user store, or returns
	// control.ErrUnavailable when it cannot list them.
	Users(ctx context.Context) ([]auth.User, error)
	// AddUser adds e (validated, its password hashed) to the user store;
	// EditUser changes the user called name in place through edit
	// (whose error is returned as is, nothing changed); DeleteUser
	// removes one. Errors wrap ErrReadOnlyStore, ErrUnknownUser,
	// ErrUserExists or ErrInvalidUser when they are those. A running
	// server sees the change at once.
	// Passive is each listener's passive port pool in use.
	Passive() []PassiveStatus
	// Doctor runs the doctor's checks of the running config (as
	// `cloudftpd doctor` does), or returns control.ErrUnavailable.
	Doctor(ctx context.Context) ([]diag.Check, error)
	AddUser(ctx context.Context, e auth.UserEntry) error
	EditUser(ctx context.Context, name string, edit func(*auth.UserEntry) error) error
	DeleteUser(ctx context.Context, name string) error
}

// Errors of a Service.
var (
	ErrNoSession    = errors.New("no such session")
	ErrNoConfigFile = errors.New("no config file to reload (serving built-in defaults)")
)

// Status is the server's identity and shape.
type Status struct {
	Version    string
	Started    time.Time
	ConfigFile string
	Listeners  []ListenerStatus
	Sessions   int
	// UploadRate and DownloadRate are file data bytes a second, all
	// sessions, over the last RateWindow (0 before the first samples).
	UploadRate, DownloadRate float64
	RateWindow               time.Duration
	// PrivatePASVReplies counts the NAT warnings since the start: PASV
	// replies that sent a private or loopback address to a client on a
	// public one. PassivePortsExhausted counts the 425s for want of a
	// passive port.
	PrivatePASVReplies, PassivePortsExhausted int64
}

// PassiveStatus is one listener's passive port pool.
type PassiveStatus struct {
	Listener string // the listener's configured address
	Bound    string
	Ports    string // passive_ports as configured, "" for any port
	// Size is the range's ports (0: kernel-chosen ports, no range);
	// Open the sockets open; Busy the ports a session waits on; Waiting
	// the sessions waiting (a port is shared by clients of different
	// addresses).
	Size, Open, Busy, Waiting int
}

// ListenerStatus is one FTP listener.
type ListenerStatus struct {
	Address      string // as configured
	Bound        string // the socket's address, "" when not open
	TLS          string // off, explicit, required, implicit
	PassivePorts string
}

// Options are the API's hooks into the rest of the server; nil fields do
// nothing.
type Options struct {
	Logger *slog.Logger
	// AuthFailed hears of every request refused for want of a valid
	// token, for the defender.
	AuthFailed func(client netip.Addr)
	// LoginFailed hears of every failed console login, for the defender:
	// unknownUser when the name is no admin's (scored like an FTP login
	// for a user that does not exist).
	LoginFailed func(client netip.Addr, unknownUser bool)
	// Record records admin.action events.
	Record func(events.Event)
	// Audit keeps the recent ones for GET /v1/audit; nil is a ring of
	// this handler's own.
	Audit *AuditRing
	// Admins are the console accounts; nil is none (every login fails).
	Admins *Admins
	// SecureCookie marks the session cookie Secure: the API is HTTPS.
	SecureCookie bool
	// SessionIdle ends a console session unused for that long; 0 is
	// DefaultSessionIdle.
	SessionIdle time.Duration
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

type handler struct {
	svc      Service
	keys     *Keyring
	opts     Options
	log      *slog.Logger
	routes   *http.ServeMux
	console  *sessionStore
	verifier *auth.Verifier
	local    bool // the control socket's: see NewLocalHandler
}

// NewHandler returns the API of svc, authenticated by keys (tokens) and
// opts.Admins (console sessions).
func NewHandler(svc Service, keys *Keyring, opts Options) http.Handler {
	return newHandler(svc, keys, opts, false)
}

// LocalActor is the name the control socket's requests have in the
// audit trail.
const LocalActor = "control-socket"

// NewLocalHandler returns the API of svc for the local control socket
// (internal/control): no tokens and no console, because the socket's
// file permissions are the access control, so every request has the
// admin scope; changes are audited as by LocalActor. It also serves the
// quota routes when svc is a control.QuotaService. `cloudftpd sessions`,
// `reload` and `ban` use it.
func NewLocalHandler(svc Service, opts Options) http.Handler {
	return newHandler(svc, nil, opts, true)
}

func newHandler(svc Service, keys *Keyring, opts Options, local bool) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Admins == nil {
		opts.Admins = NewAdmins("")
	}
	if opts.Audit == nil {
		opts.Audit = NewAuditRing()
	}
	h := &handler{svc: svc, keys: keys, opts: opts, log: opts.Logger, routes: http.NewServeMux(),
		console: newSessionStore(opts.SessionIdle, opts.Now), verifier: auth.NewVerifier(opts.Logger)}
	mux := h.routes
	mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(OpenAPI)
	})
	h.local = local
	if !local {
		mux.HandleFunc("POST /v1/login", h.login)
		mux.HandleFunc("POST /v1/logout", h.logout)
	}
	mux.HandleFunc("GET /v1/me", h.authed(h.me))
	mux.HandleFunc("GET /v1/status", h.authed(h.status))
	mux.HandleFunc("GET /v1/sessions", h.authed(h.sessions))
	mux.HandleFunc("DELETE /v1/sessions/{id}", h.authed(h.endSession))
	mux.HandleFunc("GET /v1/transfers", h.authed(h.transfers))
	mux.HandleFunc("GET /v1/passive", h.authed(h.passive))
	mux.HandleFunc("GET /v1/doctor", h.authed(h.doctor))
	mux.HandleFunc("POST /v1/reload", h.authed(h.reload))
	mux.HandleFunc("GET /v1/users", h.authed(h.users))
	mux.HandleFunc("POST /v1/users", h.authed(h.addUser))
	mux.HandleFunc("GET /v1/users/{name}", h.authed(h.user))
	mux.HandleFunc("PATCH /v1/users/{name}", h.authed(h.patchUser))
	mux.HandleFunc("DELETE /v1/users/{name}", h.authed(h.deleteUser))
	mux.HandleFunc("POST /v1/users/{name}/password", h.authed(h.setUserPassword))
	mux.HandleFunc("GET /v1/audit", h.authed(h.audit))
	// Bans are the control socket's routes, the same code behind both.
	bans := control.NewHandler(svc, opts.Logger)
	routes := []string{"GET /v1/bans", "POST /v1/bans", "DELETE /v1/bans/{prefix...}"}
	if _, ok := svc.(control.QuotaService); ok && local {
		routes = append(routes, "GET /v1/quota", "POST /v1/quota/{user}/scan")
	}
	for _, p := range routes {
		mux.Handle(p, h.authed(bans.ServeHTTP))
	}
	return mux
}

// principal is who made a request: a token, or an admin logged in to
// the console.
type principal struct {
	kind  string // "token", "admin" (a console session) or "socket"
	name  string
	scope Scope
	// session is the console session's id, "" for a token.
	session string
	csrf    string
}

type principalKey struct{}

// authed wraps an endpoint with the token or session checks and, for
// requests that change something, the CSRF check and the audit trail.
func (h *handler) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		client := clientAddr(r)
		who, ok := h.authenticate(w, r, client)
		if !ok {
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, who))
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		reason := ""
		switch {
		case who.session != "" && !csrfOK(r.Header.Get(CSRFHeader), who.csrf):
			// A cookie comes with every request the browser makes,
			// whoever's page made it; the token only with the console's.
			reason = "missing or wrong " + CSRFHeader + " header"
			writeError(rec, http.StatusForbidden, "csrf", reason+": send the csrf_token of POST /v1/login or GET /v1/me")
		case who.scope != ScopeAdmin:
			reason = "token " + who.name + " is read-only"
			writeError(rec, http.StatusForbidden, "forbidden", reason+": this request needs an admin token")
		default:
			next(rec, r)
			reason = rec.reason
		}
		h.record(r, client, who, rec.status(), reason)
	}
}

// authenticate finds the request's principal: a bearer token when the
// request has one, else the console session of its cookie. It answers
// the refusal itself.
func (h *handler) authenticate(w http.ResponseWriter, r *http.Request, client netip.Addr) (principal, bool) {
	if h.local {
		return principal{kind: "socket", name: LocalActor, scope: ScopeAdmin}, true
	}
	if r.Header.Get("Authorization") == "" {
		if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
			return h.cookieSession(w, r, client, c.Value)
		}
	}
	secret, ok := bearer(r)
	if !ok {
		// Not scored: a request with no credentials guesses nothing, and
		// it is what the console's first GET /v1/me sends, to learn
		// that it must show the login form.
		h.log.Info("api: request without credentials", "client", client.String(), "method", r.Method, "path", r.URL.Path)
		unauthorized(w)
		return principal{}, false
	}
	tok, found, err := h.keys.Lookup(secret)
	if err != nil {
		h.log.Error("api: tokens file unreadable: no token is accepted", "file", h.keys.Path(), "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the server cannot read its API tokens file (see its log)")
		return principal{}, false
	}
	if !found {
		h.refuse(w, r, client, "unknown token")
		return principal{}, false
	}
	return principal{kind: "token", name: tok.Name, scope: tok.Scope}, true
}

// cookieSession is authenticate for a request with a session cookie. An
// unknown or expired session is not scored: it is what every console
// tab left open sends after a restart or a long lunch, and its 256
// random bits are not guessed.
func (h *handler) cookieSession(w http.ResponseWriter, r *http.Request, client netip.Addr, id string) (principal, bool) {
	cs, ok := h.console.get(id)
	if ok {
		// An admin deleted from the file since logging in, or given a
		// new password, is logged out.
		adm, err := h.opts.Admins.Lookup(cs.name)
		if err != nil {
			h.log.Error("api: admins file unreadable: no console session is accepted", "file", h.opts.Admins.Path(), "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "the server cannot read its admins file (see its log)")
			return principal{}, false
		}
		if adm == nil || adm.PasswordHash != cs.hash {
			h.console.delete(id)
			ok = false
		}
	}
	if !ok {
		h.log.Info("api: console session unknown or expired", "client", client.String(), "method", r.Method, "path", r.URL.Path)
		clearCookie(w, h.opts.SecureCookie)
		writeError(w, http.StatusUnauthorized, "unauthorized", "the console session has expired: log in again")
		return principal{}, false
	}
	return principal{kind: "admin", name: cs.name, scope: ScopeAdmin, session: id, csrf: cs.csrf}, true
}

// refuse answers 401 and tells the defender.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, client netip.Addr, why string) {
	h.log.Warn("api: request refused", "client", client.String(), "method", r.Method, "path", r.URL.Path, "reason", why)
	if h.opts.AuthFailed != nil && client.IsValid() {
		h.opts.AuthFailed(client)
	}
	unauthorized(w)
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="cloudftpd"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "a valid API token (Authorization: Bearer ...) or console session is required")
}

// record logs a change request and records it as an event.
func (h *handler) record(r *http.Request, client netip.Addr, who principal, status int, reason string) {
	result := events.ResultOK
	level := slog.LevelInfo
	if status >= 400 {
		result, level = events.ResultFailed, slog.LevelWarn
	}
	h.log.Log(r.Context(), level, "api: admin action", who.kind, who.name, "client", client.String(),
		"method", r.Method, "path", r.URL.Path, "status", status, "result", result, "reason", reason)
	e := events.Event{Type: events.AdminAction, Time: h.opts.Now().UTC(), Actor: who.name, Method: r.Method,
		Path: r.URL.Path, Code: status, Result: result, Reason: reason}
	if client.IsValid() {
		e.Client = client.String()
	}
	h.opts.Audit.add(e)
	if h.opts.Record != nil {
		h.opts.Record(e)
	}
}

func bearer(r *http.Request) (string, bool) {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}

func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// statusRecorder keeps the status an endpoint answered, and the reason
// of a failure, for the audit trail.
type statusRecorder struct {
	http.ResponseWriter
	code   int
	reason string
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	if s.code >= 400 && s.reason == "" {
		var e errorJSON
		if json.Unmarshal(b, &e) == nil {
			s.reason = e.Error
		}
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

type errorJSON struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorJSON{Error: msg, Code: code})
}
