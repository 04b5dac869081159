package bytesize

import (
	"testing"

	"github.com/BurntSushi/toml"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "16MiB", want: 16 << 20},
		{in: "5 MB", want: 5e6},
		{in: "1GiB", want: 1 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "10B", want: 10},
		{in: "-1", bad: true},
		{in: "lots", bad: true},
		{in: "1.5GiB", bad: true},
		{in: "99999999999TiB", bad: true},
	} {
		got, err := Parse(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("Parse(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestRoundTripTOML(t *testing.T) {
	var doc struct {
		A, B, C Size
	}
	if _, err := toml.Decode("A = \"16MiB\"\nB = 1000\nC = \"1536KiB\"\n", &doc); err != nil {
		t.Fatal(err)
	}
	if doc.A != 16<<20 || doc.B != 1000 || doc.C != 1536<<10 {
		t.Fatalf("decoded %+v", doc)
	}
	for _, tc := range []struct {
		v    Size
		want string
	}{{16 << 20, "16MiB"}, {1000, "1000"}, {1536 << 10, "1536KiB"}, {0, "0"}, {3 << 30, "3GiB"}} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q, want %q", tc.v, got, tc.want)
		}
		back, err := Parse(tc.v.String())
		if err != nil || back != tc.v {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.v.String(), back, err, tc.v)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{10 << 30, "10 GiB"},
		{10<<30 - 1, "9.9 GiB"},
		{98 * (1 << 30) / 10, "9.7 GiB"}, // 9.8 GiB less a rounding crumb
		{120 << 20, "120 MiB"},
		{150<<20 + 1, "150 MiB"},
		{3 << 40, "3 TiB"},
		{-2048, "-2 KiB"},
	} {
		if got := Human(tc.in); got != tc.want {
			t.Errorf("Human(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
