package config

import (
	"strconv"
	"strings"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		lo, hi  uint16
		wantErr string
	}{
		{in: "65000-65535", lo: 65000, hi: 65535},
		{in: "1-65535", lo: 1, hi: 65535},
		{in: "2121", lo: 2121, hi: 2121},
		{in: "50000-50000", lo: 50000, hi: 50000},
		{in: " 50000 - 50010 ", lo: 50000, hi: 50010},
		{in: "900-800", wantErr: "min 900 > max 800"},
		{in: "65535-1", wantErr: "min 65535 > max 1"},
		{in: "0-10", wantErr: "port 0"},
		{in: "10-0", wantErr: "port 0"},
		{in: "0", wantErr: "port 0"},
		{in: "abc", wantErr: "min-max"},
		{in: "", wantErr: "min-max"},
		{in: "-", wantErr: "min-max"},
		{in: "-10", wantErr: "min-max"},
		{in: "10-", wantErr: "min-max"},
		{in: "10-20-30", wantErr: "min-max"},
		{in: "10..20", wantErr: "min-max"},
		{in: "10:20", wantErr: "min-max"},
		{in: "+10-20", wantErr: "min-max"},
		{in: "1-65536", wantErr: "min-max"},
		{in: "70000", wantErr: "min-max"},
		{in: "0x10-0x20", wantErr: "min-max"},
		{in: "１-２", wantErr: "min-max"}, // full-width digits
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			lo, hi, err := ParsePortRange(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParsePortRange(%q) = %d-%d, want an error containing %q", tc.in, lo, hi, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePortRange(%q): %q does not contain %q", tc.in, err, tc.wantErr)
				}
				if lo != 0 || hi != 0 {
					t.Fatalf("ParsePortRange(%q) returned %d-%d with its error", tc.in, lo, hi)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePortRange(%q): %v", tc.in, err)
			}
			if lo != tc.lo || hi != tc.hi {
				t.Fatalf("ParsePortRange(%q) = %d-%d, want %d-%d", tc.in, lo, hi, tc.lo, tc.hi)
			}
		})
	}
}

// FuzzPortRange: ParsePortRange never panics, and whatever it accepts is a
// usable range that it also accepts when written back canonically.
func FuzzPortRange(f *testing.F) {
	for _, s := range []string{
		"65000-65535", "1-65535", "2121", "900-800", "0-10", "0", "abc", "",
		"-", "-1", "1-", "10-20-30", " 1 - 2 ", "65536", "1-65536",
		"99999999999999999999-1", "\t5\n-\t6 ", "1--2", "１-２", "\x00-\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := ParsePortRange(s)
		if err != nil {
			if lo != 0 || hi != 0 {
				t.Fatalf("ParsePortRange(%q) = %d-%d with error %v", s, lo, hi, err)
			}
			return
		}
		if lo == 0 {
			t.Fatalf("ParsePortRange(%q) accepted port 0 (%d-%d)", s, lo, hi)
		}
		if lo > hi {
			t.Fatalf("ParsePortRange(%q) = %d-%d, reversed", s, lo, hi)
		}
		canon := strconv.Itoa(int(lo)) + "-" + strconv.Itoa(int(hi))
		lo2, hi2, err := ParsePortRange(canon)
		if err != nil || lo2 != lo || hi2 != hi {
			t.Fatalf("ParsePortRange(%q) = %d-%d, but its canonical form %q gives %d-%d, %v", s, lo, hi, canon, lo2, hi2, err)
		}
	})
}
