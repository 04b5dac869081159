package auth

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestLoginRefusal(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nets := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range s {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		limits Limits
		client string
		want   string // "" = admitted
	}{
		{"no limits", Limits{}, "198.51.100.9", ""},
		{"disabled", Limits{Disabled: true}, "198.51.100.9", "alice is disabled"},
		{"disabled wins over networks", Limits{Disabled: true, AllowedNetworks: nets("198.51.100.0/24")}, "198.51.100.9", "alice is disabled"},
		{"expired at the instant", Limits{Expires: now}, "198.51.100.9", "alice expired at 2026-03-01T12:00:00Z"},
		{"expired before", Limits{Expires: now.Add(-time.Hour)}, "198.51.100.9", "alice expired at"},
		{"expires later", Limits{Expires: now.Add(time.Second)}, "198.51.100.9", ""},
		{"inside allowed", Limits{AllowedNetworks: nets("203.0.113.0/24", "198.51.100.0/24")}, "198.51.100.9", ""},
		{"outside allowed", Limits{AllowedNetworks: nets("203.0.113.0/24")}, "198.51.100.9", "client 198.51.100.9 is not in alice's allowed_networks"},
		{"IPv4-mapped counts as IPv4", Limits{AllowedNetworks: nets("198.51.100.0/24")}, "::ffff:198.51.100.9", ""},
		{"IPv6 outside an IPv4 list", Limits{AllowedNetworks: nets("198.51.100.0/24")}, "2001:db8::1", "client 2001:db8::1 is not in alice's allowed_networks"},
		{"IPv6 inside", Limits{AllowedNetworks: nets("2001:db8::/48")}, "2001:db8::1", ""},
		{"denied", Limits{DeniedNetworks: nets("198.51.100.0/25")}, "198.51.100.9", "client 198.51.100.9 is in alice's denied_networks (198.51.100.0/25)"},
		{"denied inside allowed", Limits{AllowedNetworks: nets("198.51.100.0/24"), DeniedNetworks: nets("198.51.100.8/29")}, "198.51.100.9", "is in alice's denied_networks (198.51.100.8/29)"},
		{"allowed outside denied", Limits{AllowedNetworks: nets("198.51.100.0/24"), DeniedNetworks: nets("198.51.100.8/29")}, "198.51.100.20", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.limits.LoginRefusal("alice", netip.MustParseAddr(tc.client), now)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("LoginRefusal = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNameRefusal(t *testing.T) {
	l := Limits{Dirs: []DirRule{
		{Dir: "/", DeniedPatterns: []string{"*.exe", "*.bat"}},
		{Dir: "/incoming", AllowedPatterns: []string{"*.csv", "*.txt"}},
		{Dir: "/incoming/raw", DeniedPatterns: []string{"*.tmp"}},
		{Dir: "/archive", Retention: time.Hour}, // no patterns: does not hide "/"
	}}
	for _, tc := range []struct {
		path, want string // want "" = allowed
	}{
		{"/setup.exe", "*.exe files are refused"},
		{"/SETUP.EXE", "*.exe files are refused"},
		{"/a/b/run.bat", "*.bat files are refused"},
		{"/notes.doc", ""},
		{"/archive/x.exe", "*.exe files are refused"},
		{"/archive/x.doc", ""},
		{"/incoming/data.csv", ""},
		{"/incoming/DATA.CSV", ""},
		{"/incoming/data.xls", "only *.csv, *.txt files are accepted in /incoming"},
		// The user-wide deny stays in force where only allowed is set.
		{"/incoming/x.exe", "*.exe files are refused"},
		{"/incoming/sub/deep.csv", ""},
		{"/incoming/sub/deep.xls", "only *.csv, *.txt files are accepted in /incoming"},
		// /incoming/raw replaces the denied list, and inherits allowed.
		{"/incoming/raw/x.tmp", "*.tmp files are refused in /incoming/raw"},
		{"/incoming/raw/x.exe", "only *.csv, *.txt files are accepted in /incoming"},
		{"/incoming/raw/x.csv", ""},
		// A sibling whose name starts alike is not inside.
		{"/incoming2/data.xls", ""},
		// The rule's directory itself is named in its parent.
		{"/incoming", ""},
	} {
		got := l.NameRefusal(tc.path)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("NameRefusal(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	if got := (&Limits{}).NameRefusal("/x.exe"); got != "" {
		t.Errorf("no rules: %q", got)
	}
}

func TestSetLimits(t *testing.T) {
	f := &UsersFile{}
	hash, err := HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Add("alice", hash, "", PermList); err != nil {
		t.Fatal(err)
	}
	if err := f.SetLimits("alice", func(e *LimitsEntry) {
		e.AllowedNetworks = []string{"203.0.113.0/24"}
		e.MaxSessions = 2
	}); err != nil {
		t.Fatal(err)
	}
	// A bad edit changes nothing.
	err = f.SetLimits("alice", func(e *LimitsEntry) {
		e.AllowedNetworks[0] = "nowhere"
		e.MaxSessions = 5
	})
	if err == nil || !strings.Contains(err.Error(), `allowed_networks: "nowhere" is not a network`) {
		t.Fatalf("bad edit: %v", err)
	}
	got := f.Users()[0].LimitsEntry
	if got.MaxSessions != 2 || len(got.AllowedNetworks) != 1 || got.AllowedNetworks[0] != "203.0.113.0/24" {
		t.Errorf("after a refused edit: %+v", got)
	}
	if err := f.SetLimits("bob", func(*LimitsEntry) {}); err == nil {
		t.Error("SetLimits of an unknown user succeeded")
	}
}
