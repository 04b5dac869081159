// Package api is cloudftpd's operations HTTP API: status, sessions,
// transfers in progress, bans, users and config reload of a running
// server, for operators and their scripts (README "Operations API").
//
// The API is described by openapi.yaml, served at /v1/openapi.yaml; the
// tests validate every request and response against it, so the document
// and the code cannot drift apart.
//
// Requests carry an API token (Authorization: Bearer cftpd_...) from the
// tokens file (tokens.go). A read token may GET; an admin token may also
// change things. Every request that changes something, allowed or not,
// is logged and recorded as an admin.action event.
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
	// Record records admin.action events.
	Record func(events.Event)
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

type handler struct {
	svc    Service
	keys   *Keyring
	opts   Options
	log    *slog.Logger
	routes *http.ServeMux
}

// NewHandler returns the API of svc, authenticated by keys.
func NewHandler(svc Service, keys *Keyring, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &handler{svc: svc, keys: keys, opts: opts, log: opts.Logger, routes: http.NewServeMux()}
	mux := h.routes
	mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(OpenAPI)
	})
	mux.HandleFunc("GET /v1/status", h.authed(h.status))
	mux.HandleFunc("GET /v1/sessions", h.authed(h.sessions))
	mux.HandleFunc("DELETE /v1/sessions/{id}", h.authed(h.endSession))
	mux.HandleFunc("GET /v1/transfers", h.authed(h.transfers))
	mux.HandleFunc("POST /v1/reload", h.authed(h.reload))
	mux.HandleFunc("GET /v1/users", h.authed(h.users))
	mux.HandleFunc("GET /v1/users/{name}", h.authed(h.user))
	// Bans are the control socket's routes, the same code behind both.
	bans := control.NewHandler(svc, opts.Logger)
	for _, p := range []string{"GET /v1/bans", "POST /v1/bans", "DELETE /v1/bans/{prefix...}"} {
		mux.Handle(p, h.authed(bans.ServeHTTP))
	}
	return mux
}

// authed wraps an endpoint with token checks and, for requests that
// change something, the audit trail.
func (h *handler) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		client := clientAddr(r)
		secret, ok := bearer(r)
		if !ok {
			h.refuse(w, r, client, "no bearer token")
			return
		}
		tok, found, err := h.keys.Lookup(secret)
		if err != nil {
			h.log.Error("api: tokens file unreadable: no token is accepted", "file", h.keys.Path(), "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "the server cannot read its API tokens file (see its log)")
			return
		}
		if !found {
			h.refuse(w, r, client, "unknown token")
			return
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		reason := ""
		if tok.Scope != ScopeAdmin {
			reason = "token " + tok.Name + " is read-only"
			writeError(rec, http.StatusForbidden, "forbidden", reason+": this request needs an admin token")
		} else {
			next(rec, r)
			reason = rec.reason
		}
		h.audit(r, client, tok, rec.status(), reason)
	}
}

// refuse answers 401 and tells the defender.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, client netip.Addr, why string) {
	h.log.Warn("api: request refused", "client", client.String(), "method", r.Method, "path", r.URL.Path, "reason", why)
	if h.opts.AuthFailed != nil && client.IsValid() {
		h.opts.AuthFailed(client)
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="cloudftpd"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "a valid API token is required (Authorization: Bearer ...)")
}

// audit logs a change request and records it as an event.
func (h *handler) audit(r *http.Request, client netip.Addr, tok Token, status int, reason string) {
	result := events.ResultOK
	level := slog.LevelInfo
	if status >= 400 {
		result, level = events.ResultFailed, slog.LevelWarn
	}
	h.log.Log(r.Context(), level, "api: admin action", "token", tok.Name, "client", client.String(),
		"method", r.Method, "path", r.URL.Path, "status", status, "result", result, "reason", reason)
	if h.opts.Record == nil {
		return
	}
	e := events.Event{Type: events.AdminAction, Time: h.opts.Now().UTC(), Actor: tok.Name, Method: r.Method,
		Path: r.URL.Path, Code: status, Result: result, Reason: reason}
	if client.IsValid() {
		e.Client = client.String()
	}
	h.opts.Record(e)
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
