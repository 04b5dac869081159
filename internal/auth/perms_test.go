package auth

import (
	"slices"
	"strings"
	"testing"
)

func TestParsePermissions(t *testing.T) {
	tests := []struct {
		in      []string
		want    Permissions
		strings []string
		wantErr string
	}{
		{in: []string{"all"}, want: permAll, strings: []string{"all"}},
		{in: []string{"read"}, want: PermList | PermDownload, strings: []string{"read"}},
		{in: []string{"dropbox"}, want: PermUpload, strings: []string{"dropbox"}},
		{in: []string{"upload"}, want: PermUpload, strings: []string{"dropbox"}},
		{in: []string{"list", "download"}, want: permRead, strings: []string{"read"}},
		{in: []string{"read", "upload"}, want: PermList | PermDownload | PermUpload, strings: []string{"list", "download", "upload"}},
		{in: []string{"mkdir", "list", "mkdir"}, want: PermList | PermMkdir, strings: []string{"list", "mkdir"}},
		{
			in:      []string{"list", "download", "upload", "overwrite", "delete", "rename", "mkdir", "chmod"},
			want:    permAll,
			strings: []string{"all"},
		},
		{in: []string{"read", "overwrite"}, want: PermList | PermDownload | PermOverwrite, strings: []string{"list", "download", "overwrite"}},
		{in: []string{"chmod"}, want: PermChmod, strings: []string{"chmod"}},
		{in: nil, want: 0, strings: []string{}},
		{in: []string{"fly"}, wantErr: `"fly" is not a permission`},
		{in: []string{"read", "Write"}, wantErr: `"Write" is not a permission`},
		{in: []string{"All"}, wantErr: `"All"`},
		{in: []string{""}, wantErr: `"" is not a permission`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, ","), func(t *testing.T) {
			got, err := ParsePermissions(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePermissions(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParsePermissions(%q) = %b, want %b", tt.in, got, tt.want)
			}
			if s := got.Strings(); !slices.Equal(s, tt.strings) {
				t.Errorf("Strings() = %q, want %q", s, tt.strings)
			}
			back, err := ParsePermissions(got.Strings())
			if err != nil || back != got {
				t.Errorf("Strings() does not round-trip: %b, %v", back, err)
			}
		})
	}
}

func TestPermissionsHas(t *testing.T) {
	p := PermList | PermDownload
	tests := []struct {
		q    Permissions
		want bool
	}{
		{PermList, true},
		{PermList | PermDownload, true},
		{PermUpload, false},
		{PermList | PermUpload, false},
		{0, true},
	}
	for _, tt := range tests {
		if got := p.Has(tt.q); got != tt.want {
			t.Errorf("%v.Has(%v) = %v, want %v", p, tt.q, got, tt.want)
		}
	}
	if d := permDropbox; d.Has(PermList) || d.Has(PermDownload) || d.Has(PermOverwrite) || !d.Has(PermUpload) {
		t.Errorf("dropbox = %v: must upload but not list, download or overwrite", d)
	}
}
