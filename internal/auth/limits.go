package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/bytesize"
)

// Limits are what a user may do beyond the permissions: where from, until
// when, how much, how fast, which names. Every user store fills them in
// the same way (the users file from the keys of LimitsEntry); the zero
// value limits nothing. The protocol layer enforces them; see the README's
// "Limits and defence".
type Limits struct {
	// Disabled refuses every login; Expires, when set, refuses logins from
	// that instant on.
	Disabled bool
	Expires  time.Time
	// AllowedNetworks, when not empty, are the only client networks the
	// user may log in from; DeniedNetworks are refused even inside them.
	AllowedNetworks, DeniedNetworks []netip.Prefix
	// MaxSessions bounds the user's concurrent sessions (0: no bound).
	MaxSessions int
	// QuotaBytes and QuotaFiles bound what the user stores (0: no bound).
	QuotaBytes, QuotaFiles int64
	// MaxFileSize bounds one upload (0: no bound).
	MaxFileSize int64
	// UploadRate and DownloadRate are bytes per second (0: no bound).
	UploadRate, DownloadRate int64
	// Dirs are name rules and retention by directory, the user-wide ones
	// (from the user's own keys) first, as Dir "/".
	Dirs []DirRule
	// Folders are the user's virtual folders (folders.go).
	Folders []Folder
}

// DirRule applies to a directory and everything below it. The most
// specific rule that sets a field wins.
type DirRule struct {
	Dir string // clean virtual path, "/" for the user's whole tree
	// AllowedPatterns, when not empty, are the only names (path.Match
	// globs on the base name) that uploads, renames and new directories
	// may have; DeniedPatterns are refused even when allowed.
	AllowedPatterns, DeniedPatterns []string
	// Retention, when > 0, deletes files older than it.
	Retention time.Duration
}

// LimitsEntry is the users-file form of Limits: the optional keys of a
// [[user]] table, and of its [[user.dir]] and [[user.folder]] tables.
type LimitsEntry struct {
	Disabled bool `toml:"disabled,omitempty" json:"disabled,omitempty"`
	// Expires is a TOML date or date-time: 2027-06-30 (midnight, the
	// server's time zone) or 2027-06-30T18:00:00Z.
	Expires         time.Time     `toml:"expires,omitempty" json:"expires,omitzero"`
	AllowedNetworks []string      `toml:"allowed_networks,omitempty" json:"allowed_networks,omitempty"`
	DeniedNetworks  []string      `toml:"denied_networks,omitempty" json:"denied_networks,omitempty"`
	MaxSessions     int           `toml:"max_sessions,omitzero" json:"max_sessions,omitzero"`
	QuotaBytes      bytesize.Size `toml:"quota_bytes,omitzero" json:"quota_bytes,omitzero"`
	QuotaFiles      int64         `toml:"quota_files,omitzero" json:"quota_files,omitzero"`
	MaxFileSize     bytesize.Size `toml:"max_file_size,omitzero" json:"max_file_size,omitzero"`
	UploadRate      bytesize.Size `toml:"upload_rate,omitzero" json:"upload_rate,omitzero"`
	DownloadRate    bytesize.Size `toml:"download_rate,omitzero" json:"download_rate,omitzero"`
	AllowedPatterns []string      `toml:"allowed_patterns,omitempty" json:"allowed_patterns,omitempty"`
	DeniedPatterns  []string      `toml:"denied_patterns,omitempty" json:"denied_patterns,omitempty"`
	Retention       Age           `toml:"retention,omitzero" json:"retention,omitzero"`
	Dirs            []DirEntry    `toml:"dir,omitempty" json:"dir,omitempty"`
	Folders         []FolderEntry `toml:"folder,omitempty" json:"folder,omitempty"`
}

// DirEntry is a [[user.dir]] table.
type DirEntry struct {
	Path            string   `toml:"path" json:"path"`
	AllowedPatterns []string `toml:"allowed_patterns,omitempty" json:"allowed_patterns,omitempty"`
	DeniedPatterns  []string `toml:"denied_patterns,omitempty" json:"denied_patterns,omitempty"`
	Retention       Age      `toml:"retention,omitzero" json:"retention,omitzero"`
}

// Age is a duration written as Go does ("36h", "90m") or in days ("30d").
type Age time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Age) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not an age (e.g. \"30d\" or \"12h\")", b)
		}
		*a = Age(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not an age (e.g. \"30d\" or \"12h\")", b)
	}
	*a = Age(d)
	return nil
}

// MarshalText implements encoding.TextMarshaler: whole days as "30d".
func (a Age) MarshalText() ([]byte, error) {
	d := time.Duration(a)
	if d > 0 && d%(24*time.Hour) == 0 {
		return []byte(strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"), nil
	}
	return []byte(d.String()), nil
}

// Parse checks the entry and returns its Limits. Errors name the key.
func (e *LimitsEntry) Parse() (Limits, error) {
	l := Limits{
		Disabled:     e.Disabled,
		Expires:      e.Expires,
		MaxSessions:  e.MaxSessions,
		QuotaBytes:   int64(e.QuotaBytes),
		QuotaFiles:   e.QuotaFiles,
		MaxFileSize:  int64(e.MaxFileSize),
		UploadRate:   int64(e.UploadRate),
		DownloadRate: int64(e.DownloadRate),
	}
	var err error
	if l.AllowedNetworks, err = parseNetworks(e.AllowedNetworks); err != nil {
		return Limits{}, fmt.Errorf("allowed_networks: %w", err)
	}
	if l.DeniedNetworks, err = parseNetworks(e.DeniedNetworks); err != nil {
		return Limits{}, fmt.Errorf("denied_networks: %w", err)
	}
	for _, k := range []struct {
		key string
		v   int64
	}{{"max_sessions", int64(e.MaxSessions)}, {"quota_files", e.QuotaFiles}} {
		if k.v < 0 {
			return Limits{}, fmt.Errorf("%s: %d must not be negative", k.key, k.v)
		}
	}
	top := DirEntry{Path: "/", AllowedPatterns: e.AllowedPatterns, DeniedPatterns: e.DeniedPatterns, Retention: e.Retention}
	seen := map[string]bool{}
	for i, d := range append([]DirEntry{top}, e.Dirs...) {
		r, err := d.parse()
		if err != nil {
			return Limits{}, fmt.Errorf("dir[%d] %q: %w", i-1, d.Path, err)
		}
		if i > 0 && seen[r.Dir] {
			return Limits{}, fmt.Errorf("dir[%d] %q: path: a rule for this directory is already given", i-1, d.Path)
		}
		seen[r.Dir] = true
		if i == 0 && len(r.AllowedPatterns)+len(r.DeniedPatterns) == 0 && r.Retention == 0 {
			continue // no user-wide rule
		}
		l.Dirs = append(l.Dirs, r)
	}
	if l.Folders, err = parseFolders(e.Folders); err != nil {
		return Limits{}, err
	}
	return l, nil
}

func (d DirEntry) parse() (DirRule, error) {
	if !strings.HasPrefix(d.Path, "/") {
		return DirRule{}, errors.New("path: must be absolute in the user's tree, e.g. \"/incoming\"")
	}
	r := DirRule{Dir: path.Clean(d.Path), Retention: time.Duration(d.Retention)}
	for _, k := range []struct {
		key  string
		pats []string
		dst  *[]string
	}{{"allowed_patterns", d.AllowedPatterns, &r.AllowedPatterns}, {"denied_patterns", d.DeniedPatterns, &r.DeniedPatterns}} {
		for _, p := range k.pats {
			if _, err := path.Match(p, ""); err != nil || p == "" || strings.Contains(p, "/") {
				return DirRule{}, fmt.Errorf("%s: %q is not a file name pattern (e.g. \"*.csv\")", k.key, p)
			}
		}
		*k.dst = append([]string(nil), k.pats...)
	}
	return r, nil
}

// parseNetworks reads CIDR prefixes; a bare address is a /32 or /128.
func parseNetworks(in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range in {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a network (e.g. \"203.0.113.0/24\")", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
