package vsftpdimport

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/cloudftpd/cloudftpd/internal/vsftpdconf"
)

// userOut is one users.toml entry, or (local) a user to create by hand.
type userOut struct {
	name      string
	abs       string // home as vsftpd had it, "" when unknown
	home      string // relative to storage.root, filled by storage()
	perms     []string
	rate      int64
	denied    []string
	allowed   []string
	tls       string
	tlsData   string
	from      string // the per-user file, or the main config
	local     bool   // a system account: not written, only reported
	comment   []string
	pamSource string
}

// userOptions are the options a per-user file (user_config_dir) may set
// that the import maps per user; any other is reported as server-wide.
var userOptions = []string{
	"local_root", "write_enable", "anon_upload_enable", "anon_mkdir_write_enable",
	"anon_other_write_enable", "download_enable", "dirlist_enable", "chmod_enable",
	"local_max_rate", "deny_file", "upload_file", "cmds_allowed", "cmds_denied",
	"anon_world_readable_only", "hide_file",
}

// permCommands are the FTP commands each cloudftpd permission covers, for
// cmds_allowed and cmds_denied.
var permCommands = []struct {
	perm string
	cmds []string
}{
	{"list", []string{"LIST", "NLST", "MLSD", "MLST", "STAT"}},
	{"download", []string{"RETR"}},
	{"upload", []string{"STOR", "STOU", "APPE"}},
	{"overwrite", []string{"STOR", "APPE"}},
	{"delete", []string{"DELE", "RMD"}},
	{"rename", []string{"RNFR", "RNTO"}},
	{"mkdir", []string{"MKD"}},
	{"chmod", []string{"SITE", "MFMT"}},
}

// auth maps anonymous logins and users.
func (im *importer) auth() {
	seen := map[string]bool{}
	for _, fi := range im.files {
		im.anonymousOf(fi)
		for _, u := range im.usersOf(fi) {
			if seen[u.name] {
				continue // the first file's entry wins; the same user in both processes
			}
			seen[u.name] = true
			im.out.users = append(im.out.users, u)
			if u.abs != "" {
				im.homes = append(im.homes, u.abs)
			}
		}
	}
}

func (im *importer) anonymousOf(fi *fileImport) {
	f := fi.f
	if !f.Bool("anonymous_enable") {
		if f.Set("anonymous_enable") {
			fi.say("anonymous_enable", Mapped, "auth.anonymous = false")
		} else {
			fi.sayDefault("anonymous_enable", Note, "unset: Debian's vsftpd refuses anonymous logins then, upstream vsftpd allows them; the import leaves them off (auth.anonymous = false): set it if your vsftpd allowed them")
		}
		for _, n := range []string{"anon_root", "anon_upload_enable", "anon_mkdir_write_enable", "anon_other_write_enable", "anon_max_rate", "anon_umask", "anon_world_readable_only", "no_anon_password", "ftp_username"} {
			if _, ok := fi.dyn[n]; !ok {
				fi.say(n, NotNeeded, "not used: anonymous_enable=NO")
			}
		}
		return
	}
	im.out.anonymous = true
	home := f.Str("anon_root")
	if home == "" {
		home = im.passwdHome(f.Str("ftp_username"))
	}
	text := "auth.anonymous = true: read-only logins as \"anonymous\" or \"ftp\""
	if home != "" && strings.HasPrefix(home, "/") {
		im.anonAbs = path.Clean(home)
		text += fmt.Sprintf(", in %s (auth.anonymous_home, relative to storage.root)", im.anonAbs)
	}
	fi.say("anonymous_enable", Mapped, "%s", text)
	if f.Set("anon_root") {
		fi.say("anon_root", Mapped, "auth.anonymous_home")
	}
	write := f.Bool("write_enable")
	for _, n := range []string{"anon_upload_enable", "anon_mkdir_write_enable", "anon_other_write_enable"} {
		if f.Bool(n) && write && !f.Bool("guest_enable") {
			fi.say(n, Unsupported, "anonymous sessions are read-only. For an anonymous drop box, create a user that may only upload (cloudftpd user add inbox --perm dropbox) and publish its password")
		}
	}
	if f.Num("anon_max_rate") > 0 {
		fi.say("anon_max_rate", Unsupported, "not mapped: anonymous sessions have no rate key of their own. Listener-wide upload_rate/download_rate keys (one budget shared by all sessions of a listener) are being added separately; until then anonymous transfers are not paced")
	}
}

// passwdHome is the home of a system account, from /etc/passwd below
// Options.Root; "" when it cannot be read.
func (im *importer) passwdHome(name string) string {
	data, err := os.ReadFile(im.path("/etc/passwd"))
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && fields[0] == name {
			return fields[5]
		}
	}
	return ""
}

// usersOf lists the users a process served that the configs name: the
// files of user_config_dir and the names in an allowing userlist_file.
func (im *importer) usersOf(fi *fileImport) []userOut {
	f := fi.f
	local, guest := f.Bool("local_enable"), f.Bool("guest_enable")
	if !local {
		if guest {
			fi.say("guest_enable", NotNeeded, "vsftpd ignores it with local_enable=NO: no user logins")
		}
		for _, n := range []string{"user_config_dir", "local_root", "write_enable", "userlist_enable", "chroot_local_user", "local_max_rate"} {
			if _, ok := fi.dyn[n]; !ok && f.Set(n) {
				fi.say(n, NotNeeded, "not used: local_enable=NO (no user logins)")
			}
		}
		return nil
	}
	if token, lr := f.Str("user_sub_token"), f.Str("local_root"); token != "" && path.Base(lr) == token && strings.HasPrefix(lr, "/") {
		im.userParents = append(im.userParents, path.Dir(path.Clean(lr)))
	}
	// Names: per-user files, then the user list.
	type named struct {
		name string
		uf   *vsftpdconf.File
	}
	var names []named
	if dir := f.Str("user_config_dir"); dir != "" {
		ents, err := os.ReadDir(im.path(dir))
		if err != nil {
			fi.say("user_config_dir", Note, "could not be read (%v): no users taken from it", err)
		}
		n := 0
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := path.Join(dir, e.Name())
			data, err := os.ReadFile(im.path(p))
			if err != nil {
				fi.extra = append(fi.extra, Item{Pos: p, Status: Note, Text: fmt.Sprintf("could not be read: %v", err)})
				continue
			}
			names = append(names, named{e.Name(), vsftpdconf.Parse(p, data)})
			n++
		}
		if err == nil {
			fi.say("user_config_dir", Mapped, "%d per-user file(s): one users.toml entry each, with the options below", n)
		}
	}
	var listed []string
	if f.Bool("userlist_enable") {
		uf := f.Str("userlist_file")
		data, err := os.ReadFile(im.path(uf))
		if err != nil {
			fi.say("userlist_enable", Note, "%s could not be read (%v): its names are not applied", uf, err)
		} else {
			for _, l := range strings.Split(string(data), "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
					listed = append(listed, l)
				}
			}
			if f.Bool("userlist_deny") {
				fi.say("userlist_enable", Mapped, "%s refuses %d name(s): they get no users.toml entry (cloudftpd refuses unknown names)", uf, len(listed))
			} else {
				fi.say("userlist_enable", Mapped, "%s allows only its %d name(s): users outside it get no entry, names in it without a per-user file get one with the main config's settings", uf, len(listed))
				for _, l := range listed {
					if !slices.ContainsFunc(names, func(n named) bool { return n.name == l }) {
						names = append(names, named{name: l})
					}
				}
			}
		}
	}
	deny := f.Bool("userlist_enable") && f.Bool("userlist_deny")
	im.chrootNote(fi)
	var out []userOut
	for _, n := range names {
		if deny && slices.Contains(listed, n.name) {
			fi.extra = append(fi.extra, Item{Pos: f.Name, Directive: "user " + n.name, Status: NotNeeded, Text: "refused by userlist_file, so not imported"})
			continue
		}
		if listed != nil && !deny && !slices.Contains(listed, n.name) {
			fi.extra = append(fi.extra, Item{Pos: f.Name, Directive: "user " + n.name, Status: NotNeeded, Text: "not in userlist_file, which allows only its names: not imported"})
			continue
		}
		u, ok := im.user(fi, n.name, n.uf)
		if ok {
			out = append(out, u)
		}
	}
	switch {
	case guest && len(out) == 0:
		fi.sayDefault("guest_enable", Note, "virtual users: their names and passwords are in the PAM database of pam_service_name=%s (a pam_userdb file, LDAP, SQL) and cannot be read from the config. Create each with cloudftpd user add NAME --home DIR --perm PERMS", f.Str("pam_service_name"))
	case guest:
		fi.say("guest_enable", Mapped, "virtual users: %d users.toml entr(ies), see below", len(out))
	default:
		if f.Bool("write_enable") {
			fi.say("write_enable", Mapped, "users may write: create them with --perm all (with download_enable, dirlist_enable, chmod_enable and cmds_* as set here)")
		} else {
			fi.say("write_enable", Mapped, "users may not write: create them with --perm read")
		}
		im.systemOf(fi)
	}
	return out
}

func (im *importer) chrootNote(fi *fileImport) {
	f := fi.f
	all, list := f.Bool("chroot_local_user"), f.Bool("chroot_list_enable")
	switch {
	case all && !list:
		fi.say("chroot_local_user", Mapped, "every user is jailed in its home, always")
	case list:
		who := "the users in chroot_list_file were not jailed"
		if !all {
			who = "only the users in chroot_list_file were jailed"
		}
		fi.sayDefault("chroot_local_user", Note, "%s; in cloudftpd every user is jailed in its home. A user that needs more gets a home higher up", who)
	default:
		fi.sayDefault("chroot_local_user", Note, "unset or NO: vsftpd let users leave their home and see the whole file system; cloudftpd jails every user in its home. A user that needs more gets a home higher up (home = in users.toml)")
	}
}

// user builds one user from the main config and its per-user file.
func (im *importer) user(fi *fileImport, name string, uf *vsftpdconf.File) (userOut, bool) {
	f := fi.f
	guest := f.Bool("guest_enable")
	u := userOut{name: name, from: f.Name, local: !guest, tls: fi.proc.userTLS, tlsData: fi.proc.userData}
	// get reads an option from the per-user file, else the main one.
	src := func(opt string) *vsftpdconf.File {
		if uf != nil && uf.Set(opt) {
			return uf
		}
		return f
	}
	var notes []string
	if uf != nil {
		u.from = uf.Name
		for _, e := range uf.Errors {
			fi.extra = append(fi.extra, Item{Pos: fmt.Sprintf("%s:%d", e.File, e.Line), Status: Invalid, Text: e.Msg})
		}
		for _, s := range uf.Latest() {
			it := Item{Pos: s.Pos(), Directive: s.Name + "=" + s.Value, Status: Mapped, Text: "user " + name + ": see the user's entry below"}
			switch {
			case s.Name == "anon_world_readable_only":
				it.Status, it.Text = NotNeeded, static[s.Name].text
			case s.Name == "hide_file":
				it.Status, it.Text = Unsupported, static[s.Name].text
			case !slices.Contains(userOptions, s.Name):
				it.Status, it.Text = Unsupported, "not supported per user: cloudftpd has no per-user form of this option"
			}
			fi.extra = append(fi.extra, it)
		}
	}
	token := f.Str("user_sub_token")
	sub := func(p string) string {
		if token != "" {
			p = strings.ReplaceAll(p, token, name)
		}
		return p
	}
	home := src("local_root").Str("local_root")
	if home == "" {
		acct := name
		if guest {
			acct = f.Str("guest_username")
		}
		home = im.passwdHome(acct)
	}
	home = sub(home)
	if strings.HasPrefix(home, "/") {
		u.abs = path.Clean(home)
	} else {
		notes = append(notes, "home unknown (no local_root, account not in /etc/passwd): defaults to the name, below storage.root")
	}

	// Permissions, as vsftpd decides them: virtual users take the
	// anonymous write options unless virtual_use_local_privs=YES.
	perms, pnotes := permsOf(f, src, guest)
	notes = append(notes, pnotes...)
	u.perms = perms
	if rate := src("local_max_rate").Num("local_max_rate"); rate > 0 {
		u.rate = int64(rate)
	}
	for _, k := range []struct {
		opt string
		dst *[]string
	}{{"deny_file", &u.denied}, {"upload_file", &u.allowed}} {
		for _, p := range vsftpdconf.Patterns(src(k.opt).Str(k.opt)) {
			if strings.Contains(p, "/") {
				notes = append(notes, fmt.Sprintf("%s pattern %q names a path; cloudftpd patterns match names only: left out", k.opt, p))
				continue
			}
			*k.dst = append(*k.dst, p)
		}
	}
	if len(u.denied) > 0 {
		notes = append(notes, "denied_patterns refuse uploading, renaming to or creating such names; unlike deny_file, files already there stay readable")
	}
	u.comment = notes
	if len(perms) == 0 {
		fi.extra = append(fi.extra, Item{Pos: u.from, Directive: "user " + name, Status: Note,
			Text: "may do nothing at all with these settings (no list, download or write): not imported"})
		return u, false
	}
	what := "users.toml entry"
	if u.local {
		what = "system account: logs in with its own password (auth.store = \"system\"), not written to users.toml"
		if uf != nil {
			what += "; its per-user settings are not applied: every system account gets the [auth.system] permissions of the main config"
		}
	}
	text := fmt.Sprintf("%s: home %s, permissions %s", what, cmpOr(u.abs, "(the name)"), strings.Join(perms, ","))
	if u.rate > 0 {
		text += fmt.Sprintf(", upload_rate = download_rate = %d bytes/s (local_max_rate)", u.rate)
	}
	if len(notes) > 0 {
		text += ". " + strings.Join(notes, ". ")
	}
	fi.extra = append(fi.extra, Item{Pos: u.from, Directive: "user " + name, Status: Mapped, Text: text})
	return u, true
}

func commandsOf(perm string) []string {
	for _, pc := range permCommands {
		if pc.perm == perm {
			return pc.cmds
		}
	}
	return nil
}

// addCommand is the cloudftpd user add line that creates the user by hand.
func (u *userOut) addCommand() string {
	cmd := "cloudftpd user add " + u.name
	if u.home != "" && u.home != u.name {
		cmd += " --home " + u.home
	}
	return cmd + " --perm " + strings.Join(u.perms, ",")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// systemOut is the [auth.system] table of the local users.
type systemOut struct {
	from         string
	perms        []string
	userlist     string
	userlistDeny bool
	// home is "passwd" (the accounts' passwd homes, below storage.root)
	// or "name" (local_root gave each user a directory of their name).
	home string
}

// systemOf maps a process's local users (local_enable=YES, not guest) to
// auth.store = "system": they keep their passwords, verified from the
// shadow file, and vsftpd's userlist becomes the store's.
func (im *importer) systemOf(fi *fileImport) {
	f := fi.f
	if im.out.system != nil {
		fi.sayDefault("local_enable", Mapped, "local users: auth.store = \"system\", as set from %s", im.out.system.from)
		return
	}
	src := func(string) *vsftpdconf.File { return f }
	perms, _ := permsOf(f, src, false)
	so := &systemOut{from: f.Name, perms: perms, home: "passwd"}
	if f.Bool("userlist_enable") {
		so.userlist, so.userlistDeny = f.Str("userlist_file"), f.Bool("userlist_deny")
	}
	if lr := f.Str("local_root"); lr != "" {
		so.home = "name"
	}
	im.out.system = so
	fi.sayDefault("local_enable", Mapped, "local users are system accounts: auth.store = \"system\" reads /etc/passwd and /etc/shadow, so they keep their passwords ($y$ yescrypt, $6$, $5$, bcrypt). Accounts below uid 1000 (min_uid) or in /etc/ftpusers cannot log in; the server needs the shadow group to read /etc/shadow (README \"System accounts\")")
}

// permsOf is the permissions a user gets from the options src finds
// (the per-user file's, else the main config's), with notes on what
// cmds_allowed and cmds_denied removed.
func permsOf(f *vsftpdconf.File, src func(string) *vsftpdconf.File, guest bool) (perms, notes []string) {
	write := src("write_enable").Bool("write_enable")
	add := func(on bool, ps ...string) {
		if on {
			perms = append(perms, ps...)
		}
	}
	add(src("dirlist_enable").Bool("dirlist_enable"), "list")
	add(src("download_enable").Bool("download_enable"), "download")
	if guest && !f.Bool("virtual_use_local_privs") {
		add(write && src("anon_upload_enable").Bool("anon_upload_enable"), "upload")
		add(write && src("anon_mkdir_write_enable").Bool("anon_mkdir_write_enable"), "mkdir")
		add(write && src("anon_other_write_enable").Bool("anon_other_write_enable"), "overwrite", "delete", "rename")
	} else {
		add(write, "upload", "overwrite", "delete", "rename", "mkdir")
		add(write && src("chmod_enable").Bool("chmod_enable"), "chmod")
	}
	if a := src("cmds_allowed").Str("cmds_allowed"); a != "" {
		allowed := strings.Split(strings.ToUpper(a), ",")
		perms = slices.DeleteFunc(perms, func(p string) bool {
			return !slices.ContainsFunc(commandsOf(p), func(c string) bool { return slices.Contains(allowed, c) })
		})
		notes = append(notes, "cmds_allowed: kept the permissions with an allowed command")
	}
	if d := src("cmds_denied").Str("cmds_denied"); d != "" {
		denied := strings.Split(strings.ToUpper(d), ",")
		perms = slices.DeleteFunc(perms, func(p string) bool {
			return slices.ContainsFunc(commandsOf(p), func(c string) bool { return slices.Contains(denied, c) })
		})
		notes = append(notes, "cmds_denied: dropped each permission one of whose commands is denied")
	}
	return perms, notes
}
