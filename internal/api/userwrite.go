package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/bytesize"
)

// Errors of a Service's user edits.
var (
	// ErrReadOnlyStore: the running user store cannot be edited (an
	// identity hook, the system accounts, anonymous logins only): 409.
	ErrReadOnlyStore = errors.New("the user store is read-only")
	// ErrUnknownUser: no such user: 404.
	ErrUnknownUser = errors.New("no such user")
	// ErrUserExists: the name is taken: 409.
	ErrUserExists = errors.New("the user already exists")
	// ErrInvalidUser: the user would not pass the store's validation;
	// the error's text names the key: 400.
	ErrInvalidUser = errors.New("invalid user")
)

// optional is a JSON field that may be absent (set false), null, or a
// value: a PATCH tells "leave it" from "clear it".
type optional[T any] struct {
	set, null bool
	v         T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.set = true
	if bytes.Equal(b, []byte("null")) {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.v)
}

// userInput is the body of POST /v1/users and PATCH /v1/users/{name}:
// the User schema's fields, each optional (a PATCH changes the ones it
// has); "dirs" and "folders" replace the lists whole.
type userInput struct {
	Name        *string       `json:"name"`
	Password    *string       `json:"password"`
	Home        *string       `json:"home"`
	Permissions *[]string     `json:"permissions"`
	TLS         *string       `json:"tls"`
	TLSData     *string       `json:"tls_data"`
	BinaryOnly  *bool         `json:"binary_only"`
	Disabled    *bool         `json:"disabled"`
	Limits      *limitsInput  `json:"limits"`
	Folders     *[]folderJSON `json:"folders"`
}

type limitsInput struct {
	Disabled        *bool               `json:"disabled"`
	Expires         optional[time.Time] `json:"expires"`
	AllowedNetworks *[]string           `json:"allowed_networks"`
	DeniedNetworks  *[]string           `json:"denied_networks"`
	MaxSessions     *int                `json:"max_sessions"`
	QuotaBytes      *int64              `json:"quota_bytes"`
	QuotaFiles      *int64              `json:"quota_files"`
	MaxFileSize     *int64              `json:"max_file_size"`
	UploadRate      *int64              `json:"upload_rate"`
	DownloadRate    *int64              `json:"download_rate"`
	Dirs            *[]dirJSON          `json:"dirs"`
}

type folderJSON struct {
	Path        string   `json:"path"`
	Volume      string   `json:"volume"`
	Target      string   `json:"target"`
	Permissions []string `json:"permissions"`
}

// apply changes e as in says; the result is validated by the caller.
func (in *userInput) apply(e *auth.UserEntry) error {
	if in.Home != nil {
		e.Home = *in.Home
	}
	if in.Permissions != nil {
		p, err := auth.ParsePermissions(*in.Permissions)
		if err != nil {
			return fmt.Errorf("permissions: %w", err)
		}
		e.Permissions = p.Strings()
	}
	if in.TLS != nil {
		e.TLS = *in.TLS
	}
	if in.TLSData != nil {
		e.TLSData = *in.TLSData
	}
	if in.BinaryOnly != nil {
		e.BinaryOnly = *in.BinaryOnly
	}
	if in.Disabled != nil {
		e.Disabled = *in.Disabled
	}
	if in.Folders != nil {
		e.Folders = nil
		for _, f := range *in.Folders {
			e.Folders = append(e.Folders, auth.FolderEntry{Path: f.Path, Volume: f.Volume, Target: f.Target, Permissions: f.Permissions})
		}
	}
	l := in.Limits
	if l == nil {
		return nil
	}
	if l.Disabled != nil {
		if in.Disabled != nil && *in.Disabled != *l.Disabled {
			return errors.New(`"disabled" and "limits.disabled" disagree`)
		}
		e.Disabled = *l.Disabled
	}
	if l.Expires.set {
		e.Expires = time.Time{}
		if !l.Expires.null {
			e.Expires = l.Expires.v
		}
	}
	if l.AllowedNetworks != nil {
		e.AllowedNetworks = nilIfEmpty(*l.AllowedNetworks)
	}
	if l.DeniedNetworks != nil {
		e.DeniedNetworks = nilIfEmpty(*l.DeniedNetworks)
	}
	for _, n := range []struct {
		key string
		v   *int64
		dst *bytesize.Size
	}{{"quota_bytes", l.QuotaBytes, &e.QuotaBytes}, {"max_file_size", l.MaxFileSize, &e.MaxFileSize},
		{"upload_rate", l.UploadRate, &e.UploadRate}, {"download_rate", l.DownloadRate, &e.DownloadRate}} {
		if n.v == nil {
			continue
		}
		if *n.v < 0 {
			return fmt.Errorf("limits.%s: %d must not be negative (0 is no bound)", n.key, *n.v)
		}
		*n.dst = bytesize.Size(*n.v)
	}
	if l.MaxSessions != nil {
		e.MaxSessions = *l.MaxSessions
	}
	if l.QuotaFiles != nil {
		e.QuotaFiles = *l.QuotaFiles
	}
	if l.Dirs != nil {
		e.AllowedPatterns, e.DeniedPatterns, e.Retention, e.Dirs = nil, nil, 0, nil
		for i, d := range *l.Dirs {
			if d.RetentionSeconds < 0 || d.RetentionSeconds > math.MaxInt64/float64(time.Second) || math.IsNaN(d.RetentionSeconds) {
				return fmt.Errorf("limits.dirs[%d]: retention_seconds %v: want 0 (keep) or a positive number", i, d.RetentionSeconds)
			}
			ret := auth.Age(time.Duration(d.RetentionSeconds * float64(time.Second)))
			if d.Dir == "/" {
				e.AllowedPatterns, e.DeniedPatterns, e.Retention = nilIfEmpty(d.AllowedPatterns), nilIfEmpty(d.DeniedPatterns), ret
				continue
			}
			e.Dirs = append(e.Dirs, auth.DirEntry{Path: d.Dir, AllowedPatterns: nilIfEmpty(d.AllowedPatterns),
				DeniedPatterns: nilIfEmpty(d.DeniedPatterns), Retention: ret})
		}
	}
	return nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// userError answers a Service's user-edit error.
func (h *handler) userError(w http.ResponseWriter, r *http.Request, name string, err error) {
	switch {
	case errors.Is(err, ErrReadOnlyStore):
		writeError(w, http.StatusConflict, "read_only_store", err.Error())
	case errors.Is(err, ErrUnknownUser):
		writeError(w, http.StatusNotFound, "unknown_user", "no user "+name)
	case errors.Is(err, ErrUserExists):
		writeError(w, http.StatusConflict, "user_exists", "user "+name+" already exists")
	case errors.Is(err, ErrInvalidUser):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, auth.ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the user store cannot be reached (see the server's log)")
	default:
		h.internal(w, r, err)
	}
}

func invalid(err error) error { return fmt.Errorf("%w: %v", ErrInvalidUser, err) }

// entryJSON is the User answer of an edit: the entry as the store now
// keeps it.
func entryJSON(e auth.UserEntry) (userJSON, error) {
	u, err := auth.EntryUser(&e)
	if err != nil {
		return userJSON{}, err
	}
	return userToJSON(u), nil
}

// addUser is POST /v1/users.
func (h *handler) addUser(w http.ResponseWriter, r *http.Request) {
	var in userInput
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Name == nil || *in.Name == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `"name" is required`)
		return
	}
	if in.Password == nil || *in.Password == "" {
		writeError(w, http.StatusBadRequest, "bad_request", `"password" is required`)
		return
	}
	e := auth.UserEntry{Name: *in.Name, Permissions: []string{"all"}}
	if err := in.apply(&e); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	// Validate before the slow hash: a typo costs no argon2id run.
	e.PasswordHash = placeholderHash
	if err := e.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	hash, err := hashUserPassword(*in.Password)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	e.PasswordHash = hash
	if err := h.svc.AddUser(r.Context(), e); err != nil {
		h.userError(w, r, e.Name, err)
		return
	}
	j, err := entryJSON(e)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

// placeholderHash stands in for the password hash while the rest of a
// new user is validated; it is never stored.
const placeholderHash = "$argon2id$v=19$m=19456,t=2,p=1$x4CZO92kSgpUYiekHOVLOw$8nHlh1v7vmajNqQ14t6mEaA1QcCpvj8SVep+2aAtg7s"

func hashUserPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New(`"password" must not be empty`)
	}
	if len(pw) > maxPassword {
		return "", fmt.Errorf(`"password": longer than %d bytes`, maxPassword)
	}
	return auth.HashPassword(pw)
}

// patchUser is PATCH /v1/users/{name}.
func (h *handler) patchUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var in userInput
	if !decodeBody(w, r, &in) {
		return
	}
	if in.Name != nil && *in.Name != name {
		writeError(w, http.StatusBadRequest, "bad_request", `"name": a user cannot be renamed (add the new name, delete the old)`)
		return
	}
	if in.Password != nil {
		writeError(w, http.StatusBadRequest, "bad_request", `"password": set it with POST /v1/users/{name}/password`)
		return
	}
	var final auth.UserEntry
	err := h.svc.EditUser(r.Context(), name, func(e *auth.UserEntry) error {
		if err := in.apply(e); err != nil {
			return invalid(err)
		}
		if err := e.Validate(); err != nil {
			return invalid(err)
		}
		final = *e
		return nil
	})
	if err != nil {
		h.userError(w, r, name, err)
		return
	}
	j, err := entryJSON(final)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// deleteUser is DELETE /v1/users/{name}. The user's files stay.
func (h *handler) deleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := h.svc.DeleteUser(r.Context(), name); err != nil {
		h.userError(w, r, name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setUserPassword is POST /v1/users/{name}/password.
func (h *handler) setUserPassword(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var in struct {
		Password string `json:"password"`
	}
	if !decodeBody(w, r, &in) {
		return
	}
	hash, err := hashUserPassword(in.Password)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	err = h.svc.EditUser(r.Context(), name, func(e *auth.UserEntry) error {
		e.PasswordHash = hash
		return nil
	})
	if err != nil {
		h.userError(w, r, name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
