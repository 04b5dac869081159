package api

import (
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/ftp"
)

// The JSON forms; openapi.yaml describes each.

type statusJSON struct {
	Version       string         `json:"version"`
	Started       time.Time      `json:"started"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	ConfigFile    string         `json:"config_file"`
	Sessions      int            `json:"sessions"`
	Listeners     []listenerJSON `json:"listeners"`
	Throughput    rateJSON       `json:"throughput"`
	// NATWarnings is Status.PrivatePASVReplies.
	NATWarnings           int64 `json:"nat_warnings"`
	PassivePortsExhausted int64 `json:"passive_ports_exhausted"`
}

type rateJSON struct {
	Upload        float64 `json:"upload_bytes_per_second"`
	Download      float64 `json:"download_bytes_per_second"`
	WindowSeconds float64 `json:"window_seconds"`
}

type passiveJSON struct {
	Listener string `json:"listener"`
	Bound    string `json:"bound"`
	Ports    string `json:"passive_ports"`
	Size     *int   `json:"size"`
	Open     int    `json:"open"`
	InUse    int    `json:"in_use"`
	Waiting  int    `json:"waiting"`
	Free     *int   `json:"free"`
}

type checkJSON struct {
	Step   string `json:"step"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

type listenerJSON struct {
	Address      string `json:"address"`
	Bound        string `json:"bound"`
	TLS          string `json:"tls"`
	PassivePorts string `json:"passive_ports"`
}

type sessionJSON struct {
	ID              string        `json:"id"`
	User            string        `json:"user"`
	Client          string        `json:"client"`
	Local           string        `json:"local"`
	Listener        string        `json:"listener"`
	TLS             bool          `json:"tls"`
	TLSVersion      string        `json:"tls_version,omitempty"`
	Command         string        `json:"command"`
	Started         time.Time     `json:"started"`
	LastCommand     time.Time     `json:"last_command"`
	IdleSeconds     float64       `json:"idle_seconds"`
	BytesUploaded   int64         `json:"bytes_uploaded"`
	BytesDownloaded int64         `json:"bytes_downloaded"`
	Transfer        *transferJSON `json:"transfer"`
}

type transferJSON struct {
	Session   string    `json:"session"`
	User      string    `json:"user"`
	Client    string    `json:"client"`
	Command   string    `json:"command"`
	Direction string    `json:"direction"`
	Path      string    `json:"path"`
	Bytes     int64     `json:"bytes"`
	Size      *int64    `json:"size"`
	Started   time.Time `json:"started"`
	// Rate is the average since the transfer started, bytes a second.
	Rate       float64  `json:"rate_bytes_per_second"`
	ETASeconds *float64 `json:"eta_seconds"`
}

type userJSON struct {
	Name        string     `json:"name"`
	Home        string     `json:"home"`
	Permissions []string   `json:"permissions"`
	TLS         string     `json:"tls,omitempty"`
	TLSData     string     `json:"tls_data,omitempty"`
	BinaryOnly  bool       `json:"binary_only"`
	Limits      limitsJSON `json:"limits"`
	// Folders are the user's virtual folders.
	Folders []folderJSON `json:"folders"`
}

type limitsJSON struct {
	Disabled        bool       `json:"disabled"`
	Expires         *time.Time `json:"expires"`
	AllowedNetworks []string   `json:"allowed_networks"`
	DeniedNetworks  []string   `json:"denied_networks"`
	MaxSessions     int        `json:"max_sessions"`
	QuotaBytes      int64      `json:"quota_bytes"`
	QuotaFiles      int64      `json:"quota_files"`
	MaxFileSize     int64      `json:"max_file_size"`
	UploadRate      int64      `json:"upload_rate"`
	DownloadRate    int64      `json:"download_rate"`
	Dirs            []dirJSON  `json:"dirs"`
}

type dirJSON struct {
	Dir              string   `json:"dir"`
	AllowedPatterns  []string `json:"allowed_patterns"`
	DeniedPatterns   []string `json:"denied_patterns"`
	RetentionSeconds float64  `json:"retention_seconds"`
}

func (h *handler) status(w http.ResponseWriter, _ *http.Request) {
	st := h.svc.Status()
	out := statusJSON{Version: st.Version, Started: st.Started.UTC(), UptimeSeconds: seconds(h.opts.Now().Sub(st.Started)),
		ConfigFile: st.ConfigFile, Sessions: st.Sessions, Listeners: []listenerJSON{},
		Throughput:  rateJSON{Upload: round3(st.UploadRate), Download: round3(st.DownloadRate), WindowSeconds: seconds(st.RateWindow)},
		NATWarnings: st.PrivatePASVReplies, PassivePortsExhausted: st.PassivePortsExhausted}
	for _, l := range st.Listeners {
		out.Listeners = append(out.Listeners, listenerJSON{Address: l.Address, Bound: l.Bound, TLS: l.TLS, PassivePorts: l.PassivePorts})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) passive(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Listeners []passiveJSON `json:"listeners"`
	}{Listeners: []passiveJSON{}}
	for _, p := range h.svc.Passive() {
		j := passiveJSON{Listener: p.Listener, Bound: p.Bound, Ports: p.Ports, Open: p.Open, InUse: p.Busy, Waiting: p.Waiting}
		if p.Size > 0 {
			size, free := p.Size, max(0, p.Size-p.Busy)
			j.Size, j.Free = &size, &free
		}
		out.Listeners = append(out.Listeners, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) doctor(w http.ResponseWriter, r *http.Request) {
	checks, err := h.svc.Doctor(r.Context())
	if errors.Is(err, control.ErrUnavailable) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	out := struct {
		ConfigFile string      `json:"config_file"`
		Failed     bool        `json:"failed"`
		Checks     []checkJSON `json:"checks"`
	}{ConfigFile: h.svc.Status().ConfigFile, Failed: diag.Failed(checks), Checks: []checkJSON{}}
	for _, c := range checks {
		out.Checks = append(out.Checks, checkJSON{Step: c.Step, Status: strings.ToLower(string(c.Status)), Detail: c.Detail, Fix: c.Fix})
	}
	writeJSON(w, http.StatusOK, out)
}

// sortedSessions is the service's sessions, oldest first.
func (h *handler) sortedSessions() []ftp.SessionInfo {
	ss := h.svc.Sessions()
	slices.SortFunc(ss, func(a, b ftp.SessionInfo) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ss
}

func (h *handler) sessions(w http.ResponseWriter, _ *http.Request) {
	now := h.opts.Now()
	out := struct {
		Sessions []sessionJSON `json:"sessions"`
	}{Sessions: []sessionJSON{}}
	for _, s := range h.sortedSessions() {
		out.Sessions = append(out.Sessions, sessionToJSON(s, now))
	}
	writeJSON(w, http.StatusOK, out)
}

func sessionToJSON(s ftp.SessionInfo, now time.Time) sessionJSON {
	j := sessionJSON{ID: s.ID, User: s.User, Client: s.Client.String(), Local: s.Local.String(), Listener: s.Listener,
		TLS: s.TLS.Version != "", TLSVersion: s.TLS.Version, Command: s.Command, Started: s.Started.UTC(),
		LastCommand: s.LastCommand.UTC(), IdleSeconds: seconds(now.Sub(s.LastCommand)),
		BytesUploaded: s.BytesUploaded, BytesDownloaded: s.BytesDownloaded}
	if s.Transfer != nil {
		t := transferToJSON(s, now)
		j.Transfer = &t
	}
	return j
}

func transferToJSON(s ftp.SessionInfo, now time.Time) transferJSON {
	x := s.Transfer
	t := transferJSON{Session: s.ID, User: s.User, Client: s.Client.String(), Command: x.Command, Direction: x.Direction,
		Path: x.Path, Bytes: x.Bytes, Started: x.Started.UTC()}
	if el := now.Sub(x.Started).Seconds(); el > 0 {
		t.Rate = round3(float64(x.Bytes) / el)
	}
	if x.Size >= 0 {
		size := x.Size
		t.Size = &size
		if left := size - x.Bytes; left <= 0 {
			eta := 0.0
			t.ETASeconds = &eta
		} else if t.Rate > 0 {
			eta := round3(float64(left) / t.Rate)
			t.ETASeconds = &eta
		}
	}
	return t
}

func (h *handler) endSession(w http.ResponseWriter, r *http.Request) {
	info, err := h.svc.EndSession(r.PathValue("id"))
	if errors.Is(err, ErrNoSession) {
		writeError(w, http.StatusNotFound, "no_session", "no session with id "+r.PathValue("id"))
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionToJSON(info, h.opts.Now()))
}

func (h *handler) transfers(w http.ResponseWriter, _ *http.Request) {
	now := h.opts.Now()
	out := struct {
		Transfers []transferJSON `json:"transfers"`
	}{Transfers: []transferJSON{}}
	for _, s := range h.sortedSessions() {
		if s.Transfer != nil && s.Transfer.Direction != ftp.DirectionOther {
			out.Transfers = append(out.Transfers, transferToJSON(s, now))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) reload(w http.ResponseWriter, r *http.Request) {
	file, err := h.svc.Reload(r.Context())
	switch {
	case errors.Is(err, ErrNoConfigFile):
		writeError(w, http.StatusConflict, "no_config_file", err.Error())
	case err != nil:
		// The operator's own config errors, for an admin token: the
		// text is what SIGHUP would log.
		writeError(w, http.StatusUnprocessableEntity, "reload_failed", "config not reloaded; the server keeps running as it was: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, struct {
			File     string `json:"file"`
			Reloaded bool   `json:"reloaded"`
		}{file, true})
	}
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request) ([]auth.User, bool) {
	users, err := h.svc.Users(r.Context())
	if errors.Is(err, control.ErrUnavailable) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return nil, false
	}
	if err != nil {
		h.internal(w, r, err)
		return nil, false
	}
	return users, true
}

func (h *handler) users(w http.ResponseWriter, r *http.Request) {
	users, ok := h.listUsers(w, r)
	if !ok {
		return
	}
	out := struct {
		Users []userJSON `json:"users"`
	}{Users: []userJSON{}}
	for _, u := range users {
		out.Users = append(out.Users, userToJSON(u))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) user(w http.ResponseWriter, r *http.Request) {
	users, ok := h.listUsers(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(users, func(u auth.User) bool { return u.Name == name })
	if i < 0 {
		writeError(w, http.StatusNotFound, "unknown_user", "no user "+name)
		return
	}
	writeJSON(w, http.StatusOK, userToJSON(users[i]))
}

func userToJSON(u auth.User) userJSON {
	l := u.Limits
	j := userJSON{Name: u.Name, Home: u.Home, Permissions: nonNil(u.Perms.Strings()), TLS: u.TLS, TLSData: u.TLSData,
		BinaryOnly: u.BinaryOnly, Limits: limitsJSON{Disabled: l.Disabled, MaxSessions: l.MaxSessions,
			QuotaBytes: l.QuotaBytes, QuotaFiles: l.QuotaFiles, MaxFileSize: l.MaxFileSize,
			UploadRate: l.UploadRate, DownloadRate: l.DownloadRate,
			AllowedNetworks: []string{}, DeniedNetworks: []string{}, Dirs: []dirJSON{}}}
	if !l.Expires.IsZero() {
		e := l.Expires.UTC()
		j.Limits.Expires = &e
	}
	for _, p := range l.AllowedNetworks {
		j.Limits.AllowedNetworks = append(j.Limits.AllowedNetworks, p.String())
	}
	for _, p := range l.DeniedNetworks {
		j.Limits.DeniedNetworks = append(j.Limits.DeniedNetworks, p.String())
	}
	j.Folders = []folderJSON{}
	for _, f := range l.Folders {
		j.Folders = append(j.Folders, folderJSON{Path: f.Path, Volume: f.Volume, Target: f.Target, Permissions: nonNil(f.Perms.Strings())})
	}
	for _, d := range l.Dirs {
		j.Limits.Dirs = append(j.Limits.Dirs, dirJSON{Dir: d.Dir, AllowedPatterns: nonNil(d.AllowedPatterns),
			DeniedPatterns: nonNil(d.DeniedPatterns), RetentionSeconds: seconds(d.Retention)})
	}
	return j
}

// internal answers an unexpected error: logged, never sent.
func (h *handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("api: request failed", "method", r.Method, "path", r.URL.Path, "err", err.Error())
	writeError(w, http.StatusInternalServerError, "internal", "internal error (see the server's log)")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func seconds(d time.Duration) float64 { return round3(d.Seconds()) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
