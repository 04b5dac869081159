package ftp

import (
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// factSet is the set of MLST/MLSD facts a client asked for (RFC 3659 7.8).
type factSet uint8

const (
	factType factSet = 1 << iota
	factSize
	factModify
	factPerm
	factUnique
)

var factNames = []struct {
	bit  factSet
	name string
}{
	{factType, "type"},
	{factSize, "size"},
	{factModify, "modify"},
	{factPerm, "perm"},
	{factUnique, "unique"},
}

const (
	allFacts     = factType | factSize | factModify | factPerm | factUnique
	defaultFacts = allFacts
)

// parseFacts reads "type;size;modify;" as sent with OPTS MLST; unknown
// facts are ignored as the RFC asks.
func parseFacts(s string) factSet {
	var fs factSet
	for _, f := range strings.Split(s, ";") {
		for _, n := range factNames {
			if strings.EqualFold(strings.TrimSpace(f), n.name) {
				fs |= n.bit
			}
		}
	}
	return fs
}

// String lists the enabled facts as "type;size;".
func (fs factSet) String() string {
	var b strings.Builder
	for _, n := range factNames {
		if fs&n.bit != 0 {
			b.WriteString(n.name)
			b.WriteByte(';')
		}
	}
	return b.String()
}

// feat lists every supported fact without marks.
func (fs factSet) feat() string { return fs.String() }

// featMarked lists every supported fact, with "*" after enabled ones, as
// the FEAT reply wants.
func (fs factSet) featMarked() string {
	var b strings.Builder
	for _, n := range factNames {
		b.WriteString(n.name)
		if fs&n.bit != 0 {
			b.WriteByte('*')
		}
		b.WriteByte(';')
	}
	return b.String()
}

// dateCache remembers the last time it formatted. The entries of a
// directory often share their modification second (files written by one
// batch job), and formatting a time costs more than the rest of a line.
type dateCache struct {
	sec    int64
	layout string
	text   []byte
}

// append appends t, truncated to the second, in layout.
func (c *dateCache) append(b []byte, t time.Time, layout string) []byte {
	sec := t.Unix()
	if c.text == nil || sec != c.sec || layout != c.layout {
		c.sec, c.layout = sec, layout
		c.text = t.UTC().AppendFormat(c.text[:0], layout)
	}
	return append(b, c.text...)
}

// appendMLSx appends one MLSx entry: "fact=value;... name" (no CRLF).
func appendMLSx(b []byte, fi storage.FileInfo, name string, facts factSet, perms auth.Permissions, dates *dateCache) []byte {
	if facts&factType != 0 {
		if fi.IsDir() {
			b = append(b, "type=dir;"...)
		} else if fi.Mode.IsRegular() {
			b = append(b, "type=file;"...)
		} else {
			b = append(b, "type=OS.unix=symlink;"...)
		}
	}
	if facts&factSize != 0 && !fi.IsDir() {
		b = append(b, "size="...)
		b = strconv.AppendInt(b, fi.Size, 10)
		b = append(b, ';')
	}
	if facts&factModify != 0 && !fi.ModTime.IsZero() {
		b = append(b, "modify="...)
		b = dates.append(b, fi.ModTime, mdtmLayout)
		b = append(b, ';')
	}
	if facts&factPerm != 0 {
		b = append(b, "perm="...)
		b = appendPermFact(b, fi.IsDir(), perms)
		b = append(b, ';')
	}
	if facts&factUnique != 0 && fi.ID != "" {
		b = append(b, "unique="...)
		b = append(b, fi.ID...)
		b = append(b, ';')
	}
	b = append(b, ' ')
	return append(b, name...)
}

// appendPermFact renders the RFC 3659 "perm" fact from the user's rights.
func appendPermFact(b []byte, dir bool, p auth.Permissions) []byte {
	if dir {
		if p.Has(auth.PermUpload) {
			b = append(b, 'c')
		}
		if p.Has(auth.PermDelete) {
			b = append(b, 'd')
		}
		b = append(b, 'e')
		if p.Has(auth.PermRename) {
			b = append(b, 'f')
		}
		if p.Has(auth.PermList) {
			b = append(b, 'l')
		}
		if p.Has(auth.PermMkdir) {
			b = append(b, 'm')
		}
		return b
	}
	if p.Has(auth.PermOverwrite) {
		b = append(b, 'a')
	}
	if p.Has(auth.PermDelete) {
		b = append(b, 'd')
	}
	if p.Has(auth.PermRename) {
		b = append(b, 'f')
	}
	if p.Has(auth.PermDownload) {
		b = append(b, 'r')
	}
	if p.Has(auth.PermOverwrite) {
		b = append(b, 'w')
	}
	return b
}

// appendLS appends one "ls -l" line as most FTP clients parse it:
// "drwxr-xr-x    1 ftp      ftp          4096 Jan 02 15:04 name".
// Dates older than six months, or in the future, show the year instead of
// the time, like ls.
func appendLS(b []byte, fi storage.FileInfo, now time.Time, dates *dateCache) []byte {
	b = appendModeString(b, fi.Mode)
	b = append(b, "    1 ftp      ftp      "...)
	var sizeBuf [20]byte // on the stack: no allocation per listed entry
	size := strconv.AppendInt(sizeBuf[:0], fi.Size, 10)
	for i := len(size); i < 8; i++ {
		b = append(b, ' ')
	}
	b = append(b, size...)
	b = append(b, ' ')
	mod := fi.ModTime
	if mod.IsZero() {
		// No time known (S3 directories): "now" reads better than
		// "Jan 01 0001" and parses in every client; MLSx leaves the
		// fact out instead.
		mod = now
	}
	if age := now.Sub(mod); age < 0 || age > 182*24*time.Hour {
		b = dates.append(b, mod, "Jan 02  2006")
	} else {
		b = dates.append(b, mod, "Jan 02 15:04")
	}
	b = append(b, ' ')
	return append(b, fi.Name...)
}

// appendModeString renders a mode the way ls does (io/fs uses other letters
// for special types).
func appendModeString(b []byte, m fs.FileMode) []byte {
	switch {
	case m.IsDir():
		b = append(b, 'd')
	case m&fs.ModeSymlink != 0:
		b = append(b, 'l')
	case m&fs.ModeNamedPipe != 0:
		b = append(b, 'p')
	case m&fs.ModeSocket != 0:
		b = append(b, 's')
	case m&fs.ModeDevice != 0:
		b = append(b, 'b')
	default:
		b = append(b, '-')
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	return b
}

// listFormat selects the line format of a directory listing.
type listFormat uint8

const (
	formatLS listFormat = iota
	formatNames
	formatMLSD
)

// openListing opens the directory p for listing, before any reply is
// sent, so that a directory that cannot be read gets its error reply
// rather than an empty listing. For a file it returns a nil iterator and
// gives fi the file's name. It replies on failure.
func (s *Session) openListing(p string, fi *storage.FileInfo) (storage.DirIterator, bool) {
	if !fi.IsDir() {
		fi.Name = path.Base(p)
		return nil, true
	}
	it, err := s.fs.ReadDir(s.ctx, p)
	if err != nil {
		s.replyStorageErr("list", p, err)
		return nil, false
	}
	return it, true
}

// writeListing streams the entries of it (or, when it is nil, the single
// file fi) to sink in the given format, one line each without its line
// end. It never holds the whole directory in memory. sink may append to
// the line it is given (there is room for a CR LF). The caller closes it.
func (s *Session) writeListing(sink func(line []byte) error, p string, it storage.DirIterator, fi storage.FileInfo, format listFormat) error {
	now := time.Now()
	line := make([]byte, 0, 256)
	var dates dateCache
	emit := func(e storage.FileInfo) error {
		line = line[:0]
		switch format {
		case formatLS:
			line = appendLS(line, e, now, &dates)
		case formatNames:
			line = append(line, e.Name...)
		case formatMLSD:
			perms := s.user.Perms
			if len(s.user.Limits.Folders) > 0 {
				// A folder in the listing, or the listing of one.
				if it == nil {
					perms = s.permsAt(p)
				} else {
					perms = s.permsAt(path.Join(p, e.Name))
					if e.IsDir() && s.fixed(path.Join(p, e.Name)) {
						perms &^= auth.PermDelete | auth.PermRename
					}
				}
			}
			line = appendMLSx(line, e, e.Name, s.mlstFacts, perms, &dates)
		}
		return sink(line)
	}
	if it == nil {
		return emit(fi)
	}
	for {
		e, err := it.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := emit(e); err != nil {
			return err
		}
	}
}

// listingTarget parses the argument of LIST/NLST: options such as "-la"
// are accepted and ignored, as most servers do, since clients send them
// by habit.
func listingTarget(arg string) string {
	for {
		arg = strings.TrimLeft(arg, " ")
		if !strings.HasPrefix(arg, "-") {
			return arg
		}
		opt, rest, _ := strings.Cut(arg, " ")
		if strings.ContainsAny(opt[1:], "/.") {
			return arg // a file name that starts with "-"
		}
		arg = rest
	}
}
