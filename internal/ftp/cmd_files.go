package ftp

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// mdtmLayout is the RFC 3659 time-val without fractions, always UTC.
const mdtmLayout = "20060102150405"

// path resolves arg against the working directory, replying 553 and
// returning ok=false for a name no file system can hold.
func (s *Session) path(arg string) (string, bool) {
	p, ok := resolvePath(s.cwd, arg)
	if !ok {
		s.reply(553, "File name not allowed.")
	}
	return p, ok
}

// permsAt is what the user may do at the virtual path p: a virtual
// folder's own permissions inside it, the user's elsewhere.
func (s *Session) permsAt(p string) auth.Permissions {
	if len(s.user.Limits.Folders) == 0 {
		return s.user.Perms
	}
	return s.user.PermsAt(p)
}

// allowed checks a permission at the virtual path p, replying 550 when
// it is missing.
func (s *Session) allowed(p string, perm auth.Permissions, what string) bool {
	if s.permsAt(p).Has(perm) {
		return true
	}
	if f := s.user.Limits.FolderAt(p); f != nil {
		s.reply(550, "Permission denied: you may not "+what+" in "+f.Path+".")
		return false
	}
	s.reply(550, "Permission denied: you may not "+what+".")
	return false
}

// capsAt is what the storage holding p can do (a virtual folder may be on
// another backend than the home).
func (s *Session) capsAt(p string) storage.Capabilities {
	if m, ok := s.fs.(interface {
		CapabilitiesAt(string) storage.Capabilities
	}); ok {
		return m.CapabilitiesAt(p)
	}
	return s.fs.Capabilities()
}

func (s *Session) cmdPWD(string) {
	s.reply(257, quotePath(s.cwd)+" is the current directory.")
}

func (s *Session) cmdCWD(arg string) {
	p, ok := s.path(arg)
	if !ok {
		return
	}
	fi, err := s.fs.Stat(s.ctx, p)
	if err != nil {
		s.replyStorageErr("cwd", p, err)
		return
	}
	if !fi.IsDir() {
		s.reply(550, "Not a directory.")
		return
	}
	s.cwd = p
	s.reply(250, "Directory changed to "+quotePath(p)+".")
}

func (s *Session) cmdCDUP(string) { s.cmdCWD("..") }

func (s *Session) cmdMKD(arg string) {
	p, ok := s.path(arg)
	if !ok || !s.allowed(p, auth.PermMkdir, "create directories") || !s.nameAllowed(p) {
		return
	}
	if err := s.fs.Mkdir(s.ctx, p); err != nil {
		s.replyStorageErr("mkdir", p, err)
		return
	}
	s.log.Info("mkdir", "user", s.user.Name, "path", p)
	s.record(events.Event{Type: events.Mkdir, Path: p, Result: events.ResultOK})
	s.reply(257, quotePath(p)+" created.")
}

func (s *Session) cmdRMD(arg string) {
	p, ok := s.path(arg)
	if !ok || !s.allowed(p, auth.PermDelete, "remove directories") {
		return
	}
	if p == "/" {
		s.reply(550, "Cannot remove the home directory.")
		return
	}
	if err := s.fs.RemoveDir(s.ctx, p); err != nil {
		s.replyStorageErr("rmdir", p, err)
		return
	}
	if s.cwd == p || strings.HasPrefix(s.cwd, p+"/") {
		s.cwd = path.Dir(p)
	}
	s.log.Info("rmdir", "user", s.user.Name, "path", p)
	s.record(events.Event{Type: events.Rmdir, Path: p, Result: events.ResultOK})
	s.reply(250, "Directory removed.")
}

func (s *Session) cmdDELE(arg string) {
	p, ok := s.path(arg)
	if !ok || !s.allowed(p, auth.PermDelete, "delete files") {
		return
	}
	qr, ok := s.startQuotaRemoval(p)
	if !ok {
		return
	}
	if err := s.fs.Remove(s.ctx, p); err != nil {
		s.replyStorageErr("delete", p, err)
		return
	}
	qr.done()
	s.log.Info("delete", "user", s.user.Name, "path", p)
	s.record(events.Event{Type: events.Delete, Path: p, Result: events.ResultOK})
	s.reply(250, "File deleted.")
}

func (s *Session) cmdRNFR(arg string) {
	p, ok := s.path(arg)
	if !ok || !s.allowed(p, auth.PermRename, "rename") {
		return
	}
	if p == "/" {
		s.reply(550, "Cannot rename the home directory.")
		return
	}
	if s.fixed(p) {
		s.replyStorageErr("rename", p, storage.ErrMountPoint)
		return
	}
	fi, err := s.fs.Stat(s.ctx, p)
	if err != nil {
		s.replyStorageErr("rename", p, err)
		return
	}
	if fi.IsDir() && !s.capsAt(p).RenameDir {
		s.reply(550, "Renaming directories is not supported by this server's storage; move the files one by one.")
		return
	}
	s.renameFrom = p
	s.reply(350, "Ready for RNTO.")
}

func (s *Session) cmdRNTO(arg string) {
	from := s.renameFrom
	s.renameFrom = ""
	if from == "" {
		s.reply(503, "Send RNFR first.")
		return
	}
	to, ok := s.path(arg)
	if !ok {
		return
	}
	if to == "/" || strings.HasPrefix(to, from+"/") {
		s.reply(553, "Cannot move a directory into itself.")
		return
	}
	if !s.nameAllowed(to) {
		return
	}
	if !s.permsAt(to).Has(auth.PermOverwrite) {
		if _, err := s.fs.Stat(s.ctx, to); err == nil {
			s.reply(550, "Permission denied: the target exists and you may not overwrite files.")
			return
		}
	}
	var qr quotaRemoval // a file renamed onto is replaced: its size is freed
	if to != from {
		if qr, ok = s.startQuotaRemoval(to); !ok {
			return
		}
	}
	if err := s.fs.Rename(s.ctx, from, to); err != nil {
		s.replyStorageErr("rename", from, err)
		return
	}
	qr.done()
	s.log.Info("rename", "user", s.user.Name, "from", from, "to", to)
	s.record(events.Event{Type: events.Rename, Path: to, OldPath: from, Result: events.ResultOK})
	s.reply(250, "Rename successful.")
}

// statFile returns the info of a regular file, replying on failure.
func (s *Session) statFile(p string) (storage.FileInfo, bool) {
	fi, err := s.fs.Stat(s.ctx, p)
	if err != nil {
		s.replyStorageErr("stat", p, err)
		return fi, false
	}
	if fi.IsDir() {
		s.reply(550, "Not a regular file.")
		return fi, false
	}
	return fi, true
}

func (s *Session) cmdSIZE(arg string) {
	p, ok := s.path(arg)
	if !ok || !s.canSee(p) {
		return
	}
	if fi, ok := s.statFile(p); ok {
		s.reply(213, strconv.FormatInt(fi.Size, 10))
	}
}

// canSee is the permission for questions about files: listing or
// downloading rights both let a user learn sizes and dates.
func (s *Session) canSee(p string) bool {
	if perms := s.permsAt(p); perms.Has(auth.PermList) || perms.Has(auth.PermDownload) {
		return true
	}
	s.reply(550, "Permission denied.")
	return false
}

// cmdMDTM answers the modification time, or sets it when the argument
// starts with a time-val (the older form of MFMT some clients send).
func (s *Session) cmdMDTM(arg string) {
	if ts, name, ok := strings.Cut(arg, " "); ok && name != "" {
		if _, err := parseTimeVal(ts); err == nil {
			s.cmdMFMT(arg)
			return
		}
	}
	p, ok := s.path(arg)
	if !ok || !s.canSee(p) {
		return
	}
	if fi, ok := s.statFile(p); ok {
		s.reply(213, fi.ModTime.UTC().Format(mdtmLayout))
	}
}

// parseTimeVal parses an RFC 3659 time-val, YYYYMMDDHHMMSS[.sss], in UTC.
func parseTimeVal(v string) (time.Time, error) {
	if len(v) < 14 {
		return time.Time{}, fmt.Errorf("time-val %q too short", v)
	}
	for _, c := range v[:14] {
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("time-val %q is not numeric", v)
		}
	}
	layout := mdtmLayout
	if len(v) > 14 {
		frac := v[14:]
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, fmt.Errorf("time-val %q has a bad fraction", v)
		}
		layout += "." + strings.Repeat("9", len(frac)-1)
	}
	return time.ParseInLocation(layout, v, time.UTC)
}

func (s *Session) cmdMFMT(arg string) {
	ts, name, ok := strings.Cut(arg, " ")
	if !ok || name == "" {
		s.reply(501, "Usage: MFMT YYYYMMDDHHMMSS path")
		return
	}
	t, err := parseTimeVal(ts)
	if err != nil {
		s.reply(501, "Bad time value; want YYYYMMDDHHMMSS in UTC.")
		return
	}
	p, ok := s.path(name)
	if !ok || !s.allowed(p, auth.PermChmod, "change file times") {
		return
	}
	if !s.capsAt(p).SetModTime {
		s.reply(502, "This server's storage cannot set modification times.")
		return
	}
	if err := s.fs.SetModTime(s.ctx, p, t); err != nil {
		s.replyStorageErr("mfmt", p, err)
		return
	}
	s.reply(213, "Modify="+t.UTC().Format(mdtmLayout)+"; "+p)
}

// cmdSITE serves SITE subcommands.
func (s *Session) cmdSITE(arg string) {
	sub, rest, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(sub) {
	case "HELP":
		s.writeReply(Reply{Code: 214, Lines: []string{
			"SITE commands:",
			"CHMOD <octal mode> <path>",
			"HELP",
			"End of SITE help.",
		}})
	case "CHMOD":
		s.siteCHMOD(rest)
	default:
		s.reply(500, "Unknown SITE command; try SITE HELP.")
	}
}

func (s *Session) siteCHMOD(arg string) {
	modeStr, name, ok := strings.Cut(strings.TrimSpace(arg), " ")
	if !ok || name == "" {
		s.reply(501, "Usage: SITE CHMOD <octal mode> <path>")
		return
	}
	mode, err := strconv.ParseUint(modeStr, 8, 32)
	if err != nil || mode > 0o777 {
		s.reply(501, "Mode must be octal, 000 to 777.")
		return
	}
	p, ok := s.path(name)
	if !ok || !s.allowed(p, auth.PermChmod, "change permissions") {
		return
	}
	if !s.capsAt(p).Chmod {
		s.reply(502, "This server's storage has no Unix permissions.")
		return
	}
	if err := s.fs.Chmod(s.ctx, p, fs.FileMode(mode)); err != nil {
		s.replyStorageErr("chmod", p, err)
		return
	}
	s.reply(200, "SITE CHMOD command ok.")
}
