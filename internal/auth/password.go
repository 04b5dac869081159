package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// argon2id parameters for new hashes: the OWASP minimum for argon2id
// (19 MiB, 2 passes, 1 lane). Verification reads the parameters from each
// hash, so raising these later does not break existing users.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on parameters read from a stored hash. A users file is trusted, but
// a typo such as m=19456000 would make every login allocate 19 GiB; reject
// it when the file is loaded instead of at the first login.
const (
	maxArgonMemory = 1 << 21 // KiB = 2 GiB
	maxArgonTime   = 64
	minSaltLen     = 8
	minKeyLen      = 16
	maxKeyLen      = 1024
)

var b64 = base64.RawStdEncoding

// HashPassword returns an argon2id hash of password in the PHC string
// format, `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>`, with a fresh random
// salt. The format is the one other tools (libsodium, argon2 CLI, passlib)
// produce, so hashes can move between systems.
func HashPassword(password string) (string, error) {
	return hashArgon2id(password, argonMemory, argonTime, argonThreads)
}

// hashArgon2id is HashPassword with explicit parameters; tests use cheap ones.
func hashArgon2id(password string, memory, time uint32, threads uint8) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: reading random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, time, memory, threads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, memory, time, threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches hash. It accepts argon2id
// PHC strings (any m, t, p) and bcrypt hashes ($2a$, $2b$, $2y$), so
// operators can bring hashes from an existing server. A hash it cannot parse
// is an error, distinct from a mismatch.
func VerifyPassword(hash, password string) (bool, error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		h, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		key := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
		return subtle.ConstantTimeCompare(key, h.key) == 1, nil
	case isBcrypt(hash):
		// bcrypt compares in constant time itself.
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, nil
		default:
			return false, fmt.Errorf("auth: malformed bcrypt hash: %w", err)
		}
	default:
		return false, errors.New("auth: unsupported password hash (want $argon2id$ or bcrypt $2a$/$2b$/$2y$)")
	}
}

// checkHash validates a stored hash without doing the expensive part, so a
// users file with a broken hash fails at load time, naming the user.
func checkHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		_, err := parseArgon2id(hash)
		return err
	case isBcrypt(hash):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("auth: malformed bcrypt hash: %w", err)
		}
		return nil
	case hash == "":
		return errors.New("auth: empty password hash")
	default:
		return errors.New("auth: unsupported password hash (want $argon2id$ or bcrypt $2a$/$2b$/$2y$)")
	}
}

func isBcrypt(hash string) bool {
	return strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")
}

type argon2idHash struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// parseArgon2id parses `$argon2id$v=19$m=M,t=T,p=P$salt$key`.
func parseArgon2id(s string) (*argon2idHash, error) {
	bad := func(why string) error { return fmt.Errorf("auth: malformed argon2id hash: %s", why) }
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, bad("want $argon2id$v=19$m=M,t=T,p=P$salt$key")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, bad(fmt.Sprintf("version %q (want v=%d)", parts[2], argon2.Version))
	}
	h := &argon2idHash{}
	var seen [3]bool
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, bad(fmt.Sprintf("parameter %q", kv))
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, bad(fmt.Sprintf("parameter %q", kv))
		}
		switch k {
		case "m":
			h.memory, seen[0] = uint32(n), true
		case "t":
			h.time, seen[1] = uint32(n), true
		case "p":
			if n == 0 || n > 255 {
				return nil, bad(fmt.Sprintf("p=%d out of range 1-255", n))
			}
			h.threads, seen[2] = uint8(n), true
		default:
			return nil, bad(fmt.Sprintf("unknown parameter %q", k))
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return nil, bad("m, t and p are all required")
	}
	switch {
	case h.time < 1 || h.time > maxArgonTime:
		return nil, bad(fmt.Sprintf("t=%d out of range 1-%d", h.time, maxArgonTime))
	case h.memory < 8*uint32(h.threads) || h.memory > maxArgonMemory:
		return nil, bad(fmt.Sprintf("m=%d out of range %d-%d", h.memory, 8*uint32(h.threads), maxArgonMemory))
	}
	var err error
	// PHC strings omit padding; tolerate it from tools that add it.
	if h.salt, err = b64.DecodeString(strings.TrimRight(parts[4], "=")); err != nil || len(h.salt) < minSaltLen {
		return nil, bad("salt is not base64 of at least 8 bytes")
	}
	if h.key, err = b64.DecodeString(strings.TrimRight(parts[5], "=")); err != nil || len(h.key) < minKeyLen || len(h.key) > maxKeyLen {
		return nil, bad("key is not base64 of 16-1024 bytes")
	}
	return h, nil
}
