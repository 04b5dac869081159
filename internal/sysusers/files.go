package sysusers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// passwdEntry is one line of passwd(5): name:password:uid:gid:gecos:home:shell.
type passwdEntry struct {
	name     string
	password string // "x" when the hash is in the shadow file
	uid, gid int
	home     string
}

// shadowEntry is one line of shadow(5):
// name:hash:lastchg:min:max:warn:inactive:expire:reserved. The day counts
// are days since 1970-01-01; -1 stands for an empty field.
type shadowEntry struct {
	hash                           string
	lastChange, max, inact, expire int
}

// refusal is why pam_unix's account check (pam_acct_mgmt, which vsftpd
// calls after the password) would refuse the entry on day today, or "".
// A password that must be changed is refused too: FTP cannot change it.
func (e shadowEntry) refusal(today int) string {
	age := today - e.lastChange
	switch {
	case e.expire > 0 && today >= e.expire:
		return "account expired (shadow expire date)"
	case e.lastChange == 0:
		return "password must be changed first (shadow last change is 0)"
	case e.lastChange < 0 || e.max < 0:
		return ""
	case e.inact >= 0 && age > e.max+e.inact:
		return "account inactive (password expired longer than the shadow inactive days)"
	case age > e.max:
		return "password expired (older than the shadow maximum age)"
	}
	return ""
}

// readLines calls fn with the fields of each line of path split at ':',
// skipping empty lines and # comments, and names the file and line in
// the errors fn returns.
func readLines(path string, fn func(f []string) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(strings.Split(line, ":")); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}

// readPasswd reads a passwd file in order. A line that is not seven
// fields, or a NIS "+"/"-" line, is skipped: nsswitch compat entries are
// not accounts of this file.
func readPasswd(path string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readLines(path, func(f []string) error {
		if len(f) != 7 || f[0] == "" || strings.HasPrefix(f[0], "+") || strings.HasPrefix(f[0], "-") {
			return nil
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("user %q: uid or gid is not a number", f[0])
		}
		out = append(out, passwdEntry{name: f[0], password: f[1], uid: uid, gid: gid, home: f[5]})
		return nil
	})
	return out, err
}

// readShadow reads a shadow file by name; the first line of a name wins,
// as getspnam's.
func readShadow(path string) (map[string]shadowEntry, error) {
	out := map[string]shadowEntry{}
	err := readLines(path, func(f []string) error {
		if len(f) < 2 || f[0] == "" {
			return nil
		}
		if _, dup := out[f[0]]; dup {
			return nil
		}
		for len(f) < 9 {
			f = append(f, "")
		}
		day := func(i int) (int, error) {
			if f[i] == "" {
				return -1, nil
			}
			n, err := strconv.Atoi(f[i])
			if err != nil {
				return 0, fmt.Errorf("user %q: field %d is not a number of days", f[0], i+1)
			}
			return n, nil
		}
		var e shadowEntry
		e.hash = f[1]
		var err error
		for _, p := range []struct {
			i int
			v *int
		}{{2, &e.lastChange}, {4, &e.max}, {6, &e.inact}, {7, &e.expire}} {
			if *p.v, err = day(p.i); err != nil {
				return err
			}
		}
		out[f[0]] = e
		return nil
	})
	return out, err
}

// readGroups reads a group file: the members of each group by name,
// with each group's gid, so primary groups count too.
func readGroups(path string) (members map[string][]string, gids map[string]int, err error) {
	members, gids = map[string][]string{}, map[string]int{}
	err = readLines(path, func(f []string) error {
		if len(f) != 4 || f[0] == "" {
			return nil
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return fmt.Errorf("group %q: gid is not a number", f[0])
		}
		gids[f[0]] = gid
		if f[3] != "" {
			members[f[0]] = append(members[f[0]], strings.Split(f[3], ",")...)
		}
		return nil
	})
	return members, gids, err
}

// readNames reads a list of user names, one a line, with # comments and
// surrounding blanks ignored, as ftpusers(5) and vsftpd's userlist_file.
// A missing file is an empty list when optional.
func readNames(path string, optional bool) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if optional && errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" {
			out[line] = true
		}
	}
	return out, nil
}
