package main

import (
	"flag"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/bytesize"
)

// limitFlags are the per-user access limits `user add` and `user set`
// take; a flag not given leaves its key as it is.
type limitFlags struct {
	allowedNetworks, deniedNetworks string
	allowedPatterns, deniedPatterns string
	expires                         string
	maxSessions                     int
	disable, enable                 bool
	// Sizes and ages are strings so that "0" and "" (no bound) read as
	// the users file writes them, and "10GiB" or "30d" as well.
	quotaBytes, quotaFiles, maxFileSize string
	uploadRate, downloadRate            string
	retention                           string
	// dir, when given, makes the name-rule and retention flags edit the
	// [[user.dir]] rule of that directory instead of the user-wide keys.
	dir       string
	removeDir bool
}

// limitFlagNames are the flags of limitFlags, as registered.
var limitFlagNames = []string{"allowed-networks", "denied-networks", "allowed-patterns", "denied-patterns", "expires", "max-sessions", "disable", "enable",
	"quota-bytes", "quota-files", "max-file-size", "upload-rate", "download-rate", "retention", "dir", "remove-dir"}

// dirFlagNames are the flags that --dir redirects to a [[user.dir]] rule.
var dirFlagNames = []string{"allowed-patterns", "denied-patterns", "retention"}

func registerLimitFlags(fs *flag.FlagSet, f *limitFlags) {
	fs.StringVar(&f.allowedNetworks, "allowed-networks", "", "comma-separated networks the user may log in from")
	fs.StringVar(&f.deniedNetworks, "denied-networks", "", "comma-separated networks the user may not log in from")
	fs.StringVar(&f.allowedPatterns, "allowed-patterns", "", "comma-separated file name patterns the user may upload")
	fs.StringVar(&f.deniedPatterns, "denied-patterns", "", "comma-separated file name patterns the user may not upload")
	fs.StringVar(&f.expires, "expires", "", "date the account expires, or never")
	fs.IntVar(&f.maxSessions, "max-sessions", 0, "concurrent sessions (0: no limit)")
	fs.BoolVar(&f.disable, "disable", false, "refuse every login of the user")
	fs.BoolVar(&f.enable, "enable", false, "undo --disable")
	fs.StringVar(&f.quotaBytes, "quota-bytes", "", "bytes the user may store, e.g. 10GiB (0: no bound)")
	fs.StringVar(&f.quotaFiles, "quota-files", "", "files the user may store (0: no bound)")
	fs.StringVar(&f.maxFileSize, "max-file-size", "", "largest upload, e.g. 2GiB (0: no bound)")
	fs.StringVar(&f.uploadRate, "upload-rate", "", "upload bandwidth per second, e.g. 5MiB (0: no bound)")
	fs.StringVar(&f.downloadRate, "download-rate", "", "download bandwidth per second (0: no bound)")
	fs.StringVar(&f.retention, "retention", "", "delete files older than this, e.g. 30d (0: keep)")
	fs.StringVar(&f.dir, "dir", "", "apply --allowed-patterns, --denied-patterns and --retention to this directory's rule")
	fs.BoolVar(&f.removeDir, "remove-dir", false, "with --dir: remove that directory's rule")
}

// limitEdit turns the limit flags given (set) into an edit of a users-file
// entry, checked against an empty entry so that a bad value is reported
// before anything else happens. It returns nil when no limit flag was
// given.
func limitEdit(f *limitFlags, set map[string]bool) (func(*auth.LimitsEntry), error) {
	given := false
	for _, n := range limitFlagNames {
		given = given || set[n]
	}
	if !given {
		return nil, nil
	}
	if f.disable && f.enable {
		return nil, usageError{"--disable and --enable contradict each other"}
	}
	if set["max-sessions"] && f.maxSessions < 0 {
		return nil, usageError{"--max-sessions: must be 0 (no limit) or more"}
	}
	var expires time.Time
	if set["expires"] {
		t, err := parseExpires(f.expires)
		if err != nil {
			return nil, usageError{"--expires: " + err.Error()}
		}
		expires = t
	}
	sizes := map[string]*bytesize.Size{}
	for _, k := range []struct{ flag, v string }{
		{"quota-bytes", f.quotaBytes}, {"max-file-size", f.maxFileSize},
		{"upload-rate", f.uploadRate}, {"download-rate", f.downloadRate},
	} {
		if !set[k.flag] {
			continue
		}
		v, err := bytesize.Parse(orZero(k.v))
		if err != nil {
			return nil, usageError{"--" + k.flag + ": " + err.Error()}
		}
		sizes[k.flag] = &v
	}
	var quotaFiles int64
	if set["quota-files"] {
		n, err := strconv.ParseInt(orZero(f.quotaFiles), 10, 64)
		if err != nil || n < 0 {
			return nil, usageError{fmt.Sprintf("--quota-files: %q is not a number of files (0: no bound)", f.quotaFiles)}
		}
		quotaFiles = n
	}
	var retention auth.Age
	if set["retention"] {
		if err := retention.UnmarshalText([]byte(orZero(f.retention))); err != nil {
			return nil, usageError{"--retention: " + err.Error()}
		}
	}
	dir := ""
	if set["dir"] {
		if !strings.HasPrefix(f.dir, "/") {
			return nil, usageError{fmt.Sprintf("--dir: %q must be absolute in the user's tree, e.g. /incoming", f.dir)}
		}
		dir = path.Clean(f.dir)
	}
	if f.removeDir {
		if dir == "" || dir == "/" {
			return nil, usageError{"--remove-dir needs --dir with the directory whose rule to remove"}
		}
		for _, n := range dirFlagNames {
			if set[n] {
				return nil, usageError{"--remove-dir and --" + n + " contradict each other"}
			}
		}
	} else if dir != "" && dir != "/" && !slices.ContainsFunc(dirFlagNames, func(n string) bool { return set[n] }) {
		return nil, usageError{"--dir " + dir + ": give --allowed-patterns, --denied-patterns or --retention for it, or --remove-dir"}
	}
	edit := func(e *auth.LimitsEntry) {
		if set["allowed-networks"] {
			e.AllowedNetworks = splitList(f.allowedNetworks)
		}
		if set["denied-networks"] {
			e.DeniedNetworks = splitList(f.deniedNetworks)
		}
		if set["expires"] {
			e.Expires = expires
		}
		if set["max-sessions"] {
			e.MaxSessions = f.maxSessions
		}
		if f.disable {
			e.Disabled = true
		}
		if f.enable {
			e.Disabled = false
		}
		for flag, dst := range map[string]*bytesize.Size{
			"quota-bytes": &e.QuotaBytes, "max-file-size": &e.MaxFileSize,
			"upload-rate": &e.UploadRate, "download-rate": &e.DownloadRate,
		} {
			if v, ok := sizes[flag]; ok {
				*dst = *v
			}
		}
		if set["quota-files"] {
			e.QuotaFiles = quotaFiles
		}
		rule := auth.DirEntry{AllowedPatterns: e.AllowedPatterns, DeniedPatterns: e.DeniedPatterns, Retention: e.Retention}
		i := -1
		if dir != "" && dir != "/" {
			i = slices.IndexFunc(e.Dirs, func(d auth.DirEntry) bool { return path.Clean(d.Path) == dir })
			if f.removeDir {
				if i >= 0 {
					e.Dirs = slices.Delete(e.Dirs, i, i+1)
				}
				return
			}
			rule = auth.DirEntry{Path: dir}
			if i >= 0 {
				rule = e.Dirs[i]
			}
		}
		if set["allowed-patterns"] {
			rule.AllowedPatterns = splitList(f.allowedPatterns)
		}
		if set["denied-patterns"] {
			rule.DeniedPatterns = splitList(f.deniedPatterns)
		}
		if set["retention"] {
			rule.Retention = retention
		}
		switch {
		case dir == "" || dir == "/":
			e.AllowedPatterns, e.DeniedPatterns, e.Retention = rule.AllowedPatterns, rule.DeniedPatterns, rule.Retention
		case len(rule.AllowedPatterns)+len(rule.DeniedPatterns) == 0 && rule.Retention == 0:
			// A rule left with nothing in it says nothing: drop it
			// rather than keep an empty [[user.dir]] table.
			if i >= 0 {
				e.Dirs = slices.Delete(e.Dirs, i, i+1)
			}
		case i >= 0:
			e.Dirs[i] = rule
		default:
			e.Dirs = append(e.Dirs, rule)
		}
	}
	var probe auth.LimitsEntry
	edit(&probe)
	if _, err := probe.Parse(); err != nil {
		return nil, usageError{err.Error()}
	}
	return edit, nil
}

// parseExpires reads --expires: a date (the account expires at the start
// of that day, in the server's time zone, as a TOML date in the users
// file does), an RFC 3339 date and time, or "never".
func parseExpires(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "never":
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (e.g. 2027-06-30, 2027-06-30T18:00:00Z, or never)", s)
}

// orZero reads an empty size, count or age flag as 0, no bound.
func orZero(s string) string {
	if strings.TrimSpace(s) == "" {
		return "0"
	}
	return s
}

// splitList reads a comma-separated flag value; "" is the empty list.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func userSet(c *userCtx, name string) error {
	edit, err := limitEdit(&c.flags.limits, c.set)
	if err != nil {
		return err
	}
	if edit == nil {
		return usageError{"nothing to set: give at least one of --" + strings.Join(limitFlagNames, ", --")}
	}
	if err := c.mustExist(name); err != nil {
		return err
	}
	if err := c.store.setLimits(c.ctx, name, edit); err != nil {
		return err
	}
	e, err := c.store.get(c.ctx, name)
	if err != nil {
		return err
	}
	if e != nil {
		fmt.Fprintf(c.stdout, "user %s: %s\n", name, describeAccess(e.LimitsEntry, time.Now()))
	}
	return nil
}

// describeAccess sums up the access limits of an entry, for `user set`.
func describeAccess(e auth.LimitsEntry, now time.Time) string {
	parts := []string{accessStatus(e, now)}
	if len(e.AllowedNetworks) > 0 {
		parts = append(parts, "allowed_networks "+strings.Join(e.AllowedNetworks, ","))
	}
	if len(e.DeniedNetworks) > 0 {
		parts = append(parts, "denied_networks "+strings.Join(e.DeniedNetworks, ","))
	}
	if e.MaxSessions > 0 {
		parts = append(parts, "max_sessions "+strconv.Itoa(e.MaxSessions))
	}
	parts = append(parts, ruleKeys(auth.DirEntry{AllowedPatterns: e.AllowedPatterns, DeniedPatterns: e.DeniedPatterns})...)
	for _, k := range []struct {
		key string
		v   bytesize.Size
	}{{"quota_bytes", e.QuotaBytes}, {"max_file_size", e.MaxFileSize}, {"upload_rate", e.UploadRate}, {"download_rate", e.DownloadRate}} {
		if k.v > 0 {
			parts = append(parts, k.key+" "+k.v.String())
		}
	}
	if e.QuotaFiles > 0 {
		parts = append(parts, "quota_files "+strconv.FormatInt(e.QuotaFiles, 10))
	}
	if e.Retention > 0 {
		parts = append(parts, ruleKeys(auth.DirEntry{Retention: e.Retention})...)
	}
	for _, d := range e.Dirs {
		parts = append(parts, "dir "+describeDir(d))
	}
	return strings.Join(parts, ", ")
}

// describeDir sums up a [[user.dir]] rule: "/incoming (allowed_patterns
// *.csv; retention 30d)".
func describeDir(d auth.DirEntry) string {
	return d.Path + " (" + strings.Join(ruleKeys(d), "; ") + ")"
}

// ruleKeys are the keys a directory rule (or the user-wide one) sets.
func ruleKeys(d auth.DirEntry) []string {
	var keys []string
	if len(d.AllowedPatterns) > 0 {
		keys = append(keys, "allowed_patterns "+strings.Join(d.AllowedPatterns, ","))
	}
	if len(d.DeniedPatterns) > 0 {
		keys = append(keys, "denied_patterns "+strings.Join(d.DeniedPatterns, ","))
	}
	if d.Retention > 0 {
		b, _ := d.Retention.MarshalText()
		keys = append(keys, "retention "+string(b))
	}
	return keys
}

// accessStatus is the STATUS column of `user list`: whether the account
// can log in at now.
func accessStatus(e auth.LimitsEntry, now time.Time) string {
	switch {
	case e.Disabled:
		return "disabled"
	case e.Expires.IsZero():
		return "active"
	case !now.Before(e.Expires):
		return "expired " + formatExpiry(e.Expires)
	default:
		return "active until " + formatExpiry(e.Expires)
	}
}

// formatExpiry shows an expiry at the start of a local day as the date
// alone, anything else in full.
func formatExpiry(t time.Time) string {
	l := t.In(time.Local)
	if l.Hour() == 0 && l.Minute() == 0 && l.Second() == 0 && l.Nanosecond() == 0 {
		return l.Format(time.DateOnly)
	}
	return t.Format(time.RFC3339)
}
