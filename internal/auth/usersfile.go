package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// UserEntry is one [[user]] table of a users file, as written.
type UserEntry struct {
	Name         string   `toml:"name"`
	PasswordHash string   `toml:"password_hash"`
	Home         string   `toml:"home,omitempty"`
	Permissions  []string `toml:"permissions"`
	// TLS and TLSData override the listener's FTPS policy for this user:
	// "required" or "optional"; empty keeps the listener's.
	TLS     string `toml:"tls,omitempty"`
	TLSData string `toml:"tls_data,omitempty"`
	// BinaryOnly transfers the user's files unchanged even in TYPE A.
	BinaryOnly bool `toml:"binary_only,omitempty"`
	// Limits: networks, expiry, sessions, quotas, rates, name rules,
	// retention; all optional (limits.go).
	LimitsEntry
}

// usersFileDoc is the whole file; [[user]] is the only top-level key.
type usersFileDoc struct {
	User []UserEntry `toml:"user"`
}

// UsersFile is a users file in memory: loaded, validated, edited by the
// `user` command and saved back. It is not safe for concurrent use; the
// server hands a loaded file to NewFileAuthenticator, which copies what it
// needs.
type UsersFile struct {
	entries []UserEntry
}

const usersFileHeader = `# cloudftpd users
#
# Managed with "cloudftpd user add|set|passwd|del|list"; hand edits are fine.
# password_hash: argon2id (written by cloudftpd) or bcrypt ($2a$/$2b$/$2y$).
# home: relative to storage.root; defaults to the user name.
# permissions: all, read, dropbox, or any of list, download, upload,
#   overwrite, delete, rename, mkdir, chmod.
# tls, tls_data: "required" or "optional" override the listener's FTPS policy.
# binary_only: files are transferred unchanged even after TYPE A.
# Optional limits (README "Limits and defence"): disabled, expires,
#   allowed_networks, denied_networks, max_sessions, quota_bytes, quota_files,
#   max_file_size, upload_rate, download_rate, allowed_patterns,
#   denied_patterns, retention, and [[user.dir]] tables (path,
#   allowed_patterns, denied_patterns, retention).
# Virtual folders (README "Virtual folders"): [[user.folder]] tables (path,
#   target relative to storage.root or to a volume, volume, permissions).

`

// LoadUsersFile reads and validates a users file. Errors name the file, the
// user by index and name, and the bad key, e.g.
// `users.toml: user[2] "bob": permissions: "fly" is not a permission`.
func LoadUsersFile(path string) (*UsersFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	f, err := parseUsersFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// LoadOrEmpty is LoadUsersFile, except that a missing file is an empty
// users file, so `user add` can create the first user.
func LoadOrEmpty(path string) (*UsersFile, error) {
	f, err := LoadUsersFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &UsersFile{}, nil
	}
	return f, err
}

func parseUsersFile(data []byte) (*UsersFile, error) {
	var doc usersFileDoc
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, unknownKeyError(md, und, doc.User)
	}
	seen := make(map[string]int, len(doc.User))
	for i := range doc.User {
		e := &doc.User[i]
		if err := validateEntry(e); err != nil {
			return nil, fmt.Errorf("user[%d] %q: %w", i, e.Name, err)
		}
		if j, dup := seen[e.Name]; dup {
			return nil, fmt.Errorf("user[%d] %q: name: duplicate of user[%d]", i, e.Name, j)
		}
		seen[e.Name] = i
	}
	return &UsersFile{entries: doc.User}, nil
}

// unknownKeyError names the first unknown key together with the user it
// belongs to. MetaData keys carry no array index, so the index is found by
// counting [[user]] headers in document order up to the key's first use.
func unknownKeyError(md toml.MetaData, und []toml.Key, users []UserEntry) error {
	bad := und[0].String()
	idx := -1
	for _, k := range md.Keys() {
		if len(k) == 1 && k[0] == "user" {
			idx++
			continue
		}
		if k.String() != bad {
			continue
		}
		if k[0] == "user" && idx >= 0 && idx < len(users) {
			return fmt.Errorf("user[%d] %q: unknown key %q", idx, users[idx].Name, strings.Join(k[1:], "."))
		}
		break
	}
	return fmt.Errorf("unknown key %q", bad)
}

func validateEntry(e *UserEntry) error {
	if err := validateName(e.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if err := checkHash(e.PasswordHash); err != nil {
		if e.PasswordHash == "" {
			return errors.New("password_hash: required (set one with \"cloudftpd user passwd NAME\")")
		}
		return fmt.Errorf("password_hash: %s", strings.TrimPrefix(err.Error(), "auth: "))
	}
	if err := validateHome(e.Home); err != nil {
		return fmt.Errorf("home: %w", err)
	}
	if e.Permissions == nil {
		return errors.New("permissions: required, e.g. [\"all\"] or [\"read\"]")
	}
	p, err := ParsePermissions(e.Permissions)
	if err != nil {
		return fmt.Errorf("permissions: %w", err)
	}
	if p == 0 {
		return errors.New("permissions: at least one is required, e.g. [\"read\"]")
	}
	for _, k := range []struct{ key, v string }{{"tls", e.TLS}, {"tls_data", e.TLSData}} {
		if k.v != "" && k.v != "optional" && k.v != "required" {
			return fmt.Errorf("%s: %q (want \"required\" or \"optional\")", k.key, k.v)
		}
	}
	if _, err := e.LimitsEntry.Parse(); err != nil {
		return err
	}
	return nil
}

// validateName rejects names that could not be typed in a USER command or
// that would be unsafe as the default home (which is the name itself).
func validateName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > 256:
		return errors.New("longer than 256 bytes")
	case !utf8.ValidString(name):
		return fmt.Errorf("%q is not valid UTF-8", name)
	case name == "." || name == ".." || strings.ContainsAny(name, `/\`):
		return fmt.Errorf("%q: must not be \".\", \"..\" or contain a slash (it is the default home)", name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%q contains whitespace or a control character", name)
		}
	}
	return nil
}

// validateHome keeps homes inside the storage root. The storage layer jails
// paths too; refusing such a file early gives a clear error instead of a
// user who cannot log in.
func validateHome(home string) error {
	if home == "" {
		return nil
	}
	if strings.HasPrefix(home, "/") || filepath.IsAbs(home) {
		return fmt.Errorf("%q must be relative to storage.root", home)
	}
	// Homes are slash-separated virtual paths; a backslash would mean a
	// separator on some systems and a file name character on others.
	if strings.Contains(home, `\`) {
		return fmt.Errorf("%q: use \"/\" to separate directories", home)
	}
	for _, elem := range strings.Split(home, "/") {
		if elem == ".." {
			return fmt.Errorf("%q must not contain \"..\"", home)
		}
	}
	for _, r := range home {
		if unicode.IsControl(r) {
			return fmt.Errorf("%q contains a control character", home)
		}
	}
	return nil
}

// cleanHome is the home a user is jailed in: the name when unset, otherwise
// the cleaned slash-separated path ("." is the storage root itself).
func cleanHome(name, home string) string {
	if home == "" {
		return name
	}
	return path.Clean(home)
}

// Save writes the file atomically: a temporary file in the same directory,
// synced and renamed over path, so a crash never leaves half a users file
// and a running server never reads one. A new file is mode 0600 because
// it holds password hashes; a file that exists keeps its mode, owner and
// group, so that "cloudftpd user add" run as root does not lock out a
// server running as its own account (0640 root:cloudftpd, say).
func (f *UsersFile) Save(path string) error {
	var buf bytes.Buffer
	buf.WriteString(usersFileHeader)
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(usersFileDoc{User: f.Users()}); err != nil {
		return fmt.Errorf("auth: encoding %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	mode := os.FileMode(0o600)
	old, statErr := os.Stat(path)
	if statErr == nil {
		mode = old.Mode().Perm()
		if err := keepOwner(tmp, old); err != nil {
			tmp.Close()
			return fmt.Errorf("auth: keeping the owner of %s: %w", path, err)
		}
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("auth: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	// Make the rename itself durable; not every platform can sync a
	// directory, and the data is already safe, so errors are ignored.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func (f *UsersFile) find(name string) int {
	return slices.IndexFunc(f.entries, func(e UserEntry) bool { return e.Name == name })
}

// Add adds a user. home "" means the user's name. It fails if the user
// exists or any field would not pass LoadUsersFile.
func (f *UsersFile) Add(name, hash, home string, perms Permissions) error {
	e := UserEntry{Name: name, PasswordHash: hash, Home: home, Permissions: perms.Strings()}
	if err := validateEntry(&e); err != nil {
		return fmt.Errorf("auth: user %q: %w", name, err)
	}
	if f.find(name) >= 0 {
		return fmt.Errorf("auth: user %q already exists", name)
	}
	f.entries = append(f.entries, e)
	return nil
}

// SetPassword replaces a user's password hash.
func (f *UsersFile) SetPassword(name, hash string) error {
	i := f.find(name)
	if i < 0 {
		return fmt.Errorf("auth: no user %q", name)
	}
	if err := checkHash(hash); err != nil {
		return fmt.Errorf("auth: user %q: password_hash: %w", name, err)
	}
	f.entries[i].PasswordHash = hash
	return nil
}

// SetLimits changes a user's limits: edit gets the entry's limit keys and
// changes them in place. The result must pass LoadUsersFile, or nothing
// changes and the error names the key.
func (f *UsersFile) SetLimits(name string, edit func(*LimitsEntry)) error {
	i := f.find(name)
	if i < 0 {
		return fmt.Errorf("auth: no user %q", name)
	}
	ent := f.entries[i]
	ent.LimitsEntry = cloneLimitsEntry(ent.LimitsEntry)
	edit(&ent.LimitsEntry)
	if _, err := ent.LimitsEntry.Parse(); err != nil {
		return fmt.Errorf("auth: user %q: %w", name, err)
	}
	f.entries[i] = ent
	return nil
}

// Update changes a user's entry: edit gets a copy of it (its slices its
// own) and may change any field but the name, or return an error to
// change nothing. The result must pass LoadUsersFile, or nothing changes
// and the error names the key. It is the whole-entry edit of the
// operations API; SetPassword and SetLimits are the command line's.
func (f *UsersFile) Update(name string, edit func(*UserEntry) error) error {
	i := f.find(name)
	if i < 0 {
		return fmt.Errorf("auth: no user %q", name)
	}
	ent := f.entries[i]
	ent.Permissions = slices.Clone(ent.Permissions)
	ent.LimitsEntry = cloneLimitsEntry(ent.LimitsEntry)
	if err := edit(&ent); err != nil {
		return err
	}
	if ent.Name != name {
		return fmt.Errorf("auth: user %q: the name cannot be changed", name)
	}
	if err := validateEntry(&ent); err != nil {
		return fmt.Errorf("auth: user %q: %w", name, err)
	}
	f.entries[i] = ent
	return nil
}

// cloneLimitsEntry copies e's slices, so an edit that fails leaves the
// original alone.
func cloneLimitsEntry(e LimitsEntry) LimitsEntry {
	e.AllowedNetworks = slices.Clone(e.AllowedNetworks)
	e.DeniedNetworks = slices.Clone(e.DeniedNetworks)
	e.AllowedPatterns = slices.Clone(e.AllowedPatterns)
	e.DeniedPatterns = slices.Clone(e.DeniedPatterns)
	e.Dirs = slices.Clone(e.Dirs)
	for i := range e.Dirs {
		e.Dirs[i].AllowedPatterns = slices.Clone(e.Dirs[i].AllowedPatterns)
		e.Dirs[i].DeniedPatterns = slices.Clone(e.Dirs[i].DeniedPatterns)
	}
	e.Folders = slices.Clone(e.Folders)
	for i := range e.Folders {
		e.Folders[i].Permissions = slices.Clone(e.Folders[i].Permissions)
	}
	return e
}

// Delete removes a user.
func (f *UsersFile) Delete(name string) error {
	i := f.find(name)
	if i < 0 {
		return fmt.Errorf("auth: no user %q", name)
	}
	f.entries = slices.Delete(f.entries, i, i+1)
	return nil
}

// Users returns a copy of the entries sorted by name.
func (f *UsersFile) Users() []UserEntry {
	out := make([]UserEntry, len(f.entries))
	for i, e := range f.entries {
		e.Permissions = slices.Clone(e.Permissions)
		e.AllowedNetworks = slices.Clone(e.AllowedNetworks)
		e.DeniedNetworks = slices.Clone(e.DeniedNetworks)
		e.AllowedPatterns = slices.Clone(e.AllowedPatterns)
		e.DeniedPatterns = slices.Clone(e.DeniedPatterns)
		e.Dirs = slices.Clone(e.Dirs)
		e.Folders = slices.Clone(e.Folders)
		out[i] = e
	}
	slices.SortFunc(out, func(a, b UserEntry) int { return strings.Compare(a.Name, b.Name) })
	return out
}
