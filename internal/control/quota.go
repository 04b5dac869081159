package control

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// The quota routes, served when the Service is also a QuotaService:
//
//	GET /v1/quota
//	    200 {"users": [USAGE, ...]}  the users whose usage the server holds, by name
//	POST /v1/quota/{user}/scan
//	    200 USAGE                  the user's tree walked again; its figures are now in force
//	    404 no such user ("unknown_user")
//
// where USAGE is
//
//	{"user": "alice", "bytes": 1234, "files": 5, "quota_bytes": 10737418240,
//	 "quota_files": 0, "reserved_bytes": 0, "reserved_files": 0,
//	 "scanned": "2025-01-02T03:04:05Z"}
//
// with quota_* 0 for no bound, reserved_* what uploads in progress hold,
// and "scanned" null when the figures were never computed by a scan.

// QuotaService is what the quota routes control: the server.
type QuotaService interface {
	// QuotaUsage returns the usage the server holds.
	QuotaUsage(ctx context.Context) ([]QuotaUsage, error)
	// ScanQuota walks user's tree and makes the result the usage in
	// force; an error wrapping ErrUnknownUser for a user who does not
	// exist.
	ScanQuota(ctx context.Context, user string) (QuotaUsage, error)
}

// ErrUnknownUser is for a QuotaService to say that there is no such
// user: 404.
var ErrUnknownUser = errors.New("no such user")

const codeUnknownUser = "unknown_user"

// QuotaUsage is one user's usage and quotas.
type QuotaUsage struct {
	User          string     `json:"user"`
	Bytes         int64      `json:"bytes"`
	Files         int64      `json:"files"`
	QuotaBytes    int64      `json:"quota_bytes"`
	QuotaFiles    int64      `json:"quota_files"`
	ReservedBytes int64      `json:"reserved_bytes"`
	ReservedFiles int64      `json:"reserved_files"`
	Scanned       *time.Time `json:"scanned"`
}

type quotaListJSON struct {
	Users []QuotaUsage `json:"users"`
}

// quotaHandler serves the quota routes of svc.
type quotaHandler struct {
	*handler
	svc QuotaService
}

func (h quotaHandler) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/quota", h.list)
	mux.HandleFunc("POST /v1/quota/{user}/scan", h.scan)
}

func (h quotaHandler) list(w http.ResponseWriter, r *http.Request) {
	users, err := h.svc.QuotaUsage(r.Context())
	if err != nil {
		h.serviceError(w, r, err)
		return
	}
	if users == nil {
		users = []QuotaUsage{}
	}
	writeJSON(w, http.StatusOK, quotaListJSON{Users: users})
}

func (h quotaHandler) scan(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if user == "" {
		writeError(w, http.StatusBadRequest, codeBadRequest, "a user name is required")
		return
	}
	u, err := h.svc.ScanQuota(r.Context(), user)
	if errors.Is(err, ErrUnknownUser) {
		writeError(w, http.StatusNotFound, codeUnknownUser, err.Error())
		return
	}
	if err != nil {
		h.serviceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// QuotaUsage returns the usage the server holds.
func (c *Client) QuotaUsage(ctx context.Context) ([]QuotaUsage, error) {
	var out quotaListJSON
	if err := c.do(ctx, http.MethodGet, "/v1/quota", nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return out.Users, nil
}

// ScanQuota has the server walk user's tree again and use the result; an
// error wrapping ErrUnknownUser when the server has no such user.
func (c *Client) ScanQuota(ctx context.Context, user string) (QuotaUsage, error) {
	var out QuotaUsage
	err := c.do(ctx, http.MethodPost, "/v1/quota/"+url.PathEscape(user)+"/scan", nil, http.StatusOK, &out)
	return out, err
}
