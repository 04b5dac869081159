package config

import (
	"strings"
	"testing"
	"time"
)

func TestAuthStore(t *testing.T) {
	for _, tc := range []struct {
		name, auth, wantErr string
		anonymous           Policy
	}{
		{"default is the file", "[auth]\nusers_file = \"u.toml\"\n", "", PolicyOff},
		{"file named", "[auth]\nstore = \"file\"\nusers_file = \"u.toml\"\n", "", PolicyOff},
		{"postgres", "[auth]\nstore = \"postgres\"\n[auth.postgres]\ndsn = \"postgres://db/ftp\"\n", "", PolicyOff},
		{"postgres with anonymous", "[auth]\nstore = \"postgres\"\nanonymous = true\n[auth.postgres]\ndsn = \"postgres://db/ftp\"\n", "", PolicyOptional},
		{"postgres without dsn", "[auth]\nstore = \"postgres\"\n", "auth.postgres.dsn: required", ""},
		{"postgres and a users file", "[auth]\nstore = \"postgres\"\nusers_file = \"u.toml\"\n[auth.postgres]\ndsn = \"x\"\n", "auth.users_file: not used", ""},
		{"unknown store", "[auth]\nstore = \"ldap\"\n", "auth.store: \"ldap\" is not a user store", ""},
		{"negative poll", "[auth]\nstore = \"postgres\"\n[auth.postgres]\ndsn = \"x\"\npoll_interval = \"-1s\"\n", "must not be negative", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(withoutAuth + tc.auth))
			if err == nil {
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Auth.AnonymousPolicy(); got != tc.anonymous {
				t.Errorf("anonymous policy %q, want %q", got, tc.anonymous)
			}
		})
	}
	c, err := Parse([]byte(withoutAuth + "[auth]\nstore = \"postgres\"\n[auth.postgres]\ndsn = \"x\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Auth.Postgres; p.PollEvery() != 5*time.Second || p.QueryTimeout() != 5*time.Second {
		t.Errorf("defaults: poll %v timeout %v", p.PollEvery(), p.QueryTimeout())
	}
}
