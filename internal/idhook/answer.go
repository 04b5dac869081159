package idhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cloudftpd/cloudftpd/internal/auth"
)

// ownAnswer is an answer in cloudftpd's terms: the keys of a users-file
// [[user]] entry other than name and password_hash, limits included
// (auth.LimitsEntry, with its [[dir]] rules as "dir": [...]).
type ownAnswer struct {
	Home        string   `toml:"home"`
	Permissions []string `toml:"permissions"`
	TLS         string   `toml:"tls"`
	TLSData     string   `toml:"tls_data"`
	BinaryOnly  bool     `toml:"binary_only"`
	auth.LimitsEntry
}

// Transfer Family's answer keys. The first three say where the user lives;
// the others grant access by IAM or give SFTP keys and POSIX ids, none of
// which means anything here.
const (
	tfHomeDirectory        = "HomeDirectory"
	tfHomeDirectoryType    = "HomeDirectoryType"
	tfHomeDirectoryDetails = "HomeDirectoryDetails"
)

var tfIgnored = []string{"Role", "Policy", "PosixProfile", "PublicKeys"}

// tfMapping is one entry of HomeDirectoryDetails.
type tfMapping struct {
	Entry  string `json:"Entry"`
	Target string `json:"Target"`
	Type   string `json:"Type"`
}

// parseAnswer reads the body of a 200 answer. An empty one (no body,
// null, {}) is a refusal: auth.ErrBadCredentials. Anything else must be
// an object whose every key is known, in either style; a key that is not
// is an error rather than ignored, so that a misspelt "permisions" fails
// loudly instead of granting default_permissions.
func (h *Hook) parseAnswer(name string, body []byte) (*auth.User, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return nil, auth.ErrBadCredentials
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not one JSON object: data after it")
	}
	for k, v := range m {
		if v == nil {
			delete(m, k) // null is absent
		}
	}
	if len(m) == 0 {
		return nil, auth.ErrBadCredentials
	}

	var ignored []string
	for _, k := range tfIgnored {
		if _, ok := m[k]; ok {
			ignored = append(ignored, k)
			delete(m, k)
		}
	}
	if len(ignored) > 0 {
		h.log.Debug("idhook: Transfer Family keys ignored (access is set by permissions, not IAM)", "user", name, "keys", strings.Join(ignored, ","))
	}
	tfHome, tfGiven, err := h.transferFamilyHome(name, m)
	if err != nil {
		return nil, err
	}

	var own ownAnswer
	if err := decodeOwn(m, &own); err != nil {
		return nil, err
	}
	u := &auth.User{Name: name, TLS: own.TLS, TLSData: own.TLSData, BinaryOnly: own.BinaryOnly}
	switch {
	case own.Home != "" && tfGiven:
		return nil, errors.New("both home and HomeDirectory(Details) are given: answer with one")
	case own.Home != "":
		if u.Home, err = relativeHome(own.Home); err != nil {
			return nil, fmt.Errorf("home: %w", err)
		}
	case tfGiven:
		u.Home = tfHome
	default:
		u.Home = name // as in the users file
	}
	u.Perms = h.opts.DefaultPermissions
	if own.Permissions != nil {
		if u.Perms, err = auth.ParsePermissions(own.Permissions); err != nil {
			return nil, fmt.Errorf("permissions: %w", err)
		}
		if u.Perms == 0 {
			return nil, errors.New("permissions: empty; refuse the login instead (HTTP 403 or {})")
		}
	}
	for _, k := range []struct{ key, v string }{{"tls", u.TLS}, {"tls_data", u.TLSData}} {
		if k.v != "" && k.v != "optional" && k.v != "required" {
			return nil, fmt.Errorf("%s: %q (want \"required\" or \"optional\")", k.key, k.v)
		}
	}
	if u.Limits, err = own.LimitsEntry.Parse(); err != nil {
		return nil, err
	}
	return u, nil
}

// transferFamilyHome maps Transfer Family's home keys, removing them from
// m, to a home relative to the storage root. given is false when the
// answer has none of them.
//
// Transfer Family names S3 paths as "/bucket/key-prefix"; cloudftpd's
// storage root is HomeDirectoryRoot in those terms, so HomeDirectory
// "/bucket/homes/alice" with root "/bucket" is the home "homes/alice".
//   - PATH (the default type): the home is HomeDirectory. Transfer Family
//     lets such a user see the whole bucket, as far as the IAM policy
//     allows; cloudftpd jails every user in the home, so the user sees
//     HomeDirectory as "/".
//   - LOGICAL: HomeDirectoryDetails (a JSON array, or a string holding
//     one, as Lambda functions often return it) must be the single chroot
//     mapping [{"Entry": "/", "Target": "/bucket/homes/alice"}]; the home
//     is its Target. More mappings are virtual folders, which cloudftpd
//     does not have yet: such an answer is an error, not a guess. A
//     HomeDirectory beside them is the landing directory inside the
//     mapping; sessions always start at "/", so it is ignored.
func (h *Hook) transferFamilyHome(name string, m map[string]any) (home string, given bool, err error) {
	dir, hasDir := m[tfHomeDirectory]
	typ, hasType := m[tfHomeDirectoryType]
	details, hasDetails := m[tfHomeDirectoryDetails]
	delete(m, tfHomeDirectory)
	delete(m, tfHomeDirectoryType)
	delete(m, tfHomeDirectoryDetails)
	if !hasDir && !hasType && !hasDetails {
		return "", false, nil
	}
	dirS, ok := dir.(string)
	if hasDir && !ok {
		return "", true, fmt.Errorf("%s: %v is not a string", tfHomeDirectory, dir)
	}
	typS, ok := typ.(string)
	if hasType && !ok {
		return "", true, fmt.Errorf("%s: %v is not a string", tfHomeDirectoryType, typ)
	}
	switch strings.ToUpper(typS) {
	case "", "PATH":
		if hasDetails {
			return "", true, fmt.Errorf("%s is given with %s PATH: set %s LOGICAL to use it", tfHomeDirectoryDetails, tfHomeDirectoryType, tfHomeDirectoryType)
		}
		if dirS == "" {
			return "", true, fmt.Errorf("%s: empty", tfHomeDirectory)
		}
		home, err := h.underRoot(dirS)
		if err != nil {
			return "", true, fmt.Errorf("%s: %w", tfHomeDirectory, err)
		}
		return home, true, nil
	case "LOGICAL":
		maps, err := parseMappings(details, hasDetails)
		if err != nil {
			return "", true, err
		}
		if len(maps) != 1 || path.Clean(maps[0].Entry) != "/" || (maps[0].Type != "" && !strings.EqualFold(maps[0].Type, "DIRECTORY")) {
			return "", true, fmt.Errorf("%s: %d mappings %s: virtual folders are not supported yet; only one directory mapping with Entry \"/\" (a chroot) is", tfHomeDirectoryDetails, len(maps), entries(maps))
		}
		home, err := h.underRoot(maps[0].Target)
		if err != nil {
			return "", true, fmt.Errorf("%s Target: %w", tfHomeDirectoryDetails, err)
		}
		if hasDir && path.Clean("/"+dirS) != "/" {
			h.log.Debug("idhook: HomeDirectory of a LOGICAL answer ignored: sessions start at /", "user", name, "home_directory", dirS)
		}
		return home, true, nil
	}
	return "", true, fmt.Errorf("%s: %q (want \"PATH\" or \"LOGICAL\")", tfHomeDirectoryType, typS)
}

func parseMappings(details any, given bool) ([]tfMapping, error) {
	if !given {
		return nil, fmt.Errorf("%s LOGICAL needs %s", tfHomeDirectoryType, tfHomeDirectoryDetails)
	}
	raw, ok := details.(string)
	if !ok {
		b, err := json.Marshal(details)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tfHomeDirectoryDetails, err)
		}
		raw = string(b)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	var maps []tfMapping
	if err := dec.Decode(&maps); err != nil {
		return nil, fmt.Errorf("%s: not a list of {\"Entry\", \"Target\"}: %w", tfHomeDirectoryDetails, err)
	}
	return maps, nil
}

func entries(maps []tfMapping) string {
	var es []string
	for _, m := range maps {
		es = append(es, fmt.Sprintf("%q->%q", m.Entry, m.Target))
	}
	return "(" + strings.Join(es, ", ") + ")"
}

// underRoot turns a Transfer Family path into a home relative to the
// storage root, refusing paths outside HomeDirectoryRoot.
func (h *Hook) underRoot(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q is not an absolute path like \"/bucket/home/user\"", p)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return "", fmt.Errorf("%q contains \"..\"", p)
	}
	p, root := path.Clean(p), path.Clean(h.opts.HomeDirectoryRoot)
	switch {
	case p == root:
		return ".", nil // the whole storage root
	case root == "/":
		return p[1:], nil
	case strings.HasPrefix(p, root+"/"):
		return p[len(root)+1:], nil
	}
	return "", fmt.Errorf("%q is outside auth.http.home_directory_root %q, the storage root", p, root)
}

// relativeHome checks a home given in cloudftpd's terms, as the users
// file does: relative to the storage root, without "..".
func relativeHome(home string) (string, error) {
	if strings.HasPrefix(home, "/") || strings.HasPrefix(home, `\`) {
		return "", fmt.Errorf("%q must be relative to the storage root", home)
	}
	if slices.Contains(strings.Split(home, "/"), "..") {
		return "", fmt.Errorf("%q must not contain \"..\"", home)
	}
	return path.Clean(home), nil
}

// decodeOwn decodes the remaining keys of m into a through TOML, so that
// an answer is read by the very rules of the users file: the same key
// names, sizes as numbers or "10GiB", ages as "30d", and nothing unknown.
// JSON has no dates: expires is an RFC 3339 string, or a date
// "2027-06-30" meaning midnight in the server's time zone as in the users
// file.
func decodeOwn(m map[string]any, a *ownAnswer) error {
	doc, err := tomlMap(m)
	if err != nil {
		return err
	}
	if s, ok := doc["expires"].(string); ok {
		t, err := parseExpires(s)
		if err != nil {
			return fmt.Errorf("expires: %w", err)
		}
		doc["expires"] = t
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		return fmt.Errorf("cannot read the answer's keys: %w", err)
	}
	md, err := toml.Decode(buf.String(), a)
	if err != nil {
		// The line numbers are of the re-encoded document: keep the key.
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("key %q: %s", pe.LastKey, pe.Message)
		}
		return errors.New(withoutLine(err.Error()))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return fmt.Errorf("unknown key %q", und[0].String())
	}
	return nil
}

// withoutLine rewrites the TOML decoder's `toml: line 1 (last key "k"):
// msg` as `key "k": msg`: the line is of the re-encoded document, which
// the hook never saw.
func withoutLine(msg string) string {
	const mark = `(last key "`
	i := strings.Index(msg, mark)
	if !strings.HasPrefix(msg, "toml: line ") || i < 0 {
		return msg
	}
	rest := msg[i+len(mark):]
	j := strings.Index(rest, `"):`)
	if j < 0 {
		return msg
	}
	return "key " + strconv.Quote(rest[:j]) + ":" + rest[j+3:]
}

func parseExpires(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (2027-06-30) or an RFC 3339 time (2027-06-30T18:00:00Z)", s)
}

// tomlMap converts decoded JSON to values the TOML encoder writes with the
// types the decoder expects: integers as integers, not strings or floats.
func tomlMap(m map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if v == nil {
			continue
		}
		c, err := tomlValue(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = c
	}
	return out, nil
}

func tomlValue(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		return v.Float64()
	case map[string]any:
		return tomlMap(v)
	case []any:
		out := make([]any, 0, len(v))
		for i, x := range v {
			if x == nil {
				return nil, fmt.Errorf("[%d]: null in a list", i)
			}
			c, err := tomlValue(x)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, c)
		}
		return out, nil
	}
	return v, nil // string, bool
}
