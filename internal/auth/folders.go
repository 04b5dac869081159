package auth

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Folder is a virtual folder: a mount point in the user's tree whose
// files live elsewhere (another directory of the storage, or a named
// volume of the server's config), with permissions of its own that
// replace the user's inside it. Two users who mount the same target share
// its files.
type Folder struct {
	// Path is the mount point, a clean absolute virtual path other than
	// "/" ("/inbox", "/shared/public").
	Path string
	// Volume names a [[volume]] of the server's config; "" is the main
	// storage (storage.root or the bucket and prefix of [storage]).
	Volume string
	// Target is the directory the folder shows, slash-separated and
	// relative to the volume's root ("." for the root itself). It is
	// jailed like a home: nothing outside it is reachable through the
	// folder.
	Target string
	// Perms replace the user's permissions inside the folder.
	Perms Permissions
}

// FolderEntry is a [[user.folder]] table.
type FolderEntry struct {
	Path        string   `toml:"path" json:"path"`
	Volume      string   `toml:"volume,omitempty" json:"volume,omitempty"`
	Target      string   `toml:"target,omitempty" json:"target,omitempty"`
	Permissions []string `toml:"permissions" json:"permissions"`
}

// parseFolders checks the [[user.folder]] tables. Mount points may nest
// (a folder inside another folder), but not repeat.
func parseFolders(in []FolderEntry) ([]Folder, error) {
	var out []Folder
	seen := map[string]bool{}
	for i, e := range in {
		f, err := e.parse()
		if err != nil {
			return nil, fmt.Errorf("folder[%d] %q: %w", i, e.Path, err)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("folder[%d] %q: path: a folder is already mounted there", i, e.Path)
		}
		seen[f.Path] = true
		out = append(out, f)
	}
	return out, nil
}

func (e FolderEntry) parse() (Folder, error) {
	if !strings.HasPrefix(e.Path, "/") {
		return Folder{}, errors.New("path: must be absolute in the user's tree, e.g. \"/inbox\"")
	}
	p := path.Clean(e.Path)
	if p == "/" {
		return Folder{}, errors.New("path: \"/\" is the user's home; mount a folder below it, e.g. \"/inbox\"")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return Folder{}, errors.New("path: contains a control character")
		}
	}
	target := e.Target
	switch {
	case target == "" && e.Volume == "":
		return Folder{}, errors.New("target: required (a directory relative to storage.root, e.g. \"shared/public\"), or a volume")
	case target == "":
		target = "."
	}
	if err := validateHome(target); err != nil {
		return Folder{}, fmt.Errorf("target: %w", err)
	}
	if strings.ContainsAny(e.Volume, "/\\ ") {
		return Folder{}, fmt.Errorf("volume: %q is not a volume name", e.Volume)
	}
	if e.Permissions == nil {
		return Folder{}, errors.New("permissions: required, e.g. [\"upload\"] or [\"read\"]")
	}
	perms, err := ParsePermissions(e.Permissions)
	if err != nil {
		return Folder{}, fmt.Errorf("permissions: %w", err)
	}
	if perms == 0 {
		return Folder{}, errors.New("permissions: at least one is required, e.g. [\"read\"]")
	}
	return Folder{Path: p, Volume: e.Volume, Target: path.Clean(target), Perms: perms}, nil
}

// PermsAt returns the permissions that hold at the clean virtual path p:
// those of the folder with the longest mount point that is p or above it,
// or the user's own outside every folder.
func (u *User) PermsAt(p string) Permissions {
	if f := u.Limits.FolderAt(p); f != nil {
		return f.Perms
	}
	return u.Perms
}

// FolderAt returns the folder whose mount point is p or the nearest above
// it, or nil when p is in the user's own tree.
func (l *Limits) FolderAt(p string) *Folder {
	var best *Folder
	for i := range l.Folders {
		f := &l.Folders[i]
		if p == f.Path || strings.HasPrefix(p, f.Path+"/") {
			if best == nil || len(f.Path) > len(best.Path) {
				best = f
			}
		}
	}
	return best
}
