package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

// maxBody bounds a request body: the largest legitimate one is a user
// with its folders and rules.
const maxBody = 256 << 10

// decodeBody reads a JSON body strictly into v (an unknown key is a
// mistake to report, not to ignore) and answers 400 when it does not
// decode.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "request body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "bad_request", "request body: more than one JSON value")
		return false
	}
	return true
}

type loginJSON struct {
	Name      string `json:"name"`
	CSRFToken string `json:"csrf_token"`
}

type meJSON struct {
	Name      string `json:"name"`
	Scope     Scope  `json:"scope"`
	CSRFToken string `json:"csrf_token"`
}

// login is POST /v1/login: an admin's name and password for a session
// cookie and its CSRF token. Failures are scored by the defender like
// FTP logins, and recorded as admin.action events like changes.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	client := clientAddr(r)
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	rec := &statusRecorder{ResponseWriter: w}
	who := principal{kind: "admin", scope: ScopeAdmin}
	defer func() { h.record(r, client, who, rec.status(), rec.reason) }()
	if !decodeBody(rec, r, &req) {
		return
	}
	if req.Name == "" || req.Password == "" || len(req.Password) > maxPassword || !tokenName.MatchString(req.Name) {
		writeError(rec, http.StatusBadRequest, "bad_request", `"name" and "password" are required`)
		return
	}
	who.name = req.Name
	adm, err := h.opts.Admins.Lookup(req.Name)
	if err != nil {
		h.log.Error("api: admins file unreadable: nobody can log in", "file", h.opts.Admins.Path(), "err", err)
		writeError(rec, http.StatusServiceUnavailable, "unavailable", "the server cannot read its admins file (see its log)")
		return
	}
	if adm == nil {
		err = h.verifier.Unknown(r.Context(), req.Password)
	} else {
		err = h.verifier.Check(r.Context(), adm.Name, adm.PasswordHash, req.Password)
	}
	if errors.Is(err, auth.ErrBadCredentials) {
		h.loginFailed(rec, r, client, req.Name, adm == nil)
		return
	}
	if err != nil {
		h.internal(rec, r, err)
		return
	}
	id, cs := h.console.create(adm.Name, adm.PasswordHash)
	http.SetCookie(rec, &http.Cookie{Name: SessionCookie, Value: id, Path: "/", HttpOnly: true,
		Secure: h.opts.SecureCookie, SameSite: http.SameSiteStrictMode})
	rec.Header().Set("Cache-Control", "no-store")
	h.log.Info("api: console login", "admin", adm.Name, "client", client.String())
	writeJSON(rec, http.StatusOK, loginJSON{Name: cs.name, CSRFToken: cs.csrf})
}

func (h *handler) loginFailed(w http.ResponseWriter, r *http.Request, client netip.Addr, name string, unknown bool) {
	why := "wrong password"
	if unknown {
		why = "no such admin"
	}
	h.log.Warn("api: console login failed", "admin", name, "client", client.String(), "reason", why)
	if h.opts.LoginFailed != nil && client.IsValid() {
		h.opts.LoginFailed(client, unknown)
	}
	// One answer for both: the name is not confirmed to a guesser.
	writeError(w, http.StatusUnauthorized, "unauthorized", "wrong admin name or password")
}

// logout is POST /v1/logout: ends the cookie's session (with its CSRF
// token, as every cookie request that changes something) and clears the
// cookie. Without a live session there is nothing to end: 204 all the
// same.
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		clearCookie(w, h.opts.SecureCookie)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	cs, ok := h.console.get(c.Value)
	if ok && !csrfOK(r.Header.Get(CSRFHeader), cs.csrf) {
		writeError(w, http.StatusForbidden, "csrf", "missing or wrong "+CSRFHeader+" header")
		return
	}
	h.console.delete(c.Value)
	clearCookie(w, h.opts.SecureCookie)
	if ok {
		h.log.Info("api: console logout", "admin", cs.name, "client", clientAddr(r).String())
	}
	w.WriteHeader(http.StatusNoContent)
}

func clearCookie(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: secure, SameSite: http.SameSiteStrictMode})
}

// me is GET /v1/me: who the request is, and for a console session its
// CSRF token (so a console page reloaded in the browser can carry on).
func (h *handler) me(w http.ResponseWriter, r *http.Request) {
	who := r.Context().Value(principalKey{}).(principal)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, meJSON{Name: who.name, Scope: who.scope, CSRFToken: who.csrf})
}

// auditRingSize is how many admin.action events GET /v1/audit can show.
const auditRingSize = 500

// AuditRing keeps the most recent admin.action events of this process,
// for GET /v1/audit (the console's audit page); the durable trail is the
// events' sinks. One ring serves the HTTP listener and the control
// socket, so either shows the changes made through both. It is safe for
// concurrent use.
type AuditRing struct {
	mu   sync.Mutex
	buf  []events.Event
	next int
	full bool
}

// NewAuditRing returns a ring of the last 500 events.
func NewAuditRing() *AuditRing { return &AuditRing{buf: make([]events.Event, auditRingSize)} }

func (a *AuditRing) add(e events.Event) {
	a.mu.Lock()
	a.buf[a.next] = e
	a.next = (a.next + 1) % len(a.buf)
	if a.next == 0 {
		a.full = true
	}
	a.mu.Unlock()
}

// recent returns up to n events, newest first.
func (a *AuditRing) recent(n int) []events.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	size := a.next
	if a.full {
		size = len(a.buf)
	}
	n = min(n, size)
	out := make([]events.Event, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, a.buf[(a.next-i+len(a.buf))%len(a.buf)])
	}
	return out
}

type auditJSON struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Client string    `json:"client"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	Result string    `json:"result"`
	Reason string    `json:"reason"`
}

// audit is GET /v1/audit?limit=N: the recent admin.action events,
// newest first (limit 1 to auditRingSize, default 100).
func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > auditRingSize {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit %q: want a number from 1 to %d", s, auditRingSize))
			return
		}
		limit = n
	}
	out := struct {
		Events []auditJSON `json:"events"`
	}{Events: []auditJSON{}}
	for _, e := range h.opts.Audit.recent(limit) {
		out.Events = append(out.Events, auditJSON{Time: e.Time, Actor: e.Actor, Client: e.Client, Method: e.Method,
			Path: e.Path, Status: e.Code, Result: e.Result, Reason: e.Reason})
	}
	writeJSON(w, http.StatusOK, out)
}
