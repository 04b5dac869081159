// Package control is the local control channel of a running server: an
// HTTP/JSON API on a Unix socket, so that `cloudftpd ban` (and later
// `cloudftpd sessions`, reload and the admin console) talk to the server
// that holds the state, with the socket's file permissions as the access
// control.
//
// What the package offers:
//
//   - [Service]: what the server implements: its defender's bans, or the
//     bans the nodes share in PostgreSQL.
//   - [NewHandler]: the API as an http.Handler.
//   - [Listen], [Serve], [ServeListener]: the socket, created with mode
//     0660 without a window in which it is more open, a stale one from a
//     crashed server replaced.
//   - [Client]: the API from Go, for the command line.
//
// The API, version 1. Bodies are JSON; times are RFC 3339; errors are a
// 4xx or 5xx status with {"error": "message", "code": "..."}, code one of
// "bad_request", "not_banned", "allowed", "unavailable", "internal".
//
//	GET /v1/bans
//	    200 {"bans": [BAN, ...]}   bans in force, sorted by prefix
//	POST /v1/bans {"prefix": "203.0.113.7", "duration": "1h", "reason": "text"}
//	    201 BAN                    the ban as made; it replaces one of the same prefix
//	    prefix: an address or a CIDR prefix; an IPv6 address is banned by its /64
//	    duration: a Go duration ("90m"), "forever", or "" / absent for the
//	      server's own ban time (escalating like an automatic ban)
//	    400 bad prefix or duration, 409 inside the allow list
//	DELETE /v1/bans/{prefix}   e.g. /v1/bans/203.0.113.0/24 or /v1/bans/2001:db8::1
//	    204                        lifted, and the prefix's strikes forgotten
//	    404 no ban of its own ("not_banned"; the message names a wider ban covering it)
//
// where BAN is
//
//	{"prefix": "203.0.113.7/32", "reason": "10 points in 5m0s: login_failed x5",
//	 "since": "2025-01-02T03:04:05Z", "until": "2025-01-02T03:19:05Z",
//	 "strikes": 1, "manual": false, "node": "ip-10-0-1-5"}
//
// with "until" null for a ban until it is lifted, and "node" the node
// that made the ban when the nodes share their bans (absent otherwise).
// With shared bans a 503 ("unavailable") also means the database is out
// of reach.
//
// Later routes come with their own interfaces, which the Service may
// implement; NewHandler serves the routes of those it does: quota.go has
// the quota routes (QuotaService).
//
// A running server serves these routes on its socket through
// internal/api's NewLocalHandler, with the rest of the operations API
// (sessions, transfers, reload, users; openapi.yaml there), without its
// tokens: Client.Call reaches those.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/defender"
)

// Service is what the API controls: the server's bans, its defender's
// alone or the ones the nodes share in a database (hence the contexts,
// the request's). Errors wrapping defender.ErrNotBanned,
// defender.ErrAllowed or ErrUnavailable become 404, 409 and 503 with the
// error's text; any other becomes a 500 whose text is logged, not sent.
type Service interface {
	Bans(ctx context.Context) ([]defender.Ban, error)
	// Ban bans p for d: 0 for the defender's own ban time,
	// defender.Forever until Unban.
	Ban(ctx context.Context, p netip.Prefix, d time.Duration, reason string) (defender.Ban, error)
	Unban(ctx context.Context, p netip.Prefix) error
}

// Local returns the Service of one defender alone: its own bans, in
// memory (and its state file).
func Local(d *defender.Defender) Service { return local{d} }

type local struct{ d *defender.Defender }

func (l local) Bans(context.Context) ([]defender.Ban, error) { return l.d.Bans(), nil }

func (l local) Ban(_ context.Context, p netip.Prefix, d time.Duration, reason string) (defender.Ban, error) {
	return l.d.Ban(p, d, reason)
}

func (l local) Unban(_ context.Context, p netip.Prefix) error { return l.d.Unban(p) }

// ErrUnavailable is for a Service to say that a feature is switched off
// (say, bans with the defender disabled): 503.
var ErrUnavailable = errors.New("not available")

// maxBody bounds a request body; the largest legitimate one is a ban with
// its reason.
const maxBody = 64 << 10

// maxReason bounds a ban's reason, which is kept in the state file and
// shown by `cloudftpd ban list`.
const maxReason = 512

// Error codes of the error body.
const (
	codeBadRequest  = "bad_request"
	codeNotBanned   = "not_banned"
	codeAllowed     = "allowed"
	codeUnavailable = "unavailable"
	codeInternal    = "internal"
)

// banJSON is a ban on the wire.
type banJSON struct {
	Prefix  string     `json:"prefix"`
	Reason  string     `json:"reason"`
	Since   time.Time  `json:"since"`
	Until   *time.Time `json:"until"`
	Strikes int        `json:"strikes"`
	Manual  bool       `json:"manual"`
	Node    string     `json:"node,omitempty"`
}

type bansJSON struct {
	Bans []banJSON `json:"bans"`
}

type banRequest struct {
	Prefix   string `json:"prefix"`
	Duration string `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

type errorJSON struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func toJSON(b defender.Ban) banJSON {
	j := banJSON{Prefix: b.Prefix.String(), Reason: b.Reason, Since: b.Since.UTC(), Strikes: b.Strikes, Manual: b.Manual, Node: b.Node}
	if !b.Until.IsZero() {
		u := b.Until.UTC()
		j.Until = &u
	}
	return j
}

func fromJSON(j banJSON) (defender.Ban, error) {
	p, err := netip.ParsePrefix(j.Prefix)
	if err != nil {
		return defender.Ban{}, err
	}
	b := defender.Ban{Prefix: p, Reason: j.Reason, Since: j.Since, Strikes: j.Strikes, Manual: j.Manual, Node: j.Node}
	if j.Until != nil {
		b.Until = *j.Until
	}
	return b, nil
}

// ParseDuration reads a ban's duration as the API and the command line
// take it: "" for the server's own ban time (0), "forever"
// (defender.Forever), or a positive Go duration.
func ParseDuration(s string) (time.Duration, error) {
	switch s {
	case "":
		return 0, nil
	case "forever":
		return defender.Forever, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("control: duration %q: want a positive duration such as 90m or 24h, or forever", s)
	}
	return d, nil
}

// formatDuration is ParseDuration's inverse.
func formatDuration(d time.Duration) string {
	switch d {
	case 0:
		return ""
	case defender.Forever:
		return "forever"
	}
	return d.String()
}

// handler serves the API of one Service.
type handler struct {
	svc Service
	log *slog.Logger
}

// NewHandler returns the API of svc. Internal errors (500) are logged to
// log (nil discards) and answered with a generic message, so that a
// Service's error text never reaches a client unless it is one of the
// documented ones.
func NewHandler(svc Service, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: svc, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/bans", h.listBans)
	mux.HandleFunc("POST /v1/bans", h.addBan)
	mux.HandleFunc("DELETE /v1/bans/{prefix...}", h.removeBan)
	if q, ok := svc.(QuotaService); ok {
		quotaHandler{h, q}.routes(mux)
	}
	return mux
}

func (h *handler) listBans(w http.ResponseWriter, r *http.Request) {
	bans, err := h.svc.Bans(r.Context())
	if err != nil {
		h.serviceError(w, r, err)
		return
	}
	out := bansJSON{Bans: []banJSON{}}
	for _, b := range bans {
		out.Bans = append(out.Bans, toJSON(b))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) addBan(w http.ResponseWriter, r *http.Request) {
	var req banRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, "request body: "+err.Error())
		return
	}
	if req.Prefix == "" {
		writeError(w, http.StatusBadRequest, codeBadRequest, `"prefix" is required: an address or a CIDR prefix`)
		return
	}
	p, err := defender.ParsePrefix(req.Prefix)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	d, err := ParseDuration(req.Duration)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	if len(req.Reason) > maxReason {
		writeError(w, http.StatusBadRequest, codeBadRequest, fmt.Sprintf("reason: longer than %d bytes", maxReason))
		return
	}
	b, err := h.svc.Ban(r.Context(), p, d, req.Reason)
	if err != nil {
		h.serviceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, toJSON(b))
}

func (h *handler) removeBan(w http.ResponseWriter, r *http.Request) {
	p, err := defender.ParsePrefix(r.PathValue("prefix"))
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	if err := h.svc.Unban(r.Context(), p); err != nil {
		h.serviceError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// serviceError answers a Service's error: the documented ones with their
// text, any other as a logged 500.
func (h *handler) serviceError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, defender.ErrNotBanned):
		writeError(w, http.StatusNotFound, codeNotBanned, err.Error())
	case errors.Is(err, defender.ErrAllowed):
		writeError(w, http.StatusConflict, codeAllowed, err.Error())
	case errors.Is(err, ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, codeUnavailable, err.Error())
	default:
		h.log.Error("control: request failed", "method", r.Method, "path", r.URL.Path, "err", err.Error())
		writeError(w, http.StatusInternalServerError, codeInternal, "internal error (see the server's log)")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorJSON{Error: msg, Code: code})
}
