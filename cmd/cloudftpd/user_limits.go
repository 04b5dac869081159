package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// limitFlags are the per-user access limits `user add` and `user set`
// take; a flag not given leaves its key as it is.
type limitFlags struct {
	allowedNetworks, deniedNetworks string
	allowedPatterns, deniedPatterns string
	expires                         string
	maxSessions                     int
	disable, enable                 bool
}

// limitFlagNames are the flags of limitFlags, as registered.
var limitFlagNames = []string{"allowed-networks", "denied-networks", "allowed-patterns", "denied-patterns", "expires", "max-sessions", "disable", "enable"}

func registerLimitFlags(fs *flag.FlagSet, f *limitFlags) {
	fs.StringVar(&f.allowedNetworks, "allowed-networks", "", "comma-separated networks the user may log in from")
	fs.StringVar(&f.deniedNetworks, "denied-networks", "", "comma-separated networks the user may not log in from")
	fs.StringVar(&f.allowedPatterns, "allowed-patterns", "", "comma-separated file name patterns the user may upload")
	fs.StringVar(&f.deniedPatterns, "denied-patterns", "", "comma-separated file name patterns the user may not upload")
	fs.StringVar(&f.expires, "expires", "", "date the account expires, or never")
	fs.IntVar(&f.maxSessions, "max-sessions", 0, "concurrent sessions (0: no limit)")
	fs.BoolVar(&f.disable, "disable", false, "refuse every login of the user")
	fs.BoolVar(&f.enable, "enable", false, "undo --disable")
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
	edit := func(e *auth.LimitsEntry) {
		if set["allowed-networks"] {
			e.AllowedNetworks = splitList(f.allowedNetworks)
		}
		if set["denied-networks"] {
			e.DeniedNetworks = splitList(f.deniedNetworks)
		}
		if set["allowed-patterns"] {
			e.AllowedPatterns = splitList(f.allowedPatterns)
		}
		if set["denied-patterns"] {
			e.DeniedPatterns = splitList(f.deniedPatterns)
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
	if len(e.AllowedPatterns) > 0 {
		parts = append(parts, "allowed_patterns "+strings.Join(e.AllowedPatterns, ","))
	}
	if len(e.DeniedPatterns) > 0 {
		parts = append(parts, "denied_patterns "+strings.Join(e.DeniedPatterns, ","))
	}
	return strings.Join(parts, ", ")
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
