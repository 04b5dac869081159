package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Scope is what a token may do.
type Scope string

// Scopes.
const (
	// ScopeRead may read (GET): status, sessions, transfers, bans, users.
	ScopeRead Scope = "read"
	// ScopeAdmin may also change things: end sessions, ban, reload.
	ScopeAdmin Scope = "admin"
)

// ParseScope reads a scope as the command line takes it.
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeRead, ScopeAdmin:
		return Scope(s), nil
	}
	return "", fmt.Errorf("api: scope %q: want read or admin", s)
}

// tokenPrefix starts every token, so that secret scanners and people
// can tell one in a log or a repository.
const tokenPrefix = "cftpd_"

// Token is one API token as the tokens file keeps it: its name, scope
// and the SHA-256 of the secret, never the secret.
//
// SHA-256 and not argon2id: a token is 32 random bytes (256 bits), not a
// password a person chose, so there is no dictionary to try and a slow
// hash would protect nothing; it would only make every API request cost
// an argon2id run, which is an easy way to exhaust the server's CPU.
// Inverting SHA-256 of a 256-bit secret is out of reach.
type Token struct {
	Name    string    `toml:"name"`
	Scope   Scope     `toml:"scope"`
	SHA256  string    `toml:"sha256"`
	Created time.Time `toml:"created"`
}

// TokensFile is the tokens file in memory.
type TokensFile struct {
	Tokens []Token `toml:"token"`
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// LoadTokens reads a tokens file. A missing file is an error wrapping
// fs.ErrNotExist; LoadTokensOrEmpty treats it as empty.
func LoadTokens(path string) (*TokensFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api: tokens file: %w", err)
	}
	var f TokensFile
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("api: tokens file %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("api: tokens file %s: unknown key %s", path, und[0])
	}
	seen := map[string]bool{}
	for i, t := range f.Tokens {
		switch {
		case !tokenName.MatchString(t.Name):
			return nil, fmt.Errorf("api: tokens file %s: token[%d].name %q: want letters, digits and . _ @ -", path, i, t.Name)
		case seen[t.Name]:
			return nil, fmt.Errorf("api: tokens file %s: token %q appears twice", path, t.Name)
		case t.Scope != ScopeRead && t.Scope != ScopeAdmin:
			return nil, fmt.Errorf("api: tokens file %s: token %q: scope %q (want read or admin)", path, t.Name, t.Scope)
		}
		if h, err := hex.DecodeString(t.SHA256); err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("api: tokens file %s: token %q: sha256 is not 64 hex digits", path, t.Name)
		}
		seen[t.Name] = true
	}
	return &f, nil
}

// LoadTokensOrEmpty is LoadTokens with a missing file read as empty.
func LoadTokensOrEmpty(path string) (*TokensFile, error) {
	f, err := LoadTokens(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &TokensFile{}, nil
	}
	return f, err
}

// Add makes a token and returns its secret, which is shown once and
// kept nowhere.
func (f *TokensFile) Add(name string, scope Scope, now time.Time) (string, error) {
	if !tokenName.MatchString(name) {
		return "", fmt.Errorf("api: token name %q: want 1-64 letters, digits and . _ @ -, starting with a letter or digit", name)
	}
	if _, err := ParseScope(string(scope)); err != nil {
		return "", err
	}
	if f.find(name) >= 0 {
		return "", fmt.Errorf("api: token %q exists (delete it first)", name)
	}
	var raw [32]byte
	rand.Read(raw[:]) // never fails (crypto/rand)
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	f.Tokens = append(f.Tokens, Token{Name: name, Scope: scope, SHA256: hashToken(secret), Created: now.UTC().Truncate(time.Second)})
	return secret, nil
}

// Delete removes the token called name.
func (f *TokensFile) Delete(name string) error {
	i := f.find(name)
	if i < 0 {
		return fmt.Errorf("api: no token %q", name)
	}
	f.Tokens = slices.Delete(f.Tokens, i, i+1)
	return nil
}

func (f *TokensFile) find(name string) int {
	return slices.IndexFunc(f.Tokens, func(t Token) bool { return t.Name == name })
}

// Lookup returns the token whose secret is secret. Every stored hash is
// compared, in constant time, so the time taken says nothing about which
// hash came close.
func (f *TokensFile) Lookup(secret string) (Token, bool) {
	if !strings.HasPrefix(secret, tokenPrefix) {
		return Token{}, false
	}
	h := []byte(hashToken(secret))
	found := -1
	for i, t := range f.Tokens {
		if subtle.ConstantTimeCompare(h, []byte(t.SHA256)) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Token{}, false
	}
	return f.Tokens[found], true
}

// Save writes the file atomically (a temporary file renamed over it),
// mode 0600: the hashes are not secrets, but nobody else needs them.
func (f *TokensFile) Save(path string) error {
	var buf bytes.Buffer
	buf.WriteString("# cloudftpd API tokens: edit with \"cloudftpd api token add|list|del\".\n# Only SHA-256 hashes are kept; a token is shown once, when it is made.\n\n")
	if err := toml.NewEncoder(&buf).Encode(f); err != nil {
		return fmt.Errorf("api: tokens file: %w", err)
	}
	if err := writeFileAtomic(path, buf.Bytes()); err != nil {
		return fmt.Errorf("api: tokens file: %w", err)
	}
	return nil
}

func hashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Keyring is the server's view of a tokens file: it re-reads the file
// when its size or modification time changes, so `cloudftpd api token
// add|del` takes effect at the next request without a reload. It is
// safe for concurrent use.
type Keyring struct{ w watched[*TokensFile] }

// NewKeyring returns the keyring of the tokens file at path, which need
// not exist yet (no token is then accepted).
func NewKeyring(path string) *Keyring {
	return &Keyring{w: watched[*TokensFile]{path: path, load: LoadTokensOrEmpty}}
}

// Path is the tokens file.
func (k *Keyring) Path() string { return k.w.path }

// Lookup finds the token of secret in the current file. An error means
// the file cannot be read: no token is accepted until it is fixed.
func (k *Keyring) Lookup(secret string) (Token, bool, error) {
	f, err := k.w.current()
	if err != nil {
		return Token{}, false, err
	}
	t, ok := f.Lookup(secret)
	return t, ok, nil
}
