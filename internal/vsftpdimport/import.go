// Package vsftpdimport turns vsftpd configurations into a cloudftpd.toml
// and a users.toml, and says, option by option, what became of each:
// mapped to a key, not needed (and why), or unsupported (and what to do
// instead).
//
// Several files are several vsftpd processes, usually the EC2 two-process
// layout: one process per private address (listen_address), the one for
// internet clients with pasv_address set to the Elastic IP. They become
// one cloudftpd process: one listener per file by default, each with the
// passive address its file had; with Options.Merge, one listener whose
// passive rules choose the address by client network, so that the second
// address (and its network interface) is no longer needed.
package vsftpdimport

import (
	"cmp"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cloudftpd/cloudftpd/internal/vsftpdconf"
)

// Options change how configs are imported.
type Options struct {
	// Merge makes one listener of several files, with passive rules by
	// client network: private networks get "control", everyone else the
	// pasv_address.
	Merge bool
	// Discover writes "aws" (the Elastic IP from EC2 instance metadata)
	// instead of a literal public pasv_address.
	Discover bool
	// Root is the directory that the paths named in the configs
	// (user_config_dir, userlist_file, banner_file, /etc/passwd) are read
	// below: "" or "/" for this machine, or a copy of another machine's
	// files. The generated config keeps the paths as written.
	Root string
}

// PrivateNetworks are the client networks that --merge sends the address
// they connected to (RFC 1918: VPCs, VPNs and offices).
var PrivateNetworks = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}

// Result is an import: the report and the generated files. Config and
// Users are nil when the report has errors.
type Result struct {
	Report Report
	Config []byte // cloudftpd.toml
	Users  []byte // users.toml
}

// Import maps parsed vsftpd configs (one per vsftpd process) to cloudftpd.
func Import(files []*vsftpdconf.File, opt Options) (*Result, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("vsftpdimport: no config files")
	}
	im := &importer{opt: opt}
	for _, f := range files {
		im.files = append(im.files, &fileImport{f: f, dyn: map[string]dynItem{}})
	}
	for _, fi := range im.files {
		im.listenerOf(fi)
		im.modes(fi)
	}
	im.serverKeys()
	im.auth()
	if im.out.system != nil && slices.ContainsFunc(im.out.users, func(u userOut) bool { return !u.local }) {
		// One store serves a server: virtual users in users.toml win,
		// and the local users are created there by hand.
		im.notes = append(im.notes, Item{Directive: "auth.store", Status: Note, Text: "local and virtual users together: cloudftpd serves one user store, so the virtual users go to users.toml and the system accounts must be created there too (below)"})
		im.out.system = nil
	}
	im.logs()
	im.listeners()
	im.storage()
	for _, u := range im.out.users {
		if u.local && im.out.system == nil {
			im.notes = append(im.notes, Item{Directive: "user " + u.name, Status: Note, Text: "a system account: create it with " + u.addCommand() + " --config cloudftpd.toml (it prompts for a new password)"})
		}
	}
	res := &Result{Report: im.report()}
	if res.Report.Errors() > 0 {
		return res, nil
	}
	cfg, users, err := im.write(res.Report)
	if err != nil {
		return nil, err
	}
	res.Config, res.Users = cfg, users
	return res, nil
}

type importer struct {
	opt   Options
	files []*fileImport

	out   output
	notes []Item // for the import as a whole, after the files
	homes []string
	// userParents are the directories that hold one home per user, from
	// a local_root whose last element is user_sub_token (/srv/ftp/$USER):
	// the storage root when the configs name no users.
	userParents []string
	anonAbs     string
}

// fileImport is one config file (one vsftpd process) on its way.
type fileImport struct {
	f   *vsftpdconf.File
	dyn map[string]dynItem
	// extra items at the end of the file's part: per-user files, defaults.
	extra []Item

	proc proc
}

type dynItem struct {
	disposition
	always bool // shown even when the option is not set (its default matters)
}

// say records what became of an option; it is shown at the option's line
// when the file sets it.
func (fi *fileImport) say(name string, st Status, format string, args ...any) {
	fi.dyn[name] = dynItem{disposition: disposition{st, fmt.Sprintf(format, args...)}}
}

// sayDefault is say for an option whose default matters: it is shown
// even when the file does not set it.
func (fi *fileImport) sayDefault(name string, st Status, format string, args ...any) {
	fi.dyn[name] = dynItem{disposition: disposition{st, fmt.Sprintf(format, args...)}, always: true}
}

func (fi *fileImport) bad(name, format string, args ...any) {
	fi.say(name, Invalid, format, args...)
}

// proc is what one vsftpd process did, as a cloudftpd listener.
type proc struct {
	host       string // listen address, "" for all
	ipv6       bool
	port       uint64
	ports      string // passive range
	pasvAddr   string // pasv_address as written
	active     bool
	tls        string
	tlsData    string
	reuse      string
	cert, key  string
	userTLS    string // per-user tls, when the listener cannot demand it of everyone
	userData   string // per-user tls_data
	anonymous  bool
	passiveOff bool
}

// output is the generated config before it is written.
type output struct {
	server    []kv
	listeners []listenerOut
	root      string
	anonymous bool
	anonHome  string
	sinks     []sinkOut
	users     []userOut
	// system, when set, is the local users' auth.store = "system".
	system *systemOut
}

type kv struct {
	key     string
	value   any // string, int64, bool, []string
	comment string
	num     uint64 // the number a value was made from, for merging
}

type listenerOut struct {
	from    []string
	keys    []kv
	passive []ruleOut
}

type ruleOut struct {
	clients []string
	address string
	comment string
}

type sinkOut struct {
	name, kind, path, from string
}

func (im *importer) listenerOf(fi *fileImport) {
	f := fi.f
	p := &fi.proc
	p.port = f.Num("listen_port")
	if p.port == 0 || p.port > 65535 {
		fi.bad("listen_port", "%d is not a TCP port (1-65535)", p.port)
	} else {
		fi.say("listen_port", Mapped, "the port of the listener's address")
	}
	v4, v6 := f.Bool("listen"), f.Bool("listen_ipv6")
	switch {
	case v4 && v6:
		fi.bad("listen", "listen=YES with listen_ipv6=YES: vsftpd refuses this too; keep listen_ipv6=YES alone, which serves IPv4 as well on a dual-stack host")
		p.ipv6 = true
	case v6:
		p.ipv6 = true
		fi.say("listen", NotNeeded, "listen_ipv6=YES serves IPv4 clients too")
		p.host = f.Str("listen_address6")
		if p.host != "" {
			if a, err := netip.ParseAddr(p.host); err != nil || !a.Is6() {
				fi.bad("listen_address6", "%q is not an IPv6 address", p.host)
			} else {
				fi.say("listen_address6", Mapped, "the host of the listener's address")
			}
		}
		fi.say("listen_ipv6", Mapped, "the listener listens on %s: IPv6, and IPv4 too on a dual-stack host, as vsftpd did", p.address())
	case v4:
		p.host = f.Str("listen_address")
		fi.say("listen", Mapped, "the listener listens on %s", p.address())
	default:
		fi.sayDefault("listen", Note, "listen=NO and listen_ipv6=NO: vsftpd was started by inetd, xinetd or a systemd socket unit. cloudftpd listens by itself, on %s: disable that entry before starting cloudftpd", p.address())
		fi.say("listen_ipv6", Note, "see listen")
	}
	if a := f.Str("listen_address"); a != "" {
		switch ip, err := netip.ParseAddr(a); {
		case err != nil || !ip.Is4():
			fi.bad("listen_address", "%q is not an IPv4 address", a)
		case !v4:
			fi.say("listen_address", NotNeeded, "vsftpd ignores it without listen=YES, and so does the import")
		default:
			fi.say("listen_address", Mapped, "the host of the listener's address: this process's private address")
		}
	}
	if !v6 && f.Set("listen_address6") {
		fi.say("listen_address6", NotNeeded, "vsftpd ignores it without listen_ipv6=YES, and so does the import")
	}

	// Passive ports as vsftpd picks them: a bound outside 1024-65535 (0
	// included) is replaced by that end of the range.
	lo, hi := f.Num("pasv_min_port"), f.Num("pasv_max_port")
	if lo <= 1024 || lo > 65535 {
		lo = 1024
	}
	if hi < lo || hi >= 65535 {
		hi = 65535
	}
	p.ports = fmt.Sprintf("%d-%d", lo, hi)
	if !f.Set("pasv_min_port") && !f.Set("pasv_max_port") {
		fi.sayDefault("pasv_min_port", Note, "no pasv_min_port/pasv_max_port: vsftpd used any port in 1024-65535, and so does listener.passive_ports = %q. That is what the firewall must open: choose a small range instead (cloudftpd shares ports between clients, so 50 ports carry many transfers)", p.ports)
	} else {
		fi.say("pasv_min_port", Mapped, "listener.passive_ports = %q", p.ports)
		fi.say("pasv_max_port", Mapped, "listener.passive_ports = %q", p.ports)
	}
	if !f.Bool("pasv_enable") {
		p.passiveOff = true
		fi.say("pasv_enable", Unsupported, "passive mode is always offered (it is what works through NAT); to keep clients from using it, do not open the passive range in the firewall")
	} else {
		fi.say("pasv_enable", NotNeeded, "passive mode is always on")
	}
	if a := f.Str("pasv_address"); a != "" {
		ip, err := netip.ParseAddr(a)
		switch {
		case f.Bool("pasv_addr_resolve"):
			if err != nil && !isDNSName(a) {
				fi.bad("pasv_address", "%q is neither an address nor a DNS name", a)
			}
		case err != nil || !ip.Is4():
			fi.bad("pasv_address", "%q is not an IPv4 address (vsftpd wants a numeric address unless pasv_addr_resolve=YES)", a)
		}
		p.pasvAddr = a
		// The text is set by listeners(), which knows about --merge.
	} else if f.Bool("pasv_addr_resolve") {
		fi.say("pasv_addr_resolve", NotNeeded, "no pasv_address to resolve")
	}
	p.active = f.Bool("port_enable")
	if p.active {
		fi.say("port_enable", Mapped, "listener.active_mode = true (PORT/EPRT only to the client's own address, port >= 1024)")
	} else {
		fi.say("port_enable", Mapped, "listener.active_mode = false")
	}
	im.tlsOf(fi)
}

func (p *proc) address() string {
	host := p.host
	switch {
	case host == "" && p.ipv6:
		host = "::"
	case host == "":
		host = "0.0.0.0"
	}
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, p.port)
	}
	return fmt.Sprintf("%s:%d", host, p.port)
}

func (im *importer) tlsOf(fi *fileImport) {
	f, p := fi.f, &fi.proc
	p.anonymous = f.Bool("anonymous_enable")
	if !f.Bool("ssl_enable") {
		p.tls = "off"
		if f.Set("ssl_enable") {
			fi.say("ssl_enable", Mapped, "listener.tls = \"off\"")
		}
		for _, n := range []string{"rsa_cert_file", "rsa_private_key_file", "implicit_ssl", "force_local_logins_ssl", "force_local_data_ssl", "require_ssl_reuse", "force_anon_logins_ssl", "force_anon_data_ssl", "allow_anon_ssl"} {
			fi.say(n, NotNeeded, "not used: ssl_enable=NO")
		}
		return
	}
	p.cert = f.Str("rsa_cert_file")
	p.key = cmp.Or(f.Str("rsa_private_key_file"), p.cert)
	forceLogin, forceData := f.Bool("force_local_logins_ssl"), f.Bool("force_local_data_ssl")
	anonLogin, anonData := f.Bool("force_anon_logins_ssl"), f.Bool("force_anon_data_ssl")
	switch {
	case f.Bool("implicit_ssl"):
		p.tls = "implicit"
		fi.say("implicit_ssl", Mapped, "listener.tls = \"implicit\": TLS from the first byte, on this listener's port")
	case forceLogin && (!p.anonymous || anonLogin):
		p.tls = "required"
	default:
		p.tls = "explicit"
		if forceLogin {
			// Anonymous logins may go without TLS, users may not: the
			// listener offers it and each user demands it.
			p.userTLS = "required"
		}
	}
	switch {
	case p.tls != "explicit" && forceData && (!p.anonymous || anonData):
		p.tlsData = "required"
	case forceData && (!p.anonymous || anonData):
		p.tlsData = "required"
	default:
		p.tlsData = "optional"
		if forceData {
			p.userData = "required"
		}
	}
	p.reuse = "optional"
	if f.Bool("require_ssl_reuse") {
		p.reuse = "required"
	}
	fi.say("ssl_enable", Mapped, "listener.tls = %q, tls_cert = %q, tls_key = %q", p.tls, p.cert, p.key)
	login := fmt.Sprintf("listener.tls = %q", p.tls)
	if p.userTLS != "" {
		login = "each user's tls = \"required\" (the listener offers TLS, so that anonymous logins may go without)"
	}
	if !f.Set("force_local_logins_ssl") {
		login += " (vsftpd's default YES)"
	}
	fi.sayDefault("force_local_logins_ssl", Mapped, "%s: FTPS before a user logs in", login)
	data := fmt.Sprintf("listener.tls_data = %q", p.tlsData)
	if p.userData != "" {
		data = "each user's tls_data = \"required\""
	}
	fi.sayDefault("force_local_data_ssl", Mapped, "%s", data)
	fi.say("require_ssl_reuse", Mapped, "listener.tls_session_reuse = %q", p.reuse)
	fi.say("rsa_cert_file", Mapped, "listener.tls_cert; check-config loads it (the account cloudftpd runs as must be able to read it)")
	if f.Set("rsa_private_key_file") {
		fi.say("rsa_private_key_file", Mapped, "listener.tls_key")
	} else {
		fi.sayDefault("rsa_private_key_file", Mapped, "unset: the key is in rsa_cert_file, so tls_key names the same file")
	}
	if strings.HasPrefix(p.key, "/etc/ssl/private/") {
		fi.extra = append(fi.extra, Item{Pos: f.Name, Directive: "rsa_private_key_file", Status: Note,
			Text: "/etc/ssl/private is readable only by root and the ssl-cert group on Debian: add the cloudftpd account to ssl-cert (usermod -aG ssl-cert cloudftpd), or copy the key where only that account reads it"})
	}
	if p.tls == "implicit" && p.port == 21 {
		fi.extra = append(fi.extra, Item{Pos: f.Name, Directive: "implicit_ssl", Status: Note,
			Text: "implicit FTPS on port 21: clients expect it on 990; vsftpd served it where listen_port said, and so does cloudftpd"})
	}
}

// serverKeys maps the process-wide options. Several processes become one,
// so limits are added up and timeouts take the longest.
func (im *importer) serverKeys() {
	type agg struct {
		key, opt string
		sum      bool   // add up (limits per process); max otherwise
		unit     string // "s": seconds
	}
	for _, a := range []agg{
		{"max_sessions", "max_clients", true, ""},
		{"max_sessions_per_ip", "max_per_ip", false, ""},
		{"idle_timeout", "idle_session_timeout", false, "s"},
		{"stall_timeout", "data_connection_timeout", false, "s"},
		{"data_timeout", "accept_timeout", false, "s"},
		{"data_timeout", "connect_timeout", false, "s"},
		{"login_failure_delay", "delay_failed_login", false, "s"},
		{"max_login_failures", "max_login_fails", false, ""},
	} {
		var set []*fileImport
		var total uint64
		unlimited := false
		for _, fi := range im.files {
			if !fi.f.Set(a.opt) {
				continue
			}
			set = append(set, fi)
			v := fi.f.Num(a.opt)
			if a.sum && v == 0 {
				unlimited = true
			}
			if a.sum {
				total += v
			} else {
				total = max(total, v)
			}
		}
		if len(set) == 0 {
			continue
		}
		if unlimited {
			total = 0
		}
		// data_timeout takes both accept_timeout and connect_timeout:
		// the longer one.
		i := slices.IndexFunc(im.out.server, func(k kv) bool { return k.key == a.key })
		if i >= 0 {
			total = max(total, im.out.server[i].num)
		}
		val := kv{key: a.key, value: int64(total), num: total, comment: a.opt}
		text := fmt.Sprintf("server.%s = %d", a.key, total)
		if a.unit == "s" {
			val.value = seconds(total)
			text = fmt.Sprintf("server.%s = %q", a.key, val.value)
		}
		if i >= 0 {
			val.comment = im.out.server[i].comment + ", " + a.opt
			im.out.server[i] = val
			text += " (the longer of accept_timeout and connect_timeout)"
		} else {
			im.out.server = append(im.out.server, val)
		}
		switch {
		case len(im.files) > 1 && a.sum && !unlimited:
			text += fmt.Sprintf(": the %d processes' limits added up, now for the one process", len(set))
		case len(im.files) > 1 && a.sum:
			text += ": a process without a limit (0) had none"
		case len(set) > 1:
			text += ": the largest of the files'"
		}
		if a.key == "stall_timeout" {
			text += " (a transfer that moves less than 1 MiB in this time is aborted; vsftpd's was no data at all)"
		}
		if a.opt == "max_login_fails" {
			text += " (then 421 and the connection closed, as in vsftpd; the defender also bans addresses that keep guessing)"
		}
		for _, fi := range set {
			fi.say(a.opt, Mapped, "%s", text)
		}
	}
	for _, fi := range im.files {
		banner := fi.f.Str("ftpd_banner")
		if bf := fi.f.Str("banner_file"); bf != "" {
			data, err := os.ReadFile(im.path(bf))
			if err != nil {
				fi.say("banner_file", Note, "could not be read (%v): server.banner not set from it", err)
			} else {
				lines := strings.FieldsFunc(string(data), func(r rune) bool { return r == '\n' || r == '\r' })
				banner = strings.Join(lines, " ")
				fi.say("banner_file", Mapped, "server.banner, its lines joined into the one line of the 220 greeting")
				if fi.f.Set("ftpd_banner") {
					fi.say("ftpd_banner", NotNeeded, "banner_file takes precedence, in vsftpd as here")
				}
			}
		} else if banner != "" {
			fi.say("ftpd_banner", Mapped, "server.banner")
		}
		if banner == "" {
			continue
		}
		if i := slices.IndexFunc(im.out.server, func(k kv) bool { return k.key == "banner" }); i >= 0 {
			if im.out.server[i].value != banner {
				fi.extra = append(fi.extra, Item{Pos: fi.f.Name, Directive: "ftpd_banner", Status: Note, Text: "another file's banner is used: one process has one greeting"})
			}
			continue
		}
		im.out.server = append(im.out.server, kv{key: "banner", value: banner})
	}
}

// listeners builds the listeners and their passive rules from the
// processes, one per file or merged.
func (im *importer) listeners() {
	procs := make([]*proc, len(im.files))
	for i, fi := range im.files {
		procs[i] = &fi.proc
	}
	if im.opt.Merge && im.canMerge() {
		im.merged()
		return
	}
	seen := map[string]string{}
	for _, fi := range im.files {
		p := &fi.proc
		addr := p.address()
		if other, dup := seen[addr]; dup {
			fi.bad("listen_address", "%s is also %s's address: two processes cannot listen on the same address and port", addr, other)
		}
		seen[addr] = fi.f.Name
		l := im.listenerKeys(p, fi.f.Name)
		if p.pasvAddr != "" {
			l.passive = append(l.passive, im.publicRule(fi, p.pasvAddr, len(im.out.listeners)))
		} else if len(im.files) > 1 {
			fi.extra = append(fi.extra, Item{Pos: fi.f.Name, Directive: "pasv_address (unset)", Status: Note,
				Text: fmt.Sprintf("listener[%d] (%s) advertises the address clients connected to, as this process did: right for clients that reach it directly (VPN, VPC peers)", len(im.out.listeners), addr)})
		}
		im.out.listeners = append(im.out.listeners, l)
	}
}

func (im *importer) listenerKeys(p *proc, from ...string) listenerOut {
	l := listenerOut{from: from}
	l.keys = append(l.keys, kv{key: "address", value: p.address()}, kv{key: "passive_ports", value: p.ports})
	if !p.active {
		l.keys = append(l.keys, kv{key: "active_mode", value: false})
	}
	l.keys = append(l.keys, kv{key: "tls", value: p.tls})
	if p.tls != "off" {
		l.keys = append(l.keys,
			kv{key: "tls_cert", value: p.cert},
			kv{key: "tls_key", value: p.key},
			kv{key: "tls_data", value: p.tlsData},
			kv{key: "tls_session_reuse", value: p.reuse})
	}
	return l
}

// publicRule is the rule for everyone else: the pasv_address, or "aws"
// with --discover.
func (im *importer) publicRule(fi *fileImport, addr string, li int) ruleOut {
	r := ruleOut{clients: []string{"0.0.0.0/0"}, address: addr}
	if fi.dyn["pasv_address"].status == Invalid {
		return r
	}
	resolve := fi.f.Bool("pasv_addr_resolve")
	ip, err := netip.ParseAddr(addr)
	switch {
	case im.opt.Discover && err == nil && ip.Is4() && !ip.IsPrivate() && !ip.IsLoopback():
		r.address = "aws"
		r.comment = "was pasv_address=" + addr
		fi.say("pasv_address", Mapped, "listener[%d] passive rule for 0.0.0.0/0: address = \"aws\" (--discover): the Elastic IP associated with the private address the client reached, read from EC2 instance metadata at start and every 5 minutes, instead of %s written here; cloudftpd doctor shows the discovered address", li, addr)
	case im.opt.Discover && err == nil:
		fi.say("pasv_address", Mapped, "listener[%d] passive rule for 0.0.0.0/0: address = %q (--discover leaves it: a private address is not an Elastic IP)", li, addr)
	case resolve && err != nil:
		fi.say("pasv_address", Mapped, "listener[%d] passive rule for 0.0.0.0/0: address = %q, a DNS name resolved at start and every 5 minutes (vsftpd resolved it once)", li, addr)
		fi.say("pasv_addr_resolve", Mapped, "the rule's address is a DNS name")
	default:
		fi.say("pasv_address", Mapped, "listener[%d] passive rule for 0.0.0.0/0: address = %q: every client is sent it, as vsftpd did", li, addr)
	}
	return r
}

// canMerge reports whether the processes can be one listener: same port,
// one public address (or --discover, which finds each one).
func (im *importer) canMerge() bool {
	var pasv []string
	for _, fi := range im.files {
		p := &fi.proc
		if p.port != im.files[0].proc.port {
			im.notes = append(im.notes, Item{Directive: "--merge", Status: Note, Text: fmt.Sprintf("not merged: %s listens on port %d and %s on %d; one listener has one port. Kept one listener per file", im.files[0].f.Name, im.files[0].proc.port, fi.f.Name, p.port)})
			return false
		}
		if p.pasvAddr != "" && !slices.Contains(pasv, p.pasvAddr) {
			pasv = append(pasv, p.pasvAddr)
		}
	}
	if len(pasv) > 1 && !im.opt.Discover {
		im.notes = append(im.notes, Item{Directive: "--merge", Status: Note, Text: fmt.Sprintf("not merged: the files advertise different public addresses (%s); one rule for everyone else has one address. Kept one listener per file; with --discover, \"aws\" finds each private address's Elastic IP and the files merge", strings.Join(pasv, ", "))})
		return false
	}
	return true
}

func (im *importer) merged() {
	// The listener takes the settings of the internet-facing process (the
	// one with a pasv_address), else the first.
	lead := im.files[0]
	for _, fi := range im.files {
		if fi.proc.pasvAddr != "" {
			lead = fi
			break
		}
	}
	p := lead.proc
	p.host = ""
	var names []string
	for _, fi := range im.files {
		names = append(names, fi.f.Name)
		p.ipv6 = p.ipv6 || fi.proc.ipv6
		if fi == lead {
			continue
		}
		for _, d := range []struct{ what, a, b string }{
			{"passive_ports", fi.proc.ports, lead.proc.ports},
			{"tls", fi.proc.tls, lead.proc.tls},
			{"tls_data", fi.proc.tlsData, lead.proc.tlsData},
		} {
			if d.a != d.b {
				fi.extra = append(fi.extra, Item{Pos: fi.f.Name, Directive: "--merge", Status: Note,
					Text: fmt.Sprintf("this process had %s %q; the merged listener has %s's %q", d.what, d.a, lead.f.Name, d.b)})
			}
		}
	}
	l := im.listenerKeys(&p, names...)
	l.passive = append(l.passive, ruleOut{clients: PrivateNetworks, address: "control", comment: "VPN and VPC clients: the private address they connected to"})
	if p.pasvAddr != "" {
		l.passive = append(l.passive, im.publicRule(lead, p.pasvAddr, 0))
		text := lead.dyn["pasv_address"].text
		lead.say("pasv_address", Mapped, "%s. Clients from %s are sent the private address they connected to instead (--merge)", strings.Replace(text, "every client is sent it, as vsftpd did", "internet clients are sent it", 1), strings.Join(PrivateNetworks, ", "))
	}
	for _, fi := range im.files {
		if fi.f.Set("listen_address") {
			fi.say("listen_address", Mapped, "merged: the one listener listens on %s, so clients that reached %s still do; passive rules now tell the networks apart, so once VPN clients use the first address the second network interface and address can go", p.address(), fi.f.Str("listen_address"))
		}
	}
	im.notes = append(im.notes, Item{Directive: "--merge", Status: Mapped, Text: fmt.Sprintf("%d file(s) -> one listener on %s with passive rules by client network", len(im.files), p.address())})
	im.out.listeners = []listenerOut{l}
}

// logs maps xferlog_enable and its companions to event sinks.
func (im *importer) logs() {
	for _, fi := range im.files {
		f := fi.f
		if !f.Bool("xferlog_enable") {
			if f.Set("xferlog_enable") {
				fi.say("xferlog_enable", Mapped, "no transfer log sink")
			}
			for _, n := range []string{"xferlog_std_format", "dual_log_enable", "xferlog_file", "vsftpd_log_file"} {
				fi.say(n, NotNeeded, "not used: xferlog_enable=NO")
			}
			continue
		}
		std, dual := f.Bool("xferlog_std_format"), f.Bool("dual_log_enable")
		var said []string
		if std || dual {
			p := im.addSink("xferlog", "xferlog", f.Str("xferlog_file"), f.Name)
			said = append(said, fmt.Sprintf("an xferlog sink writing %s in the same wu-ftpd xferlog format", p))
		}
		if !std || dual {
			p := im.addSink("audit", "audit", path.Join(path.Dir(f.Str("vsftpd_log_file")), "cloudftpd-audit.jsonl"), f.Name)
			said = append(said, fmt.Sprintf("an audit sink writing %s: vsftpd's own log format has no twin, so logins and transfers are written as one JSON object per line (for the xferlog format, set xferlog_std_format=YES before importing)", p))
		}
		fi.sayDefault("xferlog_enable", Mapped, "%s. Events are kept in server.state_dir until written, so none are lost on a crash", strings.Join(said, "; "))
	}
}

// addSink adds a sink, or keeps the one of that kind already there; it
// returns the path the events go to.
func (im *importer) addSink(name, kind, p, from string) string {
	for _, s := range im.out.sinks {
		if s.kind == kind {
			// One process, one log of each kind: a sink gets every
			// listener's events, so a second one would only repeat them.
			if s.path != p {
				im.notes = append(im.notes, Item{Pos: from, Directive: kind + " sink", Status: Note,
					Text: fmt.Sprintf("one process writes one %s log: the events of every listener go to %s (from %s); %s is no longer written", kind, s.path, s.from, p)})
			}
			return s.path
		}
	}
	im.out.sinks = append(im.out.sinks, sinkOut{name: name, kind: kind, path: p, from: from})
	return p
}

// path is p (absolute in the configs) below Options.Root.
func (im *importer) path(p string) string {
	if im.opt.Root == "" || im.opt.Root == "/" {
		return p
	}
	return filepath.Join(im.opt.Root, filepath.FromSlash(p))
}

// storage chooses storage.root: the deepest directory holding every home.
func (im *importer) storage() {
	homes := slices.Clone(im.homes)
	if im.anonAbs != "" {
		homes = append(homes, im.anonAbs)
	}
	root := ""
	for _, h := range homes {
		if root == "" {
			root = h
			continue
		}
		for !within(h, root) {
			root = path.Dir(root)
		}
	}
	if root == "" && len(im.userParents) > 0 {
		root = im.userParents[0]
		for _, p := range im.userParents[1:] {
			for !within(p, root) {
				root = path.Dir(root)
			}
		}
		im.notes = append(im.notes, Item{Directive: "storage.root", Status: Mapped, Text: fmt.Sprintf("storage.root = %q: local_root gives every user a directory of their name below it, which is where cloudftpd puts a user's home by default", root)})
		im.out.root = root
		return
	}
	switch {
	case root == "" && im.out.system != nil && im.out.system.home == "passwd":
		root = "/home"
		im.notes = append(im.notes, Item{Directive: "storage.root", Status: Mapped, Text: "storage.root = \"/home\" with [auth.system] home = \"passwd\": each system account is jailed in its passwd home, which must be below storage.root (an account whose home is elsewhere cannot log in and is logged). The server writes files as its own account, not as the user: it needs write access to the homes"})
	case root == "":
		root = "/srv/ftp"
		im.notes = append(im.notes, Item{Directive: "storage.root", Status: Note, Text: "no home directory is known from the configs (users come from the system or PAM): storage.root = \"/srv/ftp\"; each user's home is a directory below it, named after the user unless users.toml says home = ..."})
	case root == "/":
		im.notes = append(im.notes, Item{Directive: "storage.root", Status: Note, Text: "the homes have no directory in common but /: storage.root = \"/\", and homes are paths below it. Consider moving the homes under one directory (and storage.root there)"})
	default:
		im.notes = append(im.notes, Item{Directive: "storage.root", Status: Mapped, Text: fmt.Sprintf("storage.root = %q, the deepest directory holding every home; homes in users.toml are relative to it", root)})
	}
	im.out.root = root
	for i := range im.out.users {
		u := &im.out.users[i]
		if u.abs != "" {
			u.home = rel(root, u.abs)
		}
	}
	if im.anonAbs != "" {
		im.out.anonHome = rel(root, im.anonAbs)
	}
}

// seconds writes a number of seconds as a duration: "10m", "90s".
func seconds(n uint64) string {
	switch {
	case n > 0 && n%3600 == 0:
		return fmt.Sprintf("%dh", n/3600)
	case n > 0 && n%60 == 0:
		return fmt.Sprintf("%dm", n/60)
	}
	return fmt.Sprintf("%ds", n)
}

// modes compares the modes vsftpd gave new files with cloudftpd's.
func (im *importer) modes(fi *fileImport) {
	f := fi.f
	umaskOpt := "local_umask"
	if f.Bool("guest_enable") && !f.Bool("virtual_use_local_privs") {
		umaskOpt = "anon_umask"
	}
	umask := f.Num(umaskOpt)
	vs := f.Num("file_open_mode") &^ umask
	cf := uint64(0o644) &^ umask
	var text string
	st := NotNeeded
	switch {
	case vs == 0o644:
		text = "new files are 0644 and directories 0755, as vsftpd made them with these settings (run cloudftpd with a umask of 022, the default)"
	case cf == vs:
		st = Unsupported
		text = fmt.Sprintf("vsftpd created files %04o; cloudftpd creates files 0644 and directories 0755 minus the process umask: set UMask=%04o in the systemd unit to get %04o", vs, umask, cf)
	default:
		st = Unsupported
		text = fmt.Sprintf("vsftpd created files %04o; cloudftpd creates files 0644 and directories 0755 minus the process umask (UMask= in the systemd unit), so at most 0644: group-writable uploads need a command hook on upload.committed that runs chmod", vs)
	}
	for _, n := range []string{"local_umask", "file_open_mode", "anon_umask"} {
		if n == "anon_umask" && umaskOpt != n {
			continue
		}
		fi.say(n, st, "%s", text)
	}
}

func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

func rel(root, p string) string {
	if p == root {
		return "."
	}
	return strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
}

// isDNSName is a loose host name check, for pasv_addr_resolve names;
// config.Validate has the final word.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 || strings.Trim(s, "0123456789.") == "" {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// report lists every line of every file with what became of it, then the
// import's notes.
func (im *importer) report() Report {
	var r Report
	for _, fi := range im.files {
		f := fi.f
		type lineItem struct {
			line int
			Item
		}
		var lines []lineItem
		for _, e := range f.Errors {
			lines = append(lines, lineItem{e.Line, Item{Pos: fmt.Sprintf("%s:%d", e.File, e.Line), Status: Invalid, Text: e.Msg}})
		}
		latest := map[string]int{}
		for _, s := range f.Latest() {
			latest[s.Name] = s.Line
		}
		for _, s := range f.Settings {
			it := Item{Pos: s.Pos(), Directive: s.Name + "=" + s.Value}
			if l := latest[s.Name]; l != s.Line {
				it.Status, it.Text = Note, fmt.Sprintf("replaced by line %d, as in vsftpd", l)
			} else {
				d := im.disposition(fi, s.Name)
				it.Status, it.Text = d.status, d.text
			}
			lines = append(lines, lineItem{s.Line, it})
		}
		slices.SortStableFunc(lines, func(a, b lineItem) int { return a.line - b.line })
		for _, l := range lines {
			r = append(r, l.Item)
		}
		names := make([]string, 0, len(fi.dyn))
		for n, d := range fi.dyn {
			if d.always && !f.Set(n) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			d := fi.dyn[n]
			r = append(r, Item{Pos: f.Name, Directive: n + " (default " + cmp.Or(vsftpdconf.Default(n), "none") + ")", Status: d.status, Text: d.text})
		}
		r = append(r, fi.extra...)
	}
	r = append(r, im.notes...)
	return r
}

func (im *importer) disposition(fi *fileImport, name string) disposition {
	if d, ok := fi.dyn[name]; ok {
		return d.disposition
	}
	if d, ok := static[name]; ok {
		return d
	}
	return disposition{Note, "the importer has no rule for this option; please report it"}
}
