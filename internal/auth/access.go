package auth

import (
	"net/netip"
	"path"
	"strings"
	"time"
)

// LoginRefusal says why l refuses a login of user from client at now, or
// "" when it does not: the account is disabled or expired, or the client
// is outside allowed_networks or inside denied_networks. The reason names
// the key at fault, for the server's log; the client is only ever told
// "530 Login incorrect.", as for a wrong password, so that a refused
// account cannot be told from a wrong password.
//
// client is the real client address (after PROXY protocol); an
// IPv4-mapped IPv6 address counts as the IPv4 address it maps.
func (l *Limits) LoginRefusal(user string, client netip.Addr, now time.Time) string {
	switch {
	case l.Disabled:
		return user + " is disabled"
	case !l.Expires.IsZero() && !now.Before(l.Expires):
		return user + " expired at " + l.Expires.Format(time.RFC3339)
	}
	client = client.Unmap()
	// Denied first: the README promises that a denied network is refused
	// even inside an allowed one.
	for _, p := range l.DeniedNetworks {
		if p.Contains(client) {
			return "client " + client.String() + " is in " + user + "'s denied_networks (" + p.String() + ")"
		}
	}
	if len(l.AllowedNetworks) == 0 {
		return ""
	}
	for _, p := range l.AllowedNetworks {
		if p.Contains(client) {
			return ""
		}
	}
	return "client " + client.String() + " is not in " + user + "'s allowed_networks"
}

// NameRefusal says why l refuses to let a new file or directory be named
// as the last element of p (a clean virtual path) by an upload, a rename
// or a new directory, or "" when it may. The text is for the client, e.g.
// "*.exe files are refused in /incoming".
//
// The patterns that apply are, separately for allowed_patterns and
// denied_patterns, those of the most specific rule (the longest Dir
// containing p's directory) that sets them: a user-wide denied_patterns
// stays in force below a [[user.dir]] that only sets allowed_patterns.
// Patterns are path.Match globs on the base name, matched without regard
// to case: "*.exe" refuses "SETUP.EXE" too, since a client on a
// case-insensitive system may write either.
func (l *Limits) NameRefusal(p string) string {
	if len(l.Dirs) == 0 {
		return ""
	}
	dir, name := path.Split(p)
	dir = path.Clean("/" + dir)
	allowed, denied := l.namePatterns(dir)
	folded := strings.ToLower(name)
	for _, pat := range denied.pats {
		if globFold(pat, folded) {
			return pat + " files are refused" + denied.where()
		}
	}
	if len(allowed.pats) == 0 {
		return ""
	}
	for _, pat := range allowed.pats {
		if globFold(pat, folded) {
			return ""
		}
	}
	return "only " + strings.Join(allowed.pats, ", ") + " files are accepted" + allowed.where()
}

// patternRule is the patterns of one kind that apply in a directory, and
// the directory whose rule set them.
type patternRule struct {
	pats []string
	dir  string
}

func (r patternRule) where() string {
	if r.dir == "/" {
		return ""
	}
	return " in " + r.dir
}

// namePatterns finds, for dir, the allowed and denied patterns of the
// most specific rules that set them.
func (l *Limits) namePatterns(dir string) (allowed, denied patternRule) {
	bestA, bestD := -1, -1
	for _, r := range l.Dirs {
		if !under(dir, r.Dir) {
			continue
		}
		if len(r.AllowedPatterns) > 0 && len(r.Dir) > bestA {
			allowed, bestA = patternRule{r.AllowedPatterns, r.Dir}, len(r.Dir)
		}
		if len(r.DeniedPatterns) > 0 && len(r.Dir) > bestD {
			denied, bestD = patternRule{r.DeniedPatterns, r.Dir}, len(r.Dir)
		}
	}
	return allowed, denied
}

// under reports whether the clean path p is dir or inside it.
func under(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// globFold matches a pattern against an already lower-cased name, without
// regard to case. Patterns were checked when the users file was loaded,
// so path.Match cannot fail on them.
func globFold(pattern, foldedName string) bool {
	ok, _ := path.Match(strings.ToLower(pattern), foldedName)
	return ok
}
