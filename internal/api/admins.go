package api

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// Admin is one console account as the admins file keeps it: a name and
// an argon2id hash of the password (PHC string, as auth.HashPassword
// writes it). Admin accounts have the admin scope.
//
// Unlike a token, a password is chosen by a person and may be guessed
// from a dictionary: it gets the slow hash, and logins are verified in
// the bounded slots of an auth.Verifier.
type Admin struct {
	Name         string    `toml:"name"`
	PasswordHash string    `toml:"password_hash"`
	Created      time.Time `toml:"created"`
}

// AdminsFile is the admins file in memory.
type AdminsFile struct {
	Admins []Admin `toml:"admin"`
}

// LoadAdmins reads an admins file. A missing file is an error wrapping
// fs.ErrNotExist; LoadAdminsOrEmpty treats it as empty.
func LoadAdmins(path string) (*AdminsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api: admins file: %w", err)
	}
	var f AdminsFile
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("api: admins file %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("api: admins file %s: unknown key %s", path, und[0])
	}
	seen := map[string]bool{}
	for i, a := range f.Admins {
		switch {
		case !tokenName.MatchString(a.Name):
			return nil, fmt.Errorf("api: admins file %s: admin[%d].name %q: want letters, digits and . _ @ -", path, i, a.Name)
		case seen[a.Name]:
			return nil, fmt.Errorf("api: admins file %s: admin %q appears twice", path, a.Name)
		}
		if err := checkArgon2id(a.PasswordHash); err != nil {
			return nil, fmt.Errorf("api: admins file %s: admin %q: password_hash: %w", path, a.Name, err)
		}
		seen[a.Name] = true
	}
	return &f, nil
}

// checkArgon2id accepts only an argon2id PHC string that auth can
// verify: console accounts are new, so there are no legacy bcrypt
// hashes to carry over.
func checkArgon2id(hash string) error {
	if !strings.HasPrefix(hash, "$argon2id$") {
		return errors.New("not an argon2id hash ($argon2id$v=19$m=...,t=...,p=...$salt$hash)")
	}
	if _, err := auth.VerifyPassword(hash, ""); err != nil {
		return err
	}
	return nil
}

// LoadAdminsOrEmpty is LoadAdmins with a missing file read as empty.
func LoadAdminsOrEmpty(path string) (*AdminsFile, error) {
	f, err := LoadAdmins(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &AdminsFile{}, nil
	}
	return f, err
}

// Add adds an admin account with the given password, hashed here.
func (f *AdminsFile) Add(name, password string, now time.Time) error {
	if !tokenName.MatchString(name) {
		return fmt.Errorf("api: admin name %q: want 1-64 letters, digits and . _ @ -, starting with a letter or digit", name)
	}
	if f.find(name) >= 0 {
		return fmt.Errorf("api: admin %q exists (use passwd to change the password)", name)
	}
	hash, err := hashAdminPassword(password)
	if err != nil {
		return err
	}
	f.Admins = append(f.Admins, Admin{Name: name, PasswordHash: hash, Created: now.UTC().Truncate(time.Second)})
	return nil
}

// SetPassword replaces an admin's password.
func (f *AdminsFile) SetPassword(name, password string) error {
	i := f.find(name)
	if i < 0 {
		return fmt.Errorf("api: no admin %q", name)
	}
	hash, err := hashAdminPassword(password)
	if err != nil {
		return err
	}
	f.Admins[i].PasswordHash = hash
	return nil
}

// Delete removes the admin called name.
func (f *AdminsFile) Delete(name string) error {
	i := f.find(name)
	if i < 0 {
		return fmt.Errorf("api: no admin %q", name)
	}
	f.Admins = slices.Delete(f.Admins, i, i+1)
	return nil
}

// Find returns the admin called name, or nil.
func (f *AdminsFile) Find(name string) *Admin {
	if i := f.find(name); i >= 0 {
		a := f.Admins[i]
		return &a
	}
	return nil
}

func (f *AdminsFile) find(name string) int {
	return slices.IndexFunc(f.Admins, func(a Admin) bool { return a.Name == name })
}

// maxPassword bounds a password: argon2id takes any length, but a
// megabyte "password" is only a way to make the server hash a megabyte.
const maxPassword = 1024

func hashAdminPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("api: empty password")
	}
	if len(password) > maxPassword {
		return "", fmt.Errorf("api: password longer than %d bytes", maxPassword)
	}
	return auth.HashPassword(password)
}

// Save writes the file atomically, mode 0600: the hashes can be
// attacked offline, so nobody else may read them.
func (f *AdminsFile) Save(path string) error {
	var buf bytes.Buffer
	buf.WriteString("# cloudftpd console accounts: edit with \"cloudftpd admin add|passwd|del|list\".\n# password_hash: argon2id PHC strings; admin accounts have the admin scope.\n\n")
	if err := toml.NewEncoder(&buf).Encode(f); err != nil {
		return fmt.Errorf("api: admins file: %w", err)
	}
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("api: admins file: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in path's directory,
// mode 0600, synced and renamed over path: a crash never leaves half a
// file, and a running server never reads one.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// watched is a file the server re-reads when its size or modification
// time changes, so that the command line's edits take effect at the next
// request without a reload. It is safe for concurrent use.
type watched[T any] struct {
	path string
	load func(path string) (T, error)

	mu    sync.Mutex
	val   T
	ok    bool
	stamp fileStamp
	err   error
}

type fileStamp struct {
	size    int64
	modTime time.Time
	exists  bool
}

func (w *watched[T]) current() (T, error) {
	var st fileStamp
	if fi, err := os.Stat(w.path); err == nil {
		st = fileStamp{size: fi.Size(), modTime: fi.ModTime(), exists: true}
	} else if !errors.Is(err, fs.ErrNotExist) {
		var zero T
		return zero, fmt.Errorf("api: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ok && st == w.stamp {
		return w.val, w.err
	}
	w.stamp, w.ok = st, true
	w.val, w.err = w.load(w.path)
	return w.val, w.err
}

// Admins is the server's view of an admins file (see watched).
type Admins struct{ w watched[*AdminsFile] }

// NewAdmins returns the accounts of the admins file at path, which need
// not exist (nobody can log in to the console then).
func NewAdmins(path string) *Admins {
	return &Admins{w: watched[*AdminsFile]{path: path, load: LoadAdminsOrEmpty}}
}

// Path is the admins file.
func (a *Admins) Path() string { return a.w.path }

// Lookup returns the admin called name, or nil; an error means the file
// cannot be read and nobody may log in until it is fixed.
func (a *Admins) Lookup(name string) (*Admin, error) {
	f, err := a.w.current()
	if err != nil {
		return nil, err
	}
	return f.Find(name), nil
}
