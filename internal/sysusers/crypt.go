package sysusers

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/md5crypt"
	"github.com/go-crypt/crypt/algorithm/shacrypt"
	"github.com/openwall/yescrypt-go"
	"golang.org/x/crypto/bcrypt"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// The crypt(3) formats of a shadow file that this package verifies, by
// their prefix. Verification is pure Go, so no cgo and no libcrypt:
//   - $y$ yescrypt (Debian 11+, Ubuntu 22.04+, Fedora 35+ default):
//     github.com/openwall/yescrypt-go, Openwall's own Go implementation;
//   - $6$ SHA-512-crypt and $5$ SHA-256-crypt (older defaults, RHEL 8):
//     github.com/go-crypt/crypt (the Authelia project's library);
//   - $2a$/$2b$/$2y$ bcrypt (some BSD-derived setups):
//     golang.org/x/crypto/bcrypt, as the users file;
//   - $1$ MD5-crypt only when allowed (Options.AllowMD5Crypt): it is
//     too cheap to brute-force, so its accounts are refused by default.
//
// Anything else (DES crypt, $gy$ gost-yescrypt, $7$ scrypt, $md5$ SunMD5)
// is refused, and the account is logged as not able to log in.

// kind is a hash's format: its crypt(3) prefix without the dollars.
func kind(hash string) string {
	if !strings.HasPrefix(hash, "$") {
		return ""
	}
	k, _, ok := strings.Cut(hash[1:], "$")
	if !ok {
		return ""
	}
	return k
}

// errUnsupported is the error of a hash whose format is not verified.
var errUnsupported = errors.New("unsupported hash format (cloudftpd verifies $y$ yescrypt, $6$ SHA-512-crypt, $5$ SHA-256-crypt and bcrypt; $1$ MD5-crypt with allow_md5crypt)")

// checkHash reports whether hash is one this package can verify, without
// the expensive part, so a shadow file's unusable entries are logged when
// it is read rather than at each login.
func checkHash(hash string, allowMD5 bool) error {
	switch kind(hash) {
	case "y":
		// yescrypt-go decodes the setting when hashing; a cheap check
		// here is that the hash has its four fields.
		if strings.Count(hash, "$") != 4 {
			return errors.New("malformed yescrypt hash")
		}
		return nil
	case "5", "6":
		if _, err := shacrypt.Decode(hash); err != nil {
			return fmt.Errorf("malformed SHA-crypt hash: %w", err)
		}
		return nil
	case "2a", "2b", "2y":
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return fmt.Errorf("malformed bcrypt hash: %w", err)
		}
		return nil
	case "1":
		if !allowMD5 {
			return errors.New("MD5-crypt ($1$) is refused as too weak (allow it with [auth.system] allow_md5crypt = true, or set a new password with passwd)")
		}
		if _, err := md5crypt.Decode(hash); err != nil {
			return fmt.Errorf("malformed MD5-crypt hash: %w", err)
		}
		return nil
	default:
		return errUnsupported
	}
}

// verifier returns the auth.VerifyFunc of the shadow file's hashes.
func verifier(allowMD5 bool) auth.VerifyFunc {
	return func(hash, password string) (bool, error) {
		if err := checkHash(hash, allowMD5); err != nil {
			return false, err
		}
		switch kind(hash) {
		case "y":
			got, err := yescrypt.Hash([]byte(password), []byte(hash))
			if err != nil {
				return false, fmt.Errorf("yescrypt: %w", err)
			}
			return subtle.ConstantTimeCompare(got, []byte(hash)) == 1, nil
		case "5", "6":
			d, err := shacrypt.Decode(hash)
			return match(d, err, password)
		case "1":
			d, err := md5crypt.Decode(hash)
			return match(d, err, password)
		default: // bcrypt: checkHash let nothing else through
			err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
			if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
				return false, nil
			}
			return err == nil, err
		}
	}
}

// match compares password with a decoded digest in constant time (the
// library's MatchAdvanced does).
func match(d algorithm.Digest, err error, password string) (bool, error) {
	if err != nil {
		return false, err
	}
	return d.MatchAdvanced(password)
}

// dummyOf returns a hash of a random password with the format and cost
// of hash, for the logins refused without checking a password (unknown
// names, locked accounts): verifying against it costs what verifying a
// real account's hash costs, so such names cannot be told apart by
// timing.
func dummyOf(hash string) (string, error) {
	pw := rand.Text()
	switch kind(hash) {
	case "y":
		// The setting (parameters and salt) of hash, with another
		// password: the same cost.
		h, err := yescrypt.Hash([]byte(pw), []byte(hash))
		return string(h), err
	case "5", "6":
		d, err := shacrypt.Decode(hash)
		if err != nil {
			return "", err
		}
		rounds, _ := shaRounds(hash)
		h, err := shacrypt.New(shacrypt.WithVariantName(kind(hash)), shacrypt.WithIterations(rounds))
		if err != nil {
			return "", err
		}
		dd, err := h.HashWithSalt(pw, d.(*shacrypt.Digest).Salt())
		if err != nil {
			return "", err
		}
		return dd.Encode(), nil
	case "2a", "2b", "2y":
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return "", err
		}
		h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
		return string(h), err
	case "1":
		h, err := md5crypt.New()
		if err != nil {
			return "", err
		}
		d, err := h.Hash(pw)
		if err != nil {
			return "", err
		}
		return d.Encode(), nil
	}
	return "", errUnsupported
}

// shaRounds is the rounds= of a SHA-crypt hash, 5000 when omitted (the
// crypt(3) default).
func shaRounds(hash string) (int, bool) {
	parts := strings.Split(hash, "$")
	if len(parts) > 2 && strings.HasPrefix(parts[2], "rounds=") {
		var n int
		if _, err := fmt.Sscanf(parts[2], "rounds=%d", &n); err == nil {
			return n, true
		}
	}
	return shacrypt.IterationsDefaultOmitted, false
}

// costKey names the format and cost of hash (not its salt), to pick the
// most common one among the accounts for the dummy hash.
func costKey(hash string) string {
	parts := strings.Split(hash, "$")
	switch kind(hash) {
	case "y":
		if len(parts) > 2 {
			return parts[1] + "$" + parts[2]
		}
	case "2a", "2b", "2y":
		// One algorithm under three names: the cost is what counts.
		if len(parts) > 2 {
			return "2$" + parts[2]
		}
	case "5", "6":
		r, _ := shaRounds(hash)
		return fmt.Sprintf("%s$%d", parts[1], r)
	}
	return kind(hash)
}
