package auth

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// cheapHash hashes with tiny argon2id parameters so tests stay fast; the
// parameters are read back from the string, exercising that path too.
func cheapHash(t testing.TB, password string) string {
	t.Helper()
	h, err := hashArgon2id(password, 64, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func bcryptHash(t testing.TB, password, prefix string) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// $2a$, $2b$ and $2y$ name the same algorithm for passwords under 72
	// bytes; tools differ only in the prefix they write.
	return prefix + strings.TrimPrefix(string(b), "$2a$")
}

func TestHashPasswordFormat(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q: unexpected prefix", h)
	}
	p, err := parseArgon2id(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.salt) != 16 || len(p.key) != 32 {
		t.Errorf("salt %d bytes, key %d bytes; want 16 and 32", len(p.salt), len(p.key))
	}
	h2, _ := HashPassword("s3cret")
	if h == h2 {
		t.Error("two hashes of the same password are equal: salt is not random")
	}
	if p, err := parseArgon2id(dummyHash); err != nil || p.memory != argonMemory || p.time != argonTime || p.threads != argonThreads {
		t.Errorf("dummyHash must use HashPassword's parameters: %+v, %v", p, err)
	}
}

func TestVerifyPassword(t *testing.T) {
	full, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		hash     string
		password string
		want     bool
	}{
		{"argon2id default params", full, "correct horse", true},
		{"argon2id wrong password", full, "correct horsf", false},
		{"argon2id other params", cheapHash(t, "pw"), "pw", true},
		{"argon2id other params wrong", cheapHash(t, "pw"), "PW", false},
		{"argon2id empty password", cheapHash(t, ""), "", true},
		{"bcrypt 2a", bcryptHash(t, "legacy", "$2a$"), "legacy", true},
		{"bcrypt 2b", bcryptHash(t, "legacy", "$2b$"), "legacy", true},
		{"bcrypt 2y", bcryptHash(t, "legacy", "$2y$"), "legacy", true},
		{"bcrypt wrong password", bcryptHash(t, "legacy", "$2b$"), "legacz", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyPassword(tt.hash, tt.password)
			if err != nil {
				t.Fatalf("VerifyPassword: %v", err)
			}
			if got != tt.want {
				t.Errorf("VerifyPassword = %v, want %v", got, tt.want)
			}
			if err := checkHash(tt.hash); err != nil {
				t.Errorf("checkHash: %v", err)
			}
		})
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	good := cheapHash(t, "pw")
	parts := strings.Split(good, "$") // "", argon2id, v=19, params, salt, key
	join := func(p ...string) string { return strings.Join(p, "$") }
	tests := []struct {
		name, hash, wantErr string
	}{
		{"empty", "", "unsupported"},
		{"plain text", "hunter2", "unsupported"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5], "unsupported"},
		{"too few fields", join("", "argon2id", "v=19", parts[3], parts[4]), "want $argon2id$"},
		{"bad version", join("", "argon2id", "v=16", parts[3], parts[4], parts[5]), "version"},
		{"missing p", join("", "argon2id", "v=19", "m=64,t=1", parts[4], parts[5]), "required"},
		{"unknown param", join("", "argon2id", "v=19", "m=64,t=1,p=1,x=2", parts[4], parts[5]), "unknown parameter"},
		{"non-numeric", join("", "argon2id", "v=19", "m=lots,t=1,p=1", parts[4], parts[5]), "parameter"},
		{"zero time", join("", "argon2id", "v=19", "m=64,t=0,p=1", parts[4], parts[5]), "t=0"},
		{"huge memory", join("", "argon2id", "v=19", "m=4000000000,t=1,p=1", parts[4], parts[5]), "m="},
		{"zero threads", join("", "argon2id", "v=19", "m=64,t=1,p=0", parts[4], parts[5]), "p=0"},
		{"bad salt", join("", "argon2id", "v=19", parts[3], "!!!", parts[5]), "salt"},
		{"short key", join("", "argon2id", "v=19", parts[3], parts[4], "AAAA"), "key"},
		{"bcrypt truncated", bcryptHash(t, "x", "$2b$")[:20], "bcrypt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPassword(tt.hash, "pw")
			if err == nil || ok {
				t.Fatalf("VerifyPassword(%q) = %v, %v; want an error", tt.hash, ok, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
			if checkHash(tt.hash) == nil {
				t.Errorf("checkHash(%q) accepted a malformed hash", tt.hash)
			}
		})
	}
}
