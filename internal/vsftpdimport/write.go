package vsftpdimport

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/bytesize"
)

// write renders cloudftpd.toml (with the report as its opening comment)
// and users.toml.
func (im *importer) write(r Report) (cfg, users []byte, err error) {
	var b bytes.Buffer
	var names []string
	for _, fi := range im.files {
		names = append(names, fi.f.Name)
	}
	fmt.Fprintf(&b, "# cloudftpd configuration imported from vsftpd: %s\n", strings.Join(names, ", "))
	if im.opt.Merge || im.opt.Discover {
		var o []string
		if im.opt.Merge {
			o = append(o, "--merge")
		}
		if im.opt.Discover {
			o = append(o, "--discover")
		}
		fmt.Fprintf(&b, "# with %s\n", strings.Join(o, " "))
	}
	b.WriteString("# Reference: README.md, \"Configuration\". Check it with: cloudftpd check-config --config FILE\n#\n")
	b.WriteString("# What became of each vsftpd option:\n#\n")
	if err := r.Write(&b, "# "); err != nil {
		return nil, nil, err
	}
	b.WriteString("\n")
	if len(im.out.server) > 0 {
		b.WriteString("[server]\n")
		for _, k := range im.out.server {
			writeKV(&b, "", k)
		}
		b.WriteString("\n")
	}
	for _, l := range im.out.listeners {
		b.WriteString("[[listener]]\n")
		fmt.Fprintf(&b, "# from %s\n", strings.Join(l.from, ", "))
		for _, k := range l.keys {
			writeKV(&b, "", k)
		}
		for _, p := range l.passive {
			b.WriteString("\n  [[listener.passive]]\n")
			if p.comment != "" {
				fmt.Fprintf(&b, "  # %s\n", p.comment)
			}
			writeKV(&b, "  ", kv{key: "clients", value: p.clients})
			writeKV(&b, "  ", kv{key: "address", value: p.address})
		}
		b.WriteString("\n")
	}
	b.WriteString("[storage]\nbackend = \"local\"\n")
	writeKV(&b, "", kv{key: "root", value: im.out.root})
	if im.out.system != nil {
		b.WriteString("\n[auth]\nstore = \"system\"\n")
	} else {
		b.WriteString("\n[auth]\nusers_file = \"users.toml\"\n")
	}
	if im.out.anonymous {
		b.WriteString("anonymous = true\n")
		if im.out.anonHome != "" {
			writeKV(&b, "", kv{key: "anonymous_home", value: im.out.anonHome})
		}
	}
	if so := im.out.system; so != nil {
		b.WriteString("\n[auth.system]\n")
		fmt.Fprintf(&b, "# from %s: local_enable=YES (README \"System accounts\")\n", so.from)
		writeKV(&b, "", kv{key: "home", value: so.home})
		writeKV(&b, "", kv{key: "permissions", value: so.perms})
		if so.userlist != "" {
			writeKV(&b, "", kv{key: "userlist_file", value: so.userlist, comment: "userlist_enable=YES"})
			writeKV(&b, "", kv{key: "userlist_deny", value: so.userlistDeny})
		}
	}
	for _, s := range im.out.sinks {
		b.WriteString("\n[[events.sink]]\n")
		fmt.Fprintf(&b, "# from %s\n", s.from)
		writeKV(&b, "", kv{key: "name", value: s.name})
		writeKV(&b, "", kv{key: "kind", value: s.kind})
		writeKV(&b, "", kv{key: "path", value: s.path})
	}
	users, err = im.writeUsers()
	if err != nil {
		return nil, nil, err
	}
	return b.Bytes(), users, nil
}

const usersHeader = `# cloudftpd users imported from vsftpd.
#
# Passwords could not be carried over: vsftpd's users authenticate through
# PAM (a pam_userdb file, /etc/shadow, LDAP), which keeps no password the
# import can read. Every imported user has a random password nobody knows
# and disabled = true. For each user:
#
#   cloudftpd user passwd NAME --users users.toml   # set a new password
#
# then delete the user's "disabled = true" line (or run sed -i on it) and
# reload (systemctl reload cloudftpd).
#
# Keys: README.md, "Users and permissions" and "Limits and defence".
`

func (im *importer) writeUsers() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(usersHeader)
	n := 0
	for _, u := range im.out.users {
		if u.local {
			continue
		}
		hash, err := unknownPassword()
		if err != nil {
			return nil, err
		}
		b.WriteString("\n[[user]]\n")
		fmt.Fprintf(&b, "# from %s\n", u.from)
		for _, c := range u.comment {
			fmt.Fprintf(&b, "# %s\n", c)
		}
		writeKV(&b, "", kv{key: "name", value: u.name})
		writeKV(&b, "", kv{key: "password_hash", value: hash})
		if u.home != "" {
			writeKV(&b, "", kv{key: "home", value: u.home})
		}
		writeKV(&b, "", kv{key: "permissions", value: u.perms})
		b.WriteString("disabled = true\n")
		if u.tls != "" {
			writeKV(&b, "", kv{key: "tls", value: u.tls})
		}
		if u.tlsData != "" {
			writeKV(&b, "", kv{key: "tls_data", value: u.tlsData})
		}
		if u.rate > 0 {
			rate := bytesize.Size(u.rate).String()
			writeKV(&b, "", kv{key: "upload_rate", value: rate, comment: "local_max_rate"})
			writeKV(&b, "", kv{key: "download_rate", value: rate, comment: "local_max_rate"})
		}
		if len(u.allowed) > 0 {
			writeKV(&b, "", kv{key: "allowed_patterns", value: u.allowed, comment: "upload_file"})
		}
		if len(u.denied) > 0 {
			writeKV(&b, "", kv{key: "denied_patterns", value: u.denied, comment: "deny_file"})
		}
		n++
	}
	if n == 0 {
		b.WriteString("#\n# No user could be imported: add them with cloudftpd user add NAME.\n")
	}
	return b.Bytes(), nil
}

// unknownPassword is the hash of a random password that is thrown away:
// an entry that passes validation and that nobody can log in with.
func unknownPassword() (string, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("vsftpdimport: %w", err)
	}
	return auth.HashPassword(hex.EncodeToString(secret))
}

func writeKV(b *bytes.Buffer, indent string, k kv) {
	fmt.Fprintf(b, "%s%s = %s", indent, k.key, tomlValue(k.value))
	if k.comment != "" {
		fmt.Fprintf(b, "  # %s", k.comment)
	}
	b.WriteByte('\n')
}

func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return tomlString(v)
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = tomlString(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	panic(fmt.Sprintf("vsftpdimport: no TOML form for %T", v))
}

// tomlString is a TOML basic string: quotes, backslashes and control
// characters escaped.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
