// Package bytesize reads and writes sizes as people write them in config
// files: "16MiB", "5MB", "1GiB", "512" (bytes).
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Size is a number of bytes. In TOML it is a string with a unit ("16MiB")
// or a plain integer of bytes; it is written back with the largest binary
// unit that divides it.
type Size int64

var units = []struct {
	suffix string
	mult   int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}

// Parse reads "16MiB", "5 MB", "1GiB" or "4096".
func Parse(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. \"16MiB\")", s)
	}
	if n > 0 && mult > 1 && n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return Size(n * mult), nil
}

// String writes the size with the largest binary unit that divides it.
func (b Size) String() string {
	for _, u := range units[:4] {
		if b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Size) UnmarshalText(text []byte) error {
	v, err := Parse(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (b Size) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalTOML lets TOML files write a size as a plain integer of bytes
// as well as a string with a unit.
func (b *Size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return fmt.Errorf("%d is not a size: must not be negative", v)
		}
		*b = Size(v)
		return nil
	case string:
		return b.UnmarshalText([]byte(v))
	}
	return fmt.Errorf("%v is not a size (e.g. \"16MiB\")", v)
}

// Human writes n for people to read, in the largest binary unit it
// reaches, with one decimal below 100 of that unit: "512 B", "9.8 GiB",
// "120 MiB". The decimal is rounded down, so a figure just under a limit
// never reads as the limit itself ("9.9 GiB", not "10.0 GiB").
func Human(n int64) string {
	if n < 1024 && n > -1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	unit := int64(1)
	suffix := "B"
	for _, u := range units[:4] {
		if n >= u.mult {
			unit, suffix = u.mult, u.suffix
			break
		}
	}
	whole := n / unit
	var s string
	if whole >= 100 || n%unit == 0 {
		s = strconv.FormatInt(whole, 10)
	} else {
		tenths := (n % unit) * 10 / unit
		s = strconv.FormatInt(whole, 10) + "." + strconv.FormatInt(tenths, 10)
	}
	if neg {
		s = "-" + s
	}
	return s + " " + suffix
}

// UnmarshalJSON accepts a plain number of bytes as well as a string with
// a unit, as UnmarshalTOML does: a JSON document written by hand (a
// limits column edited in SQL) may use either.
func (b *Size) UnmarshalJSON(data []byte) error {
	s := strings.TrimSpace(string(data))
	if s == "null" {
		return nil
	}
	if unq, err := strconv.Unquote(s); err == nil {
		return b.UnmarshalText([]byte(unq))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%s is not a size (e.g. 1048576 or \"16MiB\")", s)
	}
	*b = Size(n)
	return nil
}
