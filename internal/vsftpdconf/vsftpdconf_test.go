package vsftpdconf

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string // option -> value that counts
		errs     []string          // "line: part of the message"
	}{
		{"comments and blanks", "# c\n\n   \nlisten=YES\n", map[string]string{"listen": "YES"}, nil},
		{"hash inside a value", "ftpd_banner=Welcome # to us\n", map[string]string{"ftpd_banner": "Welcome # to us"}, nil},
		{"CRLF", "listen=YES\r\nlisten_port=2121\r\n", map[string]string{"listen": "YES", "listen_port": "2121"}, nil},
		{"later line wins", "listen_port=21\nlisten_port=990\n", map[string]string{"listen_port": "990"}, nil},
		{"booleans any case", "listen=true\nlisten_ipv6=No\nwrite_enable=1\n", map[string]string{"listen": "true", "listen_ipv6": "No", "write_enable": "1"}, nil},
		{"unknown option", "listen=YES\nlisen_port=21\n", map[string]string{"listen": "YES"}, []string{`2: unknown option "lisen_port"`}},
		{"spaces around =", "listen = YES\n", nil, []string{"1: " + `"listen = YES": no spaces around '='`}},
		{"bad boolean", "listen=YES \n", nil, []string{"1: listen=YES : not a boolean"}},
		{"bad number", "max_clients=lots\n", nil, []string{"1: max_clients=lots: not a number"}},
		{"bad octal", "local_umask=089\n", nil, []string{"1: local_umask=089: not an octal number"}},
		{"no =", "listen\n", nil, []string{`1: "listen": not option=value`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Parse("t.conf", []byte(tc.in))
			for k, v := range tc.want {
				s, ok := f.Lookup(k)
				if !ok || s.Value != v {
					t.Errorf("%s = %q (set %v), want %q", k, s.Value, ok, v)
				}
			}
			if len(f.Latest()) != len(tc.want) {
				t.Errorf("%d settings, want %d", len(f.Latest()), len(tc.want))
			}
			var got []string
			for _, e := range f.Errors {
				got = append(got, e.Error())
			}
			if len(got) != len(tc.errs) {
				t.Fatalf("errors %q, want %q", got, tc.errs)
			}
			for i, e := range tc.errs {
				if !strings.HasPrefix(got[i], "t.conf:"+e) {
					t.Errorf("error %q, want it to start with %q", got[i], "t.conf:"+e)
				}
			}
		})
	}
}

func TestValuesAndDefaults(t *testing.T) {
	f := Parse("t.conf", []byte("local_umask=022\nmax_clients=50\nlisten=YES\n"))
	if got := f.Num("local_umask"); got != 0o22 {
		t.Errorf("local_umask %o", got)
	}
	if f.Num("max_clients") != 50 || !f.Bool("listen") {
		t.Error("values")
	}
	// Defaults are vsftpd's when unset.
	if f.Num("listen_port") != 21 || !f.Bool("pasv_enable") || f.Num("anon_umask") != 0o77 || f.Str("xferlog_file") != "/var/log/xferlog" || f.Str("pasv_address") != "" {
		t.Error("defaults")
	}
	if s, _ := f.Lookup("max_clients"); s.Pos() != "t.conf:2" {
		t.Errorf("pos %q", s.Pos())
	}
}

func TestPatterns(t *testing.T) {
	for in, want := range map[string][]string{
		"{*.mp3,*.mov,.private}": {"*.mp3", "*.mov", ".private"},
		"*.exe":                  {"*.exe"},
		"":                       nil,
	} {
		if got := Patterns(in); !slices.Equal(got, want) {
			t.Errorf("Patterns(%q) = %q, want %q", in, got, want)
		}
	}
}
