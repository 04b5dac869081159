package auth

import (
	"fmt"
	"strings"
)

// Permissions is a set of rights a user holds inside their home. The
// protocol layer checks one bit per command, so adding a right never changes
// the meaning of an existing users file.
type Permissions uint16

// The individual rights. Each names the FTP commands it unlocks.
const (
	PermList      Permissions = 1 << iota // LIST/NLST/MLSD/MLST/STAT path, CWD into dirs
	PermDownload                          // RETR
	PermUpload                            // STOR/STOU/APPE of new files
	PermOverwrite                         // STOR over an existing file, APPE/REST+STOR to existing
	PermDelete                            // DELE, RMD
	PermRename                            // RNFR/RNTO
	PermMkdir                             // MKD
	PermChmod                             // SITE CHMOD, MFMT
)

// Presets are the names operators reach for most; they expand to fixed sets
// so "read" means the same thing in every users file.
const (
	permAll     = PermList | PermDownload | PermUpload | PermOverwrite | PermDelete | PermRename | PermMkdir | PermChmod
	permRead    = PermList | PermDownload
	permDropbox = PermUpload // write-only: cannot list, download or overwrite
)

// permNames is in bit order; it is the canonical spelling of each right.
var permNames = [...]struct {
	name string
	perm Permissions
}{
	{"list", PermList},
	{"download", PermDownload},
	{"upload", PermUpload},
	{"overwrite", PermOverwrite},
	{"delete", PermDelete},
	{"rename", PermRename},
	{"mkdir", PermMkdir},
	{"chmod", PermChmod},
}

// presetNames are checked in this order by Strings, so an exact match is
// written back as the preset the operator most likely typed.
var presetNames = [...]struct {
	name string
	perm Permissions
}{
	{"all", permAll},
	{"read", permRead},
	{"dropbox", permDropbox},
}

// Has reports whether every right in q is in p.
func (p Permissions) Has(q Permissions) bool { return p&q == q }

// ParsePermissions turns names from a users file or the command line into a
// set. Unknown names are errors, never ignored: a typo must not silently
// take a right away or grant one.
func ParsePermissions(list []string) (Permissions, error) {
	var p Permissions
	for _, s := range list {
		q, ok := lookupPerm(s)
		if !ok {
			return 0, fmt.Errorf("%q is not a permission (want %s)", s, permissionHelp())
		}
		p |= q
	}
	return p, nil
}

func lookupPerm(s string) (Permissions, bool) {
	for _, n := range presetNames {
		if n.name == s {
			return n.perm, true
		}
	}
	for _, n := range permNames {
		if n.name == s {
			return n.perm, true
		}
	}
	return 0, false
}

func permissionHelp() string {
	var names []string
	for _, n := range presetNames {
		names = append(names, n.name)
	}
	for _, n := range permNames {
		names = append(names, n.name)
	}
	return strings.Join(names, ", ")
}

// Strings returns the canonical names of p: a preset name when p is exactly
// a preset, otherwise the individual rights in a fixed order. Parsing the
// result gives back p.
func (p Permissions) Strings() []string {
	for _, n := range presetNames {
		if p == n.perm {
			return []string{n.name}
		}
	}
	out := []string{}
	for _, n := range permNames {
		if p.Has(n.perm) {
			out = append(out, n.name)
		}
	}
	return out
}

// String joins Strings with commas, for logs.
func (p Permissions) String() string { return strings.Join(p.Strings(), ",") }
