// Package vsftpdconf reads vsftpd.conf(5) files the way vsftpd does, so
// that cloudftpd can import them: one option=value per line, comments only
// where a line starts with '#', no spaces around '=', booleans YES/NO
// (TRUE/FALSE, 1/0, any case), numbers in decimal or, with a leading 0,
// octal. Where vsftpd refuses to start (an unknown option, a bad boolean),
// the parser reports the file and line instead.
package vsftpdconf

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Type is the kind of value an option takes.
type Type int

// Option types, as vsftpd.conf(5) groups them.
const (
	Bool Type = iota
	Num
	Str
)

func (t Type) String() string {
	switch t {
	case Bool:
		return "boolean"
	case Num:
		return "number"
	}
	return "string"
}

type spec struct {
	typ Type
	def string // vsftpd's default, as it would be written
}

// Known reports whether name is a vsftpd option, and its type.
func Known(name string) (Type, bool) {
	s, ok := directives[name]
	return s.typ, ok
}

// Names lists every option the parser knows, sorted.
func Names() []string {
	out := make([]string, 0, len(directives))
	for n := range directives {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Setting is one option=value line.
type Setting struct {
	Name, Value string
	File        string
	Line        int
	// Bool and Num are the parsed value of a boolean or numeric option.
	Bool bool
	Num  uint64
}

// Pos is "file:line".
func (s Setting) Pos() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Error is a line vsftpd would not accept.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// File is a parsed config file. A later line for the same option replaces
// an earlier one, as in vsftpd.
type File struct {
	Name     string    // as given to Parse, for messages
	Settings []Setting // every accepted line, in file order
	// Errors are the lines vsftpd would refuse: unknown options, values
	// of the wrong type, lines without '='.
	Errors []*Error
	last   map[string]int
}

// Parse reads a vsftpd.conf. It never fails as a whole: each line vsftpd
// would refuse is an Error, and the rest is read.
func Parse(name string, data []byte) *File {
	f := &File{Name: name, last: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		// vsftpd skips empty lines, lines of only spaces, and lines that
		// start with '#'; a '#' later in a line is part of the value.
		if strings.TrimSpace(line) == "" || line[0] == '#' {
			continue
		}
		bad := func(format string, args ...any) {
			f.Errors = append(f.Errors, &Error{File: name, Line: n, Msg: fmt.Sprintf(format, args...)})
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			bad("%q: not option=value", line)
			continue
		}
		sp, known := directives[key]
		if !known {
			if t := strings.TrimSpace(key); t != key {
				if _, ok := directives[t]; ok {
					bad("%q: no spaces around '=' (vsftpd reads the option as %q)", line, key)
					continue
				}
			}
			bad("unknown option %q (vsftpd refuses to start: \"unrecognised variable in config file\")", key)
			continue
		}
		s := Setting{Name: key, Value: val, File: name, Line: n}
		switch sp.typ {
		case Bool:
			b, err := parseBool(val)
			if err != nil {
				bad("%s=%s: %v", key, val, err)
				continue
			}
			s.Bool = b
		case Num:
			v, err := parseNum(val)
			if err != nil {
				bad("%s=%s: %v", key, val, err)
				continue
			}
			s.Num = v
		}
		f.last[key] = len(f.Settings)
		f.Settings = append(f.Settings, s)
	}
	if err := sc.Err(); err != nil {
		f.Errors = append(f.Errors, &Error{File: name, Line: n + 1, Msg: err.Error()})
	}
	return f
}

func parseBool(v string) (bool, error) {
	switch strings.ToUpper(v) {
	case "YES", "TRUE", "1":
		return true, nil
	case "NO", "FALSE", "0":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean (YES or NO; vsftpd refuses to start: \"bad bool value in config file\")")
}

// parseNum reads a number as vsftpd does: octal with a leading 0
// (local_umask=022), decimal otherwise. vsftpd itself reads garbage as 0;
// an importer should say so instead.
func parseNum(v string) (uint64, error) {
	base := 10
	if len(v) > 1 && v[0] == '0' {
		base = 8
	}
	n, err := strconv.ParseUint(v, base, 32)
	if err != nil {
		if base == 8 {
			return 0, fmt.Errorf("not an octal number (a leading 0 means octal, as in local_umask=022)")
		}
		return 0, fmt.Errorf("not a number (vsftpd would silently read it as 0)")
	}
	return n, nil
}

// Lookup returns the option's setting, when the file sets it.
func (f *File) Lookup(name string) (Setting, bool) {
	i, ok := f.last[name]
	if !ok {
		return Setting{}, false
	}
	return f.Settings[i], true
}

// Set reports whether the file sets the option.
func (f *File) Set(name string) bool { _, ok := f.last[name]; return ok }

// Bool is a boolean option's value, or vsftpd's default.
func (f *File) Bool(name string) bool {
	if s, ok := f.Lookup(name); ok {
		return s.Bool
	}
	b, _ := parseBool(mustSpec(name, Bool).def)
	return b
}

// Num is a numeric option's value, or vsftpd's default.
func (f *File) Num(name string) uint64 {
	if s, ok := f.Lookup(name); ok {
		return s.Num
	}
	n, _ := parseNum(mustSpec(name, Num).def)
	return n
}

// Str is a string option's value, or vsftpd's default ("" for none).
func (f *File) Str(name string) string {
	if s, ok := f.Lookup(name); ok {
		return s.Value
	}
	return mustSpec(name, Str).def
}

// Default is vsftpd's default of an option, as it would be written.
func Default(name string) string { return directives[name].def }

// mustSpec guards against a typo in the caller: asking for an option that
// does not exist, or with the wrong type, is a programming error.
func mustSpec(name string, t Type) spec {
	sp, ok := directives[name]
	if !ok || sp.typ != t {
		panic(fmt.Sprintf("vsftpdconf: %q is not a %s option", name, t))
	}
	return sp
}

// Latest lists the settings that count (the last of each option), in file
// order.
func (f *File) Latest() []Setting {
	var out []Setting
	for i, s := range f.Settings {
		if f.last[s.Name] == i {
			out = append(out, s)
		}
	}
	return out
}

// Patterns splits a deny_file, hide_file, upload_file or download_file
// value into its patterns: vsftpd writes several as "{*.mp3,*.mov}", one
// as "*.mp3". Each may hold * and ? wildcards.
func Patterns(v string) []string {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
		v = v[1 : len(v)-1]
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
