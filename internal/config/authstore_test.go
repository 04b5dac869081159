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
		{"system", "[auth]\nstore = \"system\"\n", "", PolicyOff},
		{"system with anonymous", "[auth]\nstore = \"system\"\nanonymous = true\n[auth.system]\nusers = [\"alice\"]\n", "", PolicyOptional},
		{"system and a users file", "[auth]\nstore = \"system\"\nusers_file = \"u.toml\"\n", "auth.users_file: not used", ""},
		{"system home", "[auth]\nstore = \"system\"\n[auth.system]\nhome = \"/home\"\n", "auth.system.home: \"/home\"", ""},
		{"system min_uid", "[auth]\nstore = \"system\"\n[auth.system]\nmin_uid = -1\n", "auth.system.min_uid", ""},
		{"system userlist_deny alone", "[auth]\nstore = \"system\"\n[auth.system]\nuserlist_deny = false\n", "needs userlist_file", ""},
		{"system no permissions", "[auth]\nstore = \"system\"\n[auth.system]\npermissions = []\n", "auth.system.permissions", ""},
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

func TestSystemStoreDefaults(t *testing.T) {
	c, err := Parse([]byte(withoutAuth + "[auth]\nstore = \"system\"\n"))
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	s := c.Auth.System
	passwd, shadow, group := s.Files()
	if passwd != "/etc/passwd" || shadow != "/etc/shadow" || group != "/etc/group" || s.FTPUsers() != "/etc/ftpusers" ||
		s.LowestUID() != 1000 || !s.DenyUserlist() || s.Home != HomePasswd || len(s.Permissions) != 1 || s.Permissions[0] != "all" {
		t.Errorf("defaults: %+v", s)
	}
	c, err = Parse([]byte(withoutAuth + "[auth]\nstore = \"system\"\n[auth.system]\nftpusers_file = \"\"\nmin_uid = 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Auth.System; s.FTPUsers() != "" || s.LowestUID() != 0 {
		t.Errorf("ftpusers_file = \"\" and min_uid = 0 give %q and %d", s.FTPUsers(), s.LowestUID())
	}
}
