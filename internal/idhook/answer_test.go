package idhook

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

func testHook(t *testing.T, root string) *Hook {
	t.Helper()
	h, err := New(Options{URL: "http://127.0.0.1:1/hook", Timeout: time.Second, DefaultPermissions: auth.PermList | auth.PermDownload, HomeDirectoryRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestParseAnswer: answers in both styles become the user they describe;
// empty answers refuse; anything unclear is an error naming the key, never
// a user with guessed settings.
func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, root, body string
		check            func(t *testing.T, u *auth.User)
		err              string // "" = accepted; "refused" = ErrBadCredentials
	}{
		{name: "empty body", body: "", err: "refused"},
		{name: "null", body: "null", err: "refused"},
		{name: "empty object", body: " {} ", err: "refused"},
		{name: "only nulls", body: `{"home": null}`, err: "refused"},
		{name: "not an object", body: `["alice"]`, err: "not a JSON object"},
		{name: "not JSON", body: `<html>`, err: "not a JSON object"},
		{name: "two objects", body: `{"home":"a"}{"home":"b"}`, err: "data after it"},
		{name: "own style", body: `{"home": "partners/acme", "permissions": ["read", "upload"], "tls": "required",
			"max_sessions": 2, "quota_bytes": "1GiB", "max_file_size": 1048576, "upload_rate": "1MiB",
			"allowed_networks": ["203.0.113.0/24"], "expires": "2030-01-02", "denied_patterns": ["*.exe"],
			"dir": [{"path": "/in", "retention": "30d", "allowed_patterns": ["*.csv"]}]}`,
			check: func(t *testing.T, u *auth.User) {
				l := u.Limits
				if u.Home != "partners/acme" || u.Perms != auth.PermList|auth.PermDownload|auth.PermUpload || u.TLS != "required" {
					t.Errorf("user %+v", u)
				}
				if l.MaxSessions != 2 || l.QuotaBytes != 1<<30 || l.MaxFileSize != 1<<20 || l.UploadRate != 1<<20 || len(l.AllowedNetworks) != 1 {
					t.Errorf("limits %+v", l)
				}
				if want := time.Date(2030, 1, 2, 0, 0, 0, 0, time.Local); !l.Expires.Equal(want) {
					t.Errorf("expires %v, want %v", l.Expires, want)
				}
				if len(l.Dirs) != 2 || l.Dirs[0].Dir != "/" || l.Dirs[1].Dir != "/in" || l.Dirs[1].Retention != 30*24*time.Hour || l.Dirs[1].AllowedPatterns[0] != "*.csv" {
					t.Errorf("dirs %+v", l.Dirs)
				}
			}},
		{name: "expires as RFC 3339", body: `{"expires": "2030-01-02T18:00:00Z"}`, check: func(t *testing.T, u *auth.User) {
			if !u.Limits.Expires.Equal(time.Date(2030, 1, 2, 18, 0, 0, 0, time.UTC)) {
				t.Errorf("expires %v", u.Limits.Expires)
			}
		}},
		{name: "defaults", body: `{"binary_only": true}`, check: func(t *testing.T, u *auth.User) {
			if u.Home != "alice" || u.Perms != auth.PermList|auth.PermDownload || !u.BinaryOnly {
				t.Errorf("user %+v, want home alice and the default permissions", u)
			}
		}},
		{name: "misspelt key", body: `{"permisions": ["all"]}`, err: `unknown key "permisions"`},
		{name: "bad permission", body: `{"permissions": ["fly"]}`, err: "permissions:"},
		{name: "no permissions", body: `{"permissions": []}`, err: "permissions: empty"},
		{name: "bad tls", body: `{"tls": "sometimes"}`, err: "tls:"},
		{name: "bad size", body: `{"quota_bytes": "lots"}`, err: "quota_bytes"},
		{name: "wrong type", body: `{"max_sessions": "two"}`, err: "max_sessions"},
		{name: "bad network", body: `{"allowed_networks": ["nowhere"]}`, err: "allowed_networks"},
		{name: "negative", body: `{"max_sessions": -1}`, err: "max_sessions"},
		{name: "bad expires", body: `{"expires": "soon"}`, err: "expires"},
		{name: "absolute home", body: `{"home": "/etc"}`, err: "home:"},
		{name: "escaping home", body: `{"home": "a/../../etc"}`, err: "home:"},
		{name: "null in a list", body: `{"denied_patterns": [null]}`, err: "null in a list"},

		{name: "TF PATH", root: "/bucket", body: `{"Role": "arn:aws:iam::1:role/x", "Policy": "{}", "PosixProfile": {"Uid": 1, "Gid": 1}, "HomeDirectoryType": "PATH", "HomeDirectory": "/bucket/homes/alice"}`,
			check: func(t *testing.T, u *auth.User) {
				if u.Home != "homes/alice" || u.Perms != auth.PermList|auth.PermDownload {
					t.Errorf("user %+v, want home homes/alice", u)
				}
			}},
		{name: "TF path without type", root: "/", body: `{"HomeDirectory": "/bucket/homes/alice"}`, check: func(t *testing.T, u *auth.User) {
			if u.Home != "bucket/homes/alice" {
				t.Errorf("home %q", u.Home)
			}
		}},
		{name: "TF root itself", root: "/bucket/ftp", body: `{"HomeDirectory": "/bucket/ftp/"}`, check: func(t *testing.T, u *auth.User) {
			if u.Home != "." {
				t.Errorf("home %q, want the root", u.Home)
			}
		}},
		{name: "TF LOGICAL array", root: "/bucket", body: `{"Role": "r", "HomeDirectoryType": "LOGICAL", "HomeDirectoryDetails": [{"Entry": "/", "Target": "/bucket/homes/alice"}]}`,
			check: func(t *testing.T, u *auth.User) {
				if u.Home != "homes/alice" {
					t.Errorf("home %q", u.Home)
				}
			}},
		{name: "TF LOGICAL string", root: "/bucket", body: `{"HomeDirectoryType": "LOGICAL", "HomeDirectory": "/", "HomeDirectoryDetails": "[{\"Entry\": \"/\", \"Target\": \"/bucket/homes/bob\", \"Type\": \"DIRECTORY\"}]"}`,
			check: func(t *testing.T, u *auth.User) {
				if u.Home != "homes/bob" {
					t.Errorf("home %q", u.Home)
				}
			}},
		{name: "TF with own permissions", root: "/bucket", body: `{"HomeDirectory": "/bucket/in", "permissions": ["dropbox"]}`, check: func(t *testing.T, u *auth.User) {
			if u.Home != "in" || u.Perms.Has(auth.PermDownload) || !u.Perms.Has(auth.PermUpload) {
				t.Errorf("user %+v", u)
			}
		}},
		{name: "TF virtual folders", root: "/bucket", body: `{"HomeDirectoryType": "LOGICAL", "HomeDirectoryDetails": [{"Entry": "/in", "Target": "/bucket/a"}, {"Entry": "/out", "Target": "/bucket/b"}]}`,
			err: "virtual folders are not supported yet"},
		{name: "TF one non-root mapping", root: "/bucket", body: `{"HomeDirectoryType": "LOGICAL", "HomeDirectoryDetails": [{"Entry": "/in", "Target": "/bucket/a"}]}`,
			err: "virtual folders are not supported yet"},
		{name: "TF file mapping", root: "/bucket", body: `{"HomeDirectoryType": "LOGICAL", "HomeDirectoryDetails": [{"Entry": "/", "Target": "/bucket/a.txt", "Type": "FILE"}]}`,
			err: "virtual folders"},
		{name: "TF LOGICAL without details", root: "/bucket", body: `{"HomeDirectoryType": "LOGICAL", "HomeDirectory": "/bucket/a"}`, err: "needs HomeDirectoryDetails"},
		{name: "TF details with PATH", root: "/bucket", body: `{"HomeDirectory": "/bucket/a", "HomeDirectoryDetails": []}`, err: "set HomeDirectoryType LOGICAL"},
		{name: "TF outside the root", root: "/bucket", body: `{"HomeDirectory": "/other-bucket/alice"}`, err: "outside auth.http.home_directory_root"},
		{name: "TF sibling prefix", root: "/bucket", body: `{"HomeDirectory": "/bucket2/alice"}`, err: "outside"},
		{name: "TF dot-dot", root: "/bucket", body: `{"HomeDirectory": "/bucket/../etc"}`, err: `contains ".."`},
		{name: "TF relative", root: "/bucket", body: `{"HomeDirectory": "bucket/a"}`, err: "not an absolute path"},
		{name: "TF bad type", root: "/bucket", body: `{"HomeDirectoryType": "VIRTUAL", "HomeDirectory": "/bucket/a"}`, err: "want \"PATH\" or \"LOGICAL\""},
		{name: "TF bad details", root: "/bucket", body: `{"HomeDirectoryType": "LOGICAL", "HomeDirectoryDetails": "{oops"}`, err: "not a list"},
		{name: "both homes", root: "/bucket", body: `{"home": "a", "HomeDirectory": "/bucket/a"}`, err: "both home and HomeDirectory"},
		{name: "TF only a role", root: "/bucket", body: `{"Role": "arn:aws:iam::1:role/x"}`, check: func(t *testing.T, u *auth.User) {
			if u.Home != "alice" {
				t.Errorf("home %q", u.Home)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.root
			if root == "" {
				root = "/"
			}
			u, err := testHook(t, root).parseAnswer("alice", []byte(tc.body))
			switch {
			case tc.err == "refused":
				if !errors.Is(err, auth.ErrBadCredentials) {
					t.Fatalf("got %+v, %v; want a refusal", u, err)
				}
			case tc.err != "":
				if err == nil || errors.Is(err, auth.ErrBadCredentials) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %+v, %v; want an error with %q", u, err, tc.err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if u.Name != "alice" {
					t.Errorf("name %q", u.Name)
				}
				tc.check(t, u)
			}
		})
	}
}
