// Package config reads, defaults and validates cloudftpd's TOML
// configuration.
//
// Raw fields mirror the file; Validate fills parsed twins (durations, port
// ranges, address rules) and reports the first bad key by its full name, so
// the rest of the program never parses strings again.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cloudftpd/cloudftpd/internal/bytesize"
	"github.com/cloudftpd/cloudftpd/internal/events"
)

// Policy says whether something is off, offered, or demanded. It is the
// one vocabulary of every setting that can be off, optional or required:
// TLS on the control and data connections, TLS session reuse, PROXY
// protocol, the users file and anonymous logins. Validate resolves each
// setting to a Policy (Listener.ControlTLS, DataTLS, SessionReuse,
// ControlProxy, PassiveProxy; Auth.UsersFilePolicy, AnonymousPolicy), so
// that the server, check-config and doctor read one answer instead of
// re-deriving it from raw keys.
type Policy string

// Policies.
const (
	PolicyOff      Policy = "off"      // not used, not offered
	PolicyOptional Policy = "optional" // offered; the client (or config) chooses
	PolicyRequired Policy = "required" // demanded; refused without it
)

// UnmarshalText implements encoding.TextUnmarshaler: only the three words
// are accepted ("" leaves the default). Keys that allow fewer say so in
// Validate.
func (p *Policy) UnmarshalText(b []byte) error {
	switch v := Policy(b); v {
	case "", PolicyOff, PolicyOptional, PolicyRequired:
		*p = v
		return nil
	}
	return fmt.Errorf("%q (want \"off\", \"optional\" or \"required\")", b)
}

// TLSMode says how a listener uses TLS on the control connection.
type TLSMode string

// TLS modes of a listener.
const (
	TLSOff      TLSMode = "off"      // plain FTP only; AUTH TLS is refused
	TLSExplicit TLSMode = "explicit" // AUTH TLS offered, plain FTP allowed
	TLSRequired TLSMode = "required" // AUTH TLS must come before USER
	TLSImplicit TLSMode = "implicit" // TLS from the first byte (port 990 style)
)

// UnmarshalText implements encoding.TextUnmarshaler, accepting the four
// modes ("" leaves the default, "off").
func (m *TLSMode) UnmarshalText(b []byte) error {
	v := TLSMode(b)
	if v != "" && !v.valid() {
		return fmt.Errorf("%q (want off, explicit, required or implicit)", b)
	}
	*m = v
	return nil
}

func (m TLSMode) valid() bool {
	switch m {
	case TLSOff, TLSExplicit, TLSRequired, TLSImplicit:
		return true
	}
	return false
}

// Control is the mode as a Policy for the control connection: off,
// optional (explicit) or required (required and implicit).
func (m TLSMode) Control() Policy {
	switch m {
	case TLSExplicit:
		return PolicyOptional
	case TLSRequired, TLSImplicit:
		return PolicyRequired
	}
	return PolicyOff
}

// Config is the whole configuration file.
type Config struct {
	Server    Server     `toml:"server"`
	Listeners []Listener `toml:"listener"`
	Storage   Storage    `toml:"storage"`
	Auth      Auth       `toml:"auth"`
	Log       Log        `toml:"log"`
	Metrics   Metrics    `toml:"metrics"`
	Defender  Defender   `toml:"defender"`
	// Events are the sinks that hear what happened (see the README,
	// "Events and audit"); the outbox lives in server.state_dir unless
	// events.state_dir says otherwise.
	Events  events.Config `toml:"events"`
	Control Control       `toml:"control"`
	// API is the operations HTTP API (README "Operations API").
	API API `toml:"api"`
	// Retention is the sweep that deletes files older than the users'
	// retention rules (users file keys; README "Limits and defence").
	Retention Retention `toml:"retention"`
	// Volumes are further storages, by name, that users' virtual folders
	// mount ([[user.folder]] volume = "..."; README "Virtual folders").
	Volumes []Volume `toml:"volume"`

	// Dir is the directory relative paths in the file are resolved against
	// (the config file's directory, or the working directory).
	Dir string `toml:"-"`
	// File is the file Load read, for messages ("" after Parse).
	File string `toml:"-"`
}

// Server holds process-wide settings.
type Server struct {
	// IdleTimeout closes a control connection that sends no command for
	// this long (421).
	IdleTimeout Duration `toml:"idle_timeout"`
	// DataTimeout bounds waiting for a data connection to be opened.
	DataTimeout Duration `toml:"data_timeout"`
	// StallTimeout aborts a transfer that moves no data for this long.
	StallTimeout Duration `toml:"stall_timeout"`
	// LoginTimeout closes a connection that has not logged in by then.
	LoginTimeout Duration `toml:"login_timeout"`
	// StateDir holds what must survive a restart: the defender's bans, the
	// control socket, the event outbox. Relative to the config file;
	// default "state" for a config file, none for a config built in code
	// (bans then stay in memory and there is no control socket).
	StateDir string `toml:"state_dir"`
	// ReplaceGrace is how long an upload that replaces an existing file
	// waits, after its data connection closed, for a sign that the client
	// died mid-upload (its control connection closing too) before the
	// old file is replaced; "0s" still checks once without waiting.
	ReplaceGrace *Duration `toml:"replace_grace"`
	// KeepPartialUploads keeps what arrived of a failed or aborted upload
	// of a new file, so that the client can resume it with REST or APPE
	// (as vsftpd does). A failed upload that would replace a file never
	// touches it. Off by default: a new name appears only complete.
	KeepPartialUploads bool `toml:"keep_partial_uploads"`
	// ShutdownGrace is how long running transfers may finish on SIGTERM,
	// counted from when the listeners close (after DrainDelay).
	ShutdownGrace Duration `toml:"shutdown_grace"`
	// DrainDelay is how long, on SIGTERM, the node goes on accepting
	// connections while /healthz already answers 503 "draining", so that
	// a load balancer stops sending it clients before its listeners close
	// (connections sent to a closed port are refused). Default 0: a
	// single node closes its listeners at once. Behind a balancer: its
	// health-check interval times its unhealthy threshold, and a little.
	DrainDelay Duration `toml:"drain_delay"`
	// ControlKeepalive is the TCP keepalive of control connections: the
	// idle time before the first probe and the time between probes
	// (DefaultControlKeepalive; whole seconds, rounded up; "0s" turns
	// keepalive off). A control connection is silent while its transfer
	// runs, and balancers and NAT gateways drop flows that are idle too
	// long (an AWS NLB after 350 s).
	ControlKeepalive *Duration `toml:"control_keepalive"`
	// MaxSessions limits concurrent control connections (0: no limit).
	MaxSessions int `toml:"max_sessions"`
	// MaxSessionsPerIP limits concurrent connections from one address.
	MaxSessionsPerIP int `toml:"max_sessions_per_ip"`
	// MaxLoginFailures closes a session after this many failed logins.
	MaxLoginFailures int `toml:"max_login_failures"`
	// LoginFailureDelay is waited before answering a failed login.
	LoginFailureDelay Duration `toml:"login_failure_delay"`
	// Banner is the text of the 220 greeting.
	Banner string `toml:"banner"`
	// MaxCommandsPerSecond paces each session's commands: after a burst
	// of CommandBurst, the next command is read only when its turn comes
	// (default DefaultCommandRate; 0 turns pacing off). CommandBurst
	// defaults to one second's worth.
	MaxCommandsPerSecond *int `toml:"max_commands_per_second"`
	CommandBurst         int  `toml:"command_burst"`
	// UploadChecksum is "sha256" (the default): the SHA-256 of every
	// whole upload is computed as it arrives, logged, put in its event
	// and stored with the file; or "off", which keeps plain local
	// uploads zero-copy (splice).
	UploadChecksum string `toml:"upload_checksum"`
	// HashMaxSize is the largest file HASH and XSHA256/XSHA1/XMD5/XCRC
	// hash on request, when no SHA-256 is stored with it or another
	// algorithm is asked for (default 1GiB; "0" computes nothing).
	HashMaxSize *ByteSize `toml:"hash_max_size"`
	// HashRate is how many bytes a second one session may hash on
	// request (default 128MiB; "0" is no limit).
	HashRate *ByteSize `toml:"hash_rate"`
}

// ChecksumTagsOn is storage.checksum_tags with its default applied.
func (st *Storage) ChecksumTagsOn() bool {
	if st.ChecksumTags != nil {
		return *st.ChecksumTags
	}
	return st.Endpoint == ""
}

// Defaults of the checksum keys.
const (
	DefaultHashMaxSize ByteSize = 1 << 30
	DefaultHashRate    ByteSize = 128 << 20
)

// UploadChecksums reports whether uploads are hashed as they arrive.
func (s *Server) UploadChecksums() bool { return s.UploadChecksum != "off" }

// HashLimits returns hash_max_size and hash_rate, defaults applied.
func (s *Server) HashLimits() (maxSize, rate int64) {
	maxSize, rate = int64(DefaultHashMaxSize), int64(DefaultHashRate)
	if s.HashMaxSize != nil {
		maxSize = int64(*s.HashMaxSize)
	}
	if s.HashRate != nil {
		rate = int64(*s.HashRate)
	}
	return maxSize, rate
}

// DefaultCommandRate is server.max_commands_per_second's default: above
// what the fastest legitimate client does (the small-file benchmark runs
// about 4,000 commands a second per session on loopback, 2 per file; see
// docs/BENCHMARKS.md), so that pacing never slows a real client, while a
// session pipelining NOOPs is held to this many answers a second.
const DefaultCommandRate = 10000

// CommandRate is the pace of a session's commands and the burst ahead of
// it; a rate of 0 does not pace.
func (s *Server) CommandRate() (perSecond, burst int) {
	perSecond = DefaultCommandRate
	if s.MaxCommandsPerSecond != nil {
		perSecond = *s.MaxCommandsPerSecond
	}
	burst = s.CommandBurst
	if burst == 0 {
		burst = perSecond
	}
	return perSecond, burst
}

// Listener is one control-connection address with its data-connection
// policy.
type Listener struct {
	// Address is host:port to listen on, e.g. "0.0.0.0:21" or "[::]:21".
	Address string `toml:"address"`
	// PassivePorts is "min-max"; empty lets the kernel pick any port.
	PassivePorts string `toml:"passive_ports"`
	// Passive rules choose the address sent in PASV replies by client
	// network; the first match wins. None means "control".
	Passive []PassiveRule `toml:"passive"`
	// ActiveMode allows PORT/EPRT (to the client's own address only).
	ActiveMode *bool `toml:"active_mode"`
	// TLS is the control-connection TLS mode.
	TLS TLSMode `toml:"tls"`
	// TLSCert and TLSKey are PEM files (certificate chain, private key);
	// required unless tls = "off". Reloaded on SIGHUP.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// TLSData says whether data connections must be protected (PROT P):
	// "required" (default for tls = "required" and "implicit") or
	// "optional" (default for "explicit"). As written in the file; DataTLS
	// is the resolved policy.
	TLSData Policy `toml:"tls_data"`
	// TLSSessionReuse "required" (the default) refuses protected data
	// connections that do not resume the control connection's TLS session
	// (vsftpd's require_ssl_reuse); "optional" accepts them. As written;
	// SessionReuse is the resolved policy.
	TLSSessionReuse Policy `toml:"tls_session_reuse"`
	// TLSAllowCCC permits CCC (back to a clear control connection after
	// login, so a NAT's FTP helper can read PASV replies again).
	TLSAllowCCC bool `toml:"tls_allow_ccc"`
	// ProxyProtocol expects a PROXY protocol (v1 or v2) header on control
	// connections from ProxyTrusted sources; the client address in it is
	// used for passive rules, the data-connection check, logs and limits.
	ProxyProtocol bool `toml:"proxy_protocol"`
	// PassiveProxyProtocol expects PROXY headers on passive data
	// connections from ProxyTrusted sources too (only when the balancer
	// also carries the passive ports).
	PassiveProxyProtocol bool `toml:"passive_proxy_protocol"`
	// ProxyTrusted lists the balancers allowed to send PROXY headers.
	ProxyTrusted []string `toml:"proxy_trusted"`
	// PublicPort is the control port clients connect to when something
	// in front maps it onto Address's port (a Kubernetes Service, a
	// container port mapping, a balancer listening on 21 for a server on
	// 2121); 0 means the same port. It changes nothing the server does:
	// doctor and firewall name it.
	PublicPort uint16 `toml:"public_port"`
	// BinaryOnly transfers every file unchanged: TYPE A is accepted (200)
	// but converts nothing, for partners whose clients send binaries as
	// ASCII. Users can have it too (binary_only in the users file).
	BinaryOnly bool `toml:"binary_only"`
	// UploadRate and DownloadRate limit the bandwidth of all the
	// listener's sessions together, in bytes per second ("10MiB"); 0 (the
	// default) limits nothing. A reload changes them at once, for running
	// transfers too.
	UploadRate   ByteSize `toml:"upload_rate"`
	DownloadRate ByteSize `toml:"download_rate"`

	addr         netip.AddrPort
	proxyTrusted []netip.Prefix
	minPort      uint16
	maxPort      uint16
	isActive     bool
	// Resolved by Validate from the raw keys above and their defaults.
	dataTLS, sessionReuse      Policy
	controlProxy, passiveProxy Policy
}

// PassiveRule maps client networks to the address advertised to them.
type PassiveRule struct {
	Clients []string `toml:"clients"`
	// Address is "control" (the local address the client connected to),
	// a literal IPv4 address, a DNS name (re-resolved periodically), or
	// "aws" (the Elastic IP from EC2 instance metadata).
	Address string `toml:"address"`
	// Ports is the listener's passive range as these clients must
	// reach it, when something between them and the server maps ports
	// (a Kubernetes Service, a container port mapping, a balancer
	// forwarding a public range onto another): "30000-30099" for
	// passive_ports = "50000-50099". Same length; empty means the ports
	// the server binds.
	Ports string `toml:"ports"`

	clients    []netip.Prefix
	kind       AddressKind
	portOffset int
}

// PortOffset is what to add to a bound passive port to get the port
// these clients connect to (0 without Ports).
func (r *PassiveRule) PortOffset() int { return r.portOffset }

// AddressKind says where a passive rule's address comes from.
type AddressKind int

// Address kinds of a passive rule.
const (
	AddressControl AddressKind = iota
	AddressLiteral
	AddressDNS
	AddressAWS
)

// Storage selects and configures the file store.
type Storage struct {
	Backend string `toml:"backend"` // "local" or "s3"
	Root    string `toml:"root"`    // local: directory holding all homes

	// S3: each user's home is a key prefix under Prefix in Bucket.
	// Credentials come from the standard AWS chain (environment, shared
	// config, EC2 instance role), never from this file.
	Bucket    string `toml:"bucket"`
	Prefix    string `toml:"prefix"`
	Region    string `toml:"region"`
	Endpoint  string `toml:"endpoint"`   // S3-compatible servers
	PathStyle bool   `toml:"path_style"` // bucket in the path, not the host name
	// PartSize is the multipart upload part size ("16MiB"); it grows
	// for very large uploads.
	PartSize ByteSize `toml:"part_size"`
	// Concurrency is how many parts of one upload are sent at once.
	Concurrency int `toml:"concurrency"`
	// UploadMemory bounds the part buffers of all uploads together
	// (default 256MiB, at least one part); uploads wait for room.
	UploadMemory ByteSize `toml:"upload_memory"`
	// RequestTimeout fails an S3 request that sends and receives nothing
	// for this long (default 30s), so a hung endpoint gets an answer.
	RequestTimeout Duration `toml:"request_timeout"`
	// ChecksumTags stores the SHA-256 of multipart uploads in object tags
	// (see the README, "Checksums"). Default: on for AWS (no endpoint),
	// off with an endpoint, where a server without tagging support could
	// take the request for an upload; set true for versitygw or MinIO.
	ChecksumTags *bool `toml:"checksum_tags"`
}

// setDefaults fills in the backend ("local") and the S3 defaults.
func (st *Storage) setDefaults() {
	if st.Backend == "" {
		st.Backend = "local"
	}
	if st.Backend == "s3" {
		if st.UploadMemory == 0 {
			st.UploadMemory = max(defaultUploadMemory, st.PartSize)
		}
		if st.RequestTimeout == 0 {
			st.RequestTimeout = Duration(defaultRequestTimeout)
		}
	}
}

// validate checks a [storage] or [[volume]] table; key prefixes the
// errors ("storage", "volume[0]").
func (st *Storage) validate(key string) error {
	switch {
	case st.UploadMemory < 0:
		return fmt.Errorf("%s.upload_memory: must not be negative", key)
	case st.RequestTimeout < 0:
		return fmt.Errorf("%s.request_timeout: must not be negative", key)
	}
	switch st.Backend {
	case "local":
		if st.Root == "" {
			return fmt.Errorf("%s.root: required for the local backend", key)
		}
	case "s3":
		switch {
		case st.Bucket == "":
			return fmt.Errorf("%s.bucket: required for the s3 backend", key)
		case st.PartSize != 0 && (st.PartSize < 5<<20 || st.PartSize > 5<<30):
			return fmt.Errorf("%s.part_size: %d bytes is outside S3's 5MiB-5GiB part limits", key, st.PartSize)
		case st.Concurrency < 0:
			return fmt.Errorf("%s.concurrency: must not be negative", key)
		case st.UploadMemory != 0 && st.UploadMemory < cmp.Or(st.PartSize, defaultPartSize):
			return fmt.Errorf("%s.upload_memory: %d bytes is less than one part (%s.part_size, %d bytes): no upload could fill a part", key, st.UploadMemory, key, cmp.Or(st.PartSize, defaultPartSize))
		case strings.HasPrefix(st.Prefix, "/") || slices.Contains(strings.Split(st.Prefix, "/"), ".."):
			return fmt.Errorf("%s.prefix: %q must be relative, without \"..\"", key, st.Prefix)
		}
	default:
		return fmt.Errorf("%s.backend: %q is not a backend (want \"local\" or \"s3\")", key, st.Backend)
	}
	return nil
}

// Volume is a [[volume]] table: a named storage with the keys of
// [storage] (backend, root or bucket and prefix, ...). A local volume's
// root, like storage.root, is relative to the config file.
type Volume struct {
	Name    string `toml:"name"`
	Storage `toml:",inline"`
}

// Defaults of the S3 settings, applied when the backend is "s3".
const (
	defaultPartSize       = 16 << 20
	defaultUploadMemory   = 256 << 20
	defaultRequestTimeout = 30 * time.Second
)

// ByteSize is a size written as "16MiB", "5MB", "1GiB" or a number of
// bytes.
type ByteSize = bytesize.Size

// Auth configures users.
type Auth struct {
	// UsersFile is the users file; required unless Anonymous (an
	// anonymous-only server has none).
	UsersFile string `toml:"users_file"`
	// Anonymous allows read-only "anonymous"/"ftp" logins.
	Anonymous bool `toml:"anonymous"`
	// AnonymousHome is the anonymous users' home, relative to the storage root.
	AnonymousHome string `toml:"anonymous_home"`
	// Store is where users are kept: StoreFile (the default, users_file),
	// StorePostgres ([auth.postgres]), StoreHTTP, an identity hook
	// asked at every login ([auth.http]), or StoreSystem, the machine's
	// own accounts ([auth.system]).
	Store string `toml:"store"`
	// Postgres is the user database of store = "postgres".
	Postgres PostgresUsers `toml:"postgres"`
	// HTTP is the identity hook of store = "http".
	HTTP HTTPHook `toml:"http"`
	// System is the system accounts of store = "system".
	System SystemUsers `toml:"system"`

	usersFile, anonymous Policy // resolved by Validate
}

// The user stores of auth.store.
const (
	StoreFile     = "file"
	StorePostgres = "postgres"
	StoreHTTP     = "http"
	StoreSystem   = "system"
)

// SystemUsers is [auth.system]: the machine's accounts, from the passwd
// and shadow files, as vsftpd's local users (README "System accounts").
// Paths are relative to the config file.
type SystemUsers struct {
	// PasswdFile, ShadowFile and GroupFile default to /etc/passwd,
	// /etc/shadow and /etc/group. Reading the shadow file takes root or
	// the shadow group.
	PasswdFile string `toml:"passwd_file"`
	ShadowFile string `toml:"shadow_file"`
	GroupFile  string `toml:"group_file"`
	// MinUID is the lowest uid that may log in (default 1000), so that
	// root and the daemons' accounts cannot.
	MinUID *int `toml:"min_uid"`
	// FTPUsersFile lists names that may never log in, one a line, as
	// vsftpd's and every other ftpd's /etc/ftpusers (the default; ""
	// reads none). A missing default file is an empty list.
	FTPUsersFile *string `toml:"ftpusers_file"`
	// UserlistFile, when set, is vsftpd's userlist_file: with
	// UserlistDeny (the default, as vsftpd's) its names are refused,
	// without it only its names may log in.
	UserlistFile string `toml:"userlist_file"`
	UserlistDeny *bool  `toml:"userlist_deny"`
	// Users and Groups, when either is set, allow only the accounts
	// named or members of a group named (primary or in GroupFile).
	Users  []string `toml:"users"`
	Groups []string `toml:"groups"`
	// Home is where a user is jailed: HomePasswd, the passwd home
	// directory, which must lie inside storage.root (the default with
	// local storage); or HomeName, the user name under storage.root
	// (the default, and the only choice, with S3).
	Home string `toml:"home"`
	// Permissions of every system user (default ["all"]).
	Permissions []string `toml:"permissions"`
	// AllowMD5Crypt accepts the legacy MD5-crypt ($1$) hashes, refused
	// by default as too weak.
	AllowMD5Crypt bool `toml:"allow_md5crypt"`
}

// The homes of [auth.system] home.
const (
	HomePasswd = "passwd"
	HomeName   = "name"
)

// Files are the passwd, shadow and group files with their defaults.
func (s *SystemUsers) Files() (passwd, shadow, group string) {
	return cmp.Or(s.PasswdFile, "/etc/passwd"), cmp.Or(s.ShadowFile, "/etc/shadow"), cmp.Or(s.GroupFile, "/etc/group")
}

// FTPUsers is ftpusers_file with its default; "" reads none.
func (s *SystemUsers) FTPUsers() string {
	if s.FTPUsersFile == nil {
		return DefaultFTPUsersFile
	}
	return *s.FTPUsersFile
}

// DefaultFTPUsersFile is [auth.system] ftpusers_file's default.
const DefaultFTPUsersFile = "/etc/ftpusers"

// LowestUID is min_uid with its default.
func (s *SystemUsers) LowestUID() int {
	if s.MinUID == nil {
		return 1000
	}
	return *s.MinUID
}

// DenyUserlist is userlist_deny with its default (true, as vsftpd's).
func (s *SystemUsers) DenyUserlist() bool { return s.UserlistDeny == nil || *s.UserlistDeny }

// PostgresUsers is [auth.postgres]: users in a PostgreSQL database shared
// by every node (README "Users in PostgreSQL").
type PostgresUsers struct {
	// DSN is a libpq connection string or URL. Its password is better
	// left out of the config: PGPASSWORD, a ~/.pgpass (PGPASSFILE) or
	// PasswordFile supply it instead.
	DSN string `toml:"dsn"`
	// PasswordFile, when set, holds the password (first line), relative
	// to the config file; it wins over a password in the DSN.
	PasswordFile string `toml:"password_file"`
	// PollInterval is how often a node checks the users table for
	// changes besides LISTEN/NOTIFY (default 5s), and so also bounds how
	// long a database that stops answering goes unnoticed.
	PollInterval Duration `toml:"poll_interval"`
	// Timeout bounds each query and connection attempt (default 5s).
	Timeout Duration `toml:"timeout"`
}

// PollEvery is PollInterval with its default.
func (p *PostgresUsers) PollEvery() time.Duration {
	if p.PollInterval > 0 {
		return p.PollInterval.D()
	}
	return 5 * time.Second
}

// QueryTimeout is Timeout with its default.
func (p *PostgresUsers) QueryTimeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout.D()
	}
	return 5 * time.Second
}

// HTTPHook is [auth.http]: a service that answers each login with the
// user's home, permissions and limits, or a refusal (README "Users from an
// HTTP identity hook").
type HTTPHook struct {
	// URL receives a POST per login (http or https).
	URL string `toml:"url"`
	// Timeout bounds one call, connecting included (default 5s); a hook
	// slower than that fails the login with 421.
	Timeout Duration `toml:"timeout"`
	// CacheTTL is how long an accepted login is remembered, so the same
	// client logging in again within it is not sent to the hook (default
	// 60s; 0 asks the hook every time).
	CacheTTL *Duration `toml:"cache_ttl"`
	// Secret, when set, signs every request as webhooks are signed
	// (X-Cloudftpd-Timestamp and X-Cloudftpd-Signature headers).
	Secret string `toml:"secret"`
	// BearerToken, when set, is sent as "Authorization: Bearer <token>".
	BearerToken string `toml:"bearer_token"`
	// ServerID is sent with every request as server_id and serverId, so
	// one hook can serve several servers (default: the host name).
	ServerID string `toml:"server_id"`
	// DefaultPermissions are the permissions of an answer that gives none
	// (a Transfer Family answer never does); default ["all"].
	DefaultPermissions []string `toml:"default_permissions"`
	// HomeDirectoryRoot is the path, in Transfer Family's HomeDirectory
	// and Target, of cloudftpd's storage root: "/bucket/prefix" of the
	// S3 backend by default, "/" for local storage.
	HomeDirectoryRoot string `toml:"home_directory_root"`
}

// DefaultHookTimeout and DefaultHookCacheTTL are [auth.http]'s defaults.
const (
	DefaultHookTimeout  = 5 * time.Second
	DefaultHookCacheTTL = 60 * time.Second
)

// CacheTTLDuration is cache_ttl, or its default when unset.
func (h *HTTPHook) CacheTTLDuration() time.Duration {
	if h.CacheTTL == nil {
		return DefaultHookCacheTTL
	}
	return h.CacheTTL.D()
}

// UsersFilePolicy is PolicyRequired when users_file is set (the file must
// load; an empty one is valid) and PolicyOff for an anonymous-only server.
func (a *Auth) UsersFilePolicy() Policy { return a.usersFile }

// AnonymousPolicy is PolicyOff without anonymous logins, PolicyOptional
// when they are allowed beside the users file's, and PolicyRequired when
// they are the only logins (no users file).
func (a *Auth) AnonymousPolicy() Policy { return a.anonymous }

// Log configures log output.
type Log struct {
	Format string `toml:"format"` // "text" or "json"
	Level  string `toml:"level"`  // "debug", "info", "warn", "error"
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	// Address is host:port to serve /metrics on over plain HTTP, e.g.
	// "127.0.0.1:9121"; empty turns it off.
	Address string `toml:"address"`
}

// Defender scores client addresses and bans the ones that attack (see the
// README, "Limits and defence"). Zero numbers take the defender's
// defaults.
type Defender struct {
	// Enabled is true unless set to false.
	Enabled *bool `toml:"enabled"`
	// Threshold points within Window ban an address for BanTime, each
	// further ban twice as long up to MaxBanTime.
	Threshold  int      `toml:"threshold"`
	Window     Duration `toml:"window"`
	BanTime    Duration `toml:"ban_time"`
	MaxBanTime Duration `toml:"max_ban_time"`
	// Allow lists networks never scored nor banned; Deny networks always
	// refused. The longest matching prefix decides.
	Allow []string `toml:"allow"`
	Deny  []string `toml:"deny"`
	// StateFile keeps bans across restarts, relative to server.state_dir;
	// "" keeps them in memory only. Default "defender.json".
	StateFile *string `toml:"state_file"`
	// MaxTracked and MaxBans bound the memory the defender uses.
	MaxTracked int `toml:"max_tracked"`
	MaxBans    int `toml:"max_bans"`
	// Weights are the points per offence, by name (login_failed,
	// unknown_user, bad_command_before_login, tls_handshake_failed,
	// no_command); unset ones keep their defaults.
	Weights map[string]int `toml:"weights"`

	allow, deny []netip.Prefix
}

func (d *Defender) validate() error {
	var err error
	if d.allow, err = parsePrefixes(d.Allow); err != nil {
		return fmt.Errorf("allow: %w", err)
	}
	if d.deny, err = parsePrefixes(d.Deny); err != nil {
		return fmt.Errorf("deny: %w", err)
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"threshold", d.Threshold}, {"max_tracked", d.MaxTracked}, {"max_bans", d.MaxBans}} {
		if n.v < 0 {
			return fmt.Errorf("%s: must not be negative", n.key)
		}
	}
	for _, v := range []struct {
		key string
		v   Duration
	}{{"window", d.Window}, {"ban_time", d.BanTime}, {"max_ban_time", d.MaxBanTime}} {
		if v.v < 0 {
			return fmt.Errorf("%s: must not be negative", v.key)
		}
	}
	for k, w := range d.Weights {
		if w < 0 {
			return fmt.Errorf("weights.%s: must not be negative", k)
		}
	}
	return nil
}

// parsePrefixes reads CIDR prefixes or single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// On reports whether the defender runs.
func (d *Defender) On() bool { return d.Enabled == nil || *d.Enabled }

// AllowPrefixes and DenyPrefixes are the parsed lists.
func (d *Defender) AllowPrefixes() []netip.Prefix { return d.allow }

// DenyPrefixes is the parsed deny list.
func (d *Defender) DenyPrefixes() []netip.Prefix { return d.deny }

// DefaultAllow is defender.allow when unset: the machine itself, whose
// scripts and monitoring should never lock themselves out.
var DefaultAllow = []string{"127.0.0.0/8", "::1/128"}

// Control is the local control channel of a running server (cloudftpd
// ban, sessions, reload): HTTP on a Unix socket whose file permissions say
// who may use it.
type Control struct {
	// Socket is the socket's path, relative to server.state_dir; default
	// "control.sock"; "off" disables it.
	Socket string `toml:"socket"`
}

// API is the operations HTTP API: its own listener, off by default.
type API struct {
	// Enabled turns the API on (default false).
	Enabled bool `toml:"enabled"`
	// Address is host:port; default DefaultAPIAddress (loopback) when
	// enabled.
	Address string `toml:"address"`
	// TLSCert and TLSKey are PEM files, as for FTPS; both or neither.
	// Without them the API is plain HTTP, which only suits loopback or a
	// private admin network: tokens travel in every request.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// TokensFile holds the API tokens' hashes (cloudftpd api token add);
	// relative to server.state_dir, or to the config file's directory
	// without one; default "api-tokens.toml".
	TokensFile string `toml:"tokens_file"`
	// AdminsFile holds the console accounts' argon2id hashes (cloudftpd
	// admin add), relative to the config file's directory; default
	// "api-admins.toml".
	AdminsFile string `toml:"admins_file"`
}

// DefaultAPIAddress is api.address when the API is enabled without one.
const DefaultAPIAddress = "127.0.0.1:8021"

// TLS reports whether the API is served over TLS.
func (a *API) TLS() bool { return a.TLSCert != "" }

func (a *API) validate() error {
	if !a.Enabled {
		return nil
	}
	if _, err := parseListenAddr(a.Address); err != nil {
		return fmt.Errorf("address %q: %v", a.Address, err)
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return errors.New("tls_cert, tls_key: set both for HTTPS, or neither")
	}
	return nil
}

// APITokensFile is the API tokens file's path.
func (c *Config) APITokensFile() string {
	if p := c.StatePath(c.API.TokensFile); p != "" {
		return p
	}
	return c.Path(c.API.TokensFile)
}

// APIAdminsFile is the console accounts file's path.
func (c *Config) APIAdminsFile() string { return c.Path(c.API.AdminsFile) }

// Retention configures the background sweep that deletes expired files.
// The ages themselves are per user and per directory, in the users file;
// without any, the sweep finds nothing to do.
type Retention struct {
	// Interval is the time between sweeps (default 1h); the first runs a
	// minute after start, or after Interval when that is shorter.
	Interval Duration `toml:"interval"`
	// MaxFiles bounds the directory entries one sweep looks at (default
	// 100000); the next sweep carries on where it stopped.
	MaxFiles int `toml:"max_files"`
}

// Retention defaults.
const (
	DefaultRetentionInterval = time.Hour
	DefaultRetentionMaxFiles = 100000
)

// StatePath resolves a path under server.state_dir; "" when it is
// relative and there is no state directory.
func (c *Config) StatePath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	if c.Server.StateDir == "" {
		return ""
	}
	return filepath.Join(c.Path(c.Server.StateDir), p)
}

// ControlSocket is the control socket's path, or "" when it is off.
func (c *Config) ControlSocket() string {
	if c.Control.Socket == "off" {
		return ""
	}
	return c.StatePath(c.Control.Socket)
}

// DefenderStateFile is the defender's state file, or "" to keep bans in
// memory.
func (c *Config) DefenderStateFile() string {
	if c.Defender.StateFile == nil || *c.Defender.StateFile == "" {
		return ""
	}
	return c.StatePath(*c.Defender.StateFile)
}

// Duration is a time.Duration written as "5m" or "30s" in TOML.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func ptrValue[T any](p *T) T {
	var v T
	if p != nil {
		v = *p
	}
	return v
}

// DefaultReplaceGrace is server.replace_grace's default: long enough for
// the second FIN of a killed client on a busy machine, short enough that
// replacing a file costs no noticeable time.
const DefaultReplaceGrace = 50 * time.Millisecond

// ReplaceGraceDuration is server.replace_grace, or its default when unset
// (a config built in code rather than parsed).
func (s *Server) ReplaceGraceDuration() time.Duration {
	if s.ReplaceGrace == nil {
		return DefaultReplaceGrace
	}
	return s.ReplaceGrace.D()
}

// DefaultControlKeepalive is server.control_keepalive's default: Go's
// own default for accepted connections (what cloudftpd did before the key
// existed), far below the idle timeouts of balancers and NAT gateways
// (AWS NLB and NAT gateway: 350 s).
const DefaultControlKeepalive = 15 * time.Second

// maxKeepalive is the largest TCP_KEEPIDLE/TCP_KEEPINTVL Linux accepts.
const maxKeepalive = 32767 * time.Second

// ControlKeepaliveDuration is server.control_keepalive, or its default
// when unset (a config built in code); 0 means off.
func (s *Server) ControlKeepaliveDuration() time.Duration {
	if s.ControlKeepalive == nil {
		return DefaultControlKeepalive
	}
	return s.ControlKeepalive.D()
}

// Default returns the built-in configuration used when no file is given: one
// plain listener on :2121, local storage under ./cloudftpd-data, and the
// users in usersFile (serve's demo writes one there).
func Default(usersFile string) *Config {
	c := &Config{
		Listeners: []Listener{{Address: ":2121"}},
		Storage:   Storage{Backend: "local", Root: "cloudftpd-data"},
		Auth:      Auth{UsersFile: usersFile},
	}
	if err := c.Validate(); err != nil {
		panic("config: built-in default is invalid: " + err.Error())
	}
	return c
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.Dir, c.File = abs, path
	if c.Server.StateDir == "" {
		// A config file keeps its state beside it; a config built in
		// code (tests, the built-in demo) has none unless it says so.
		c.Server.StateDir = DefaultStateDir
	}
	// Validated once the file's directory is known: relative paths
	// (sinks, the state directory) are resolved against it.
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// SharedOutbox reports whether the event outbox is in PostgreSQL
// ([events] outbox, "auto" choosing it with auth.store = "postgres"),
// shared by the nodes on that database, rather than in the state
// directory.
func (c *Config) SharedOutbox() bool {
	switch c.Events.Outbox {
	case events.OutboxPostgres:
		return true
	case events.OutboxLocal:
		return false
	}
	return c.Auth.Store == StorePostgres
}

// DefaultStateDir is server.state_dir for a config file that sets none.
const DefaultStateDir = "state"

// indexedKey names key the way validation errors do, with the index of
// each array table it is in ("listener[1].passive[0].adress"). The TOML
// decoder's keys carry no index, but keys lists every key in file order,
// each [[table]] header included, so counting headers before key gives it.
func indexedKey(keys []toml.Key, key toml.Key) string {
	counts := map[string]int{} // array-table path -> index of the current element
	for _, k := range keys {
		p := k.String()
		if p == "listener" || p == "listener.passive" {
			counts[p]++
			if p == "listener" {
				delete(counts, "listener.passive")
			}
		}
		if p == key.String() {
			break
		}
	}
	var b strings.Builder
	for i, part := range key {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(part)
		if n := counts[key[:i+1].String()]; n > 0 && i < len(key)-1 {
			fmt.Fprintf(&b, "[%d]", n-1)
		}
	}
	return b.String()
}

// Parse decodes and validates a configuration; relative paths stay relative
// to the working directory.
func Parse(data []byte) (*Config, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode reads a configuration without validating it.
func decode(data []byte) (*Config, error) {
	// Listeners are decoded one by one, so that a bad value in one (a tls
	// mode, a policy) is reported with its index: the decoder names keys
	// without one ("listener.tls").
	var file struct {
		Config
		Listeners []toml.Primitive `toml:"listener"`
	}
	md, err := toml.Decode(string(data), &file)
	if err != nil {
		return nil, err
	}
	c := &file.Config
	c.Listeners = make([]Listener, len(file.Listeners))
	for i, p := range file.Listeners {
		if err := md.PrimitiveDecode(p, &c.Listeners[i]); err != nil {
			return nil, listenerValueError(i, err)
		}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("unknown key %q", indexedKey(md.Keys(), und[0]))
	}
	return c, nil
}

// listenerValueError names the key of a value listener i could not
// decode, with the index: "listener[1].tls: ...".
func listenerValueError(i int, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) && strings.HasPrefix(pe.LastKey, "listener.") {
		return fmt.Errorf("listener[%d].%s: %s", i, strings.TrimPrefix(pe.LastKey, "listener."), pe.Message)
	}
	return fmt.Errorf("listener[%d]: %w", i, err)
}

// applyDefaults fills every unset key that has a default of its own.
// Defaults that depend on other keys (tls_data on tls) are not written
// back: Validate resolves them each time, so a config changed in code and
// validated again never keeps a default derived from an old value.
func (c *Config) applyDefaults() {
	s := &c.Server
	if c.Control.Socket == "" {
		c.Control.Socket = "control.sock"
	}
	if c.API.Enabled && c.API.Address == "" {
		c.API.Address = DefaultAPIAddress
	}
	if c.API.AdminsFile == "" {
		c.API.AdminsFile = "api-admins.toml"
	}
	if c.API.TokensFile == "" {
		c.API.TokensFile = "api-tokens.toml"
	}
	if c.Defender.Allow == nil {
		c.Defender.Allow = DefaultAllow
	}
	if c.Defender.StateFile == nil {
		f := "defender.json"
		c.Defender.StateFile = &f
	}
	setDur := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	setDur(&s.IdleTimeout, 5*time.Minute)
	setDur(&s.DataTimeout, 30*time.Second)
	setDur(&s.StallTimeout, 5*time.Minute)
	setDur(&s.LoginTimeout, time.Minute)
	setDur(&s.ShutdownGrace, 30*time.Second)
	setDur(&s.LoginFailureDelay, time.Second)
	setDur(&c.Retention.Interval, DefaultRetentionInterval)
	if c.Retention.MaxFiles == 0 {
		c.Retention.MaxFiles = DefaultRetentionMaxFiles
	}
	if s.ReplaceGrace == nil {
		d := Duration(DefaultReplaceGrace)
		s.ReplaceGrace = &d
	}
	if s.ControlKeepalive == nil {
		d := Duration(DefaultControlKeepalive)
		s.ControlKeepalive = &d
	}
	if s.MaxLoginFailures == 0 {
		s.MaxLoginFailures = 3
	}
	if s.Banner == "" {
		s.Banner = "cloudftpd ready"
	}
	if s.UploadChecksum == "" {
		s.UploadChecksum = "sha256"
	}
	c.Storage.setDefaults()
	for i := range c.Volumes {
		c.Volumes[i].setDefaults()
	}
	if c.Auth.AnonymousHome == "" {
		c.Auth.AnonymousHome = "pub"
	}
	if c.Auth.Store == "" {
		c.Auth.Store = StoreFile
	}
	if sys := &c.Auth.System; c.Auth.Store == StoreSystem {
		if sys.Home == "" {
			sys.Home = HomePasswd
			if c.Storage.Backend == "s3" {
				sys.Home = HomeName
			}
		}
		if sys.Permissions == nil {
			sys.Permissions = []string{"all"}
		}
	}
	if h := &c.Auth.HTTP; c.Auth.Store == StoreHTTP {
		setDur(&h.Timeout, DefaultHookTimeout)
		if h.ServerID == "" {
			h.ServerID, _ = os.Hostname()
		}
		if h.DefaultPermissions == nil {
			h.DefaultPermissions = []string{"all"}
		}
		if h.HomeDirectoryRoot == "" {
			h.HomeDirectoryRoot = "/"
			if st := c.Storage; st.Backend == "s3" {
				h.HomeDirectoryRoot = path.Join("/", st.Bucket, st.Prefix)
			}
		}
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	for i := range c.Listeners {
		if l := &c.Listeners[i]; l.TLS == "" {
			l.TLS = TLSOff
		}
	}
	if c.Dir == "" {
		c.Dir, _ = os.Getwd()
	}
}

// Validate applies the defaults, checks every field and fills the parsed
// forms and resolved policies. Errors name the offending key, e.g.
// `listener[1].passive_ports: "900-800": min > max`. It may be called
// again after the config was changed in code.
func (c *Config) Validate() error {
	c.applyDefaults()
	if err := c.Defender.validate(); err != nil {
		return fmt.Errorf("defender.%w", err)
	}
	if c.Events.StateDir == "" {
		c.Events.StateDir = c.StatePath(".")
	} else {
		c.Events.StateDir = c.Path(c.Events.StateDir)
	}
	for i := range c.Events.Sinks {
		if p := c.Events.Sinks[i].Path; p != "" {
			c.Events.Sinks[i].Path = c.Path(p)
		}
	}
	if err := c.Events.Validate(); err != nil {
		return fmt.Errorf("events.%w", err)
	}
	if c.Events.Outbox == events.OutboxPostgres && c.Auth.Store != StorePostgres {
		return fmt.Errorf("events.outbox: %q needs auth.store = %q (the outbox is in its database)", c.Events.Outbox, StorePostgres)
	}
	if err := c.API.validate(); err != nil {
		return fmt.Errorf("api.%w", err)
	}
	if c.Metrics.Address != "" {
		if _, err := parseListenAddr(c.Metrics.Address); err != nil {
			return fmt.Errorf("metrics.address %q: %v", c.Metrics.Address, err)
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{
		{"server.idle_timeout", c.Server.IdleTimeout},
		{"server.data_timeout", c.Server.DataTimeout},
		{"server.stall_timeout", c.Server.StallTimeout},
		{"server.login_timeout", c.Server.LoginTimeout},
		{"server.shutdown_grace", c.Server.ShutdownGrace},
		{"server.drain_delay", c.Server.DrainDelay},
		{"server.control_keepalive", Duration(c.Server.ControlKeepaliveDuration())},
		{"server.login_failure_delay", c.Server.LoginFailureDelay},
		{"server.replace_grace", Duration(c.Server.ReplaceGraceDuration())},
		{"retention.interval", c.Retention.Interval},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s: must not be negative", d.key)
		}
	}
	if c.Server.ControlKeepaliveDuration() > maxKeepalive {
		return fmt.Errorf("server.control_keepalive: %v is over the kernel's limit of %v", c.Server.ControlKeepaliveDuration(), maxKeepalive)
	}
	for _, n := range []struct {
		key string
		v   int
	}{
		{"server.max_sessions", c.Server.MaxSessions},
		{"server.max_sessions_per_ip", c.Server.MaxSessionsPerIP},
		{"server.max_login_failures", c.Server.MaxLoginFailures},
		{"retention.max_files", c.Retention.MaxFiles},
		{"server.max_commands_per_second", ptrValue(c.Server.MaxCommandsPerSecond)},
		{"server.command_burst", c.Server.CommandBurst},
	} {
		if n.v < 0 {
			return fmt.Errorf("%s: must not be negative", n.key)
		}
	}
	switch c.Server.UploadChecksum {
	case "sha256", "off":
	default:
		return fmt.Errorf("server.upload_checksum: %q (want \"sha256\" or \"off\")", c.Server.UploadChecksum)
	}
	if len(c.Listeners) == 0 {
		return errors.New("listener: at least one [[listener]] is required")
	}
	for i := range c.Listeners {
		if err := c.Listeners[i].validate(); err != nil {
			return fmt.Errorf("listener[%d].%w", i, err)
		}
	}
	if err := c.checkOverlaps(); err != nil {
		return err
	}
	if err := c.Storage.validate("storage"); err != nil {
		return err
	}
	names := map[string]int{}
	for i := range c.Volumes {
		v := &c.Volumes[i]
		key := fmt.Sprintf("volume[%d]", i)
		switch j, dup := names[v.Name]; {
		case v.Name == "":
			return fmt.Errorf("%s.name: required (folders name the volume they mount)", key)
		case strings.ContainsAny(v.Name, "/\\ "):
			return fmt.Errorf("%s.name: %q must not contain slashes or spaces", key, v.Name)
		case dup:
			return fmt.Errorf("%s.name: %q is also volume[%d]'s name", key, v.Name, j)
		}
		names[v.Name] = i
		if err := v.validate(key); err != nil {
			return err
		}
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if c.Auth.Store == StoreSystem && c.Auth.System.Home == HomePasswd && c.Storage.Backend != "local" {
		return errors.New("auth.system.home: \"passwd\" needs storage.backend = \"local\" (a passwd home is a directory); use home = \"name\"")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: %q (want \"text\" or \"json\")", c.Log.Format)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return fmt.Errorf("log.level: %q (want debug, info, warn or error)", c.Log.Level)
	}
	return nil
}

// validate checks the auth keys and resolves their policies. This is the
// one place that decides whether a config without a users file can serve.
func (a *Auth) validate() error {
	if slices.Contains(strings.Split(filepath.ToSlash(a.AnonymousHome), "/"), "..") || filepath.IsAbs(a.AnonymousHome) {
		return fmt.Errorf("auth.anonymous_home: %q must be relative to storage.root without \"..\"", a.AnonymousHome)
	}
	switch a.Store {
	case "", StoreFile:
	case StorePostgres:
		return a.validatePostgres()
	case StoreHTTP:
		if a.UsersFile != "" {
			return errors.New("auth.users_file: not read with auth.store = \"http\" (the hook knows the users); remove one of them")
		}
		if err := a.HTTP.validate(); err != nil {
			return fmt.Errorf("auth.http.%w", err)
		}
		a.usersFile, a.anonymous = PolicyOff, PolicyOff
		if a.Anonymous {
			a.anonymous = PolicyOptional
		}
		return nil
	case StoreSystem:
		return a.validateSystem()
	default:
		return fmt.Errorf("auth.store: %q is not a user store (want %q, %q, %q or %q)", a.Store, StoreFile, StorePostgres, StoreHTTP, StoreSystem)
	}
	switch {
	case a.UsersFile != "" && a.Anonymous:
		a.usersFile, a.anonymous = PolicyRequired, PolicyOptional
	case a.UsersFile != "":
		a.usersFile, a.anonymous = PolicyRequired, PolicyOff
	case a.Anonymous:
		a.usersFile, a.anonymous = PolicyOff, PolicyRequired
	default:
		return errors.New("auth.users_file: required unless auth.anonymous = true (nobody could log in)")
	}
	return nil
}

// validatePostgres checks store = "postgres": no users file is read, and
// anonymous logins may be allowed beside the database's users.
func (a *Auth) validatePostgres() error {
	p := &a.Postgres
	switch {
	case a.UsersFile != "":
		return errors.New("auth.users_file: not used with auth.store = \"postgres\" (users are in the database; remove it)")
	case p.DSN == "":
		return errors.New("auth.postgres.dsn: required with auth.store = \"postgres\", e.g. \"postgres://cloudftpd@db.internal/cloudftpd\"")
	case p.PollInterval < 0 || p.Timeout < 0:
		return errors.New("auth.postgres: poll_interval and timeout must not be negative")
	}
	a.usersFile, a.anonymous = PolicyOff, PolicyOff
	if a.Anonymous {
		a.anonymous = PolicyOptional
	}
	return nil
}

// validateSystem checks store = "system": no users file is read, and
// anonymous logins may be allowed beside the system's accounts.
func (a *Auth) validateSystem() error {
	s := &a.System
	switch {
	case a.UsersFile != "":
		return errors.New("auth.users_file: not used with auth.store = \"system\" (users are the system's accounts; remove it)")
	case s.Home != "" && s.Home != HomePasswd && s.Home != HomeName:
		return fmt.Errorf("auth.system.home: %q (want %q or %q)", s.Home, HomePasswd, HomeName)
	case s.LowestUID() < 0:
		return errors.New("auth.system.min_uid: must not be negative")
	case s.Permissions != nil && len(s.Permissions) == 0:
		return errors.New("auth.system.permissions: at least one is required, e.g. [\"read\"]")
	case s.UserlistDeny != nil && s.UserlistFile == "":
		return errors.New("auth.system.userlist_deny: needs userlist_file")
	}
	a.usersFile, a.anonymous = PolicyOff, PolicyOff
	if a.Anonymous {
		a.anonymous = PolicyOptional
	}
	return nil
}

func (h *HTTPHook) validate() error {
	u, err := url.Parse(h.URL)
	switch {
	case h.URL == "":
		return errors.New("url: required with auth.store = \"http\"")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("url: %q is not an http:// or https:// URL", h.URL)
	case h.Timeout <= 0:
		return errors.New("timeout: must be positive")
	case h.CacheTTL != nil && *h.CacheTTL < 0:
		return errors.New("cache_ttl: must not be negative (0 caches nothing)")
	case h.Secret != "" && len(h.Secret) < 16:
		return errors.New("secret: at least 16 characters (e.g. openssl rand -hex 32)")
	case len(h.DefaultPermissions) == 0:
		return errors.New("default_permissions: at least one is required, e.g. [\"read\"]")
	case !strings.HasPrefix(h.HomeDirectoryRoot, "/"):
		return fmt.Errorf("home_directory_root: %q must be absolute, e.g. \"/my-bucket\"", h.HomeDirectoryRoot)
	}
	return nil
}

func (l *Listener) validate() error {
	ap, err := parseListenAddr(l.Address)
	if err != nil {
		return fmt.Errorf("address: %q: %v", l.Address, err)
	}
	l.addr = ap
	switch {
	case l.UploadRate < 0:
		return errors.New("upload_rate: must not be negative")
	case l.DownloadRate < 0:
		return errors.New("download_rate: must not be negative")
	}
	if l.PassivePorts != "" {
		lo, hi, err := ParsePortRange(l.PassivePorts)
		if err != nil {
			return fmt.Errorf("passive_ports: %q: %v", l.PassivePorts, err)
		}
		l.minPort, l.maxPort = lo, hi
	}
	for j := range l.Passive {
		r := &l.Passive[j]
		key := fmt.Sprintf("passive[%d]", j)
		if len(r.Clients) == 0 {
			return fmt.Errorf("%s.clients: at least one CIDR is required (\"0.0.0.0/0\" for everyone)", key)
		}
		// Fresh slices, never the old ones refilled: a server may still
		// hold the parsed forms of an earlier Validate.
		r.clients = nil
		for _, s := range r.Clients {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("%s.clients: %q is not a CIDR prefix", key, s)
			}
			r.clients = append(r.clients, p.Masked())
		}
		kind, err := parseAddressKind(r.Address)
		if err != nil {
			return fmt.Errorf("%s.address: %q: %v", key, r.Address, err)
		}
		r.kind = kind
		r.portOffset = 0
		if r.Ports != "" {
			lo, hi, err := ParsePortRange(r.Ports)
			if err != nil {
				return fmt.Errorf("%s.ports: %q: %v", key, r.Ports, err)
			}
			if l.PassivePorts == "" {
				return fmt.Errorf("%s.ports: needs the listener's passive_ports, the range it maps", key)
			}
			if hi-lo != l.maxPort-l.minPort {
				return fmt.Errorf("%s.ports: %q has %d ports, passive_ports %q has %d: the ranges map one to one", key, r.Ports, int(hi-lo)+1, l.PassivePorts, int(l.maxPort-l.minPort)+1)
			}
			r.portOffset = int(lo) - int(l.minPort)
		}
	}
	if l.ProxyProtocol || l.PassiveProxyProtocol {
		if len(l.ProxyTrusted) == 0 {
			return errors.New("proxy_trusted: required with proxy_protocol: list the balancers' addresses (CIDRs)")
		}
	}
	// Headers are required from the trusted balancers, never optional:
	// the server speaks first, so it cannot wait to see whether one comes.
	l.controlProxy, l.passiveProxy = PolicyOff, PolicyOff
	if l.ProxyProtocol {
		l.controlProxy = PolicyRequired
	}
	if l.PassiveProxyProtocol {
		l.passiveProxy = PolicyRequired
	}
	l.proxyTrusted = nil
	for _, s := range l.ProxyTrusted {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return fmt.Errorf("proxy_trusted: %q is not a CIDR prefix or address", s)
			}
		}
		l.proxyTrusted = append(l.proxyTrusted, p.Masked())
	}
	l.isActive = l.ActiveMode == nil || *l.ActiveMode
	return l.validateTLS()
}

// validateTLS resolves the listener's data-connection and session-reuse
// policies from tls, tls_data and tls_session_reuse.
func (l *Listener) validateTLS() error {
	for _, p := range []struct {
		key string
		v   Policy
	}{{"tls_data", l.TLSData}, {"tls_session_reuse", l.TLSSessionReuse}} {
		if p.v != "" && p.v != PolicyOff && p.v != PolicyOptional && p.v != PolicyRequired {
			return fmt.Errorf("%s: %q (want \"optional\" or \"required\")", p.key, p.v)
		}
	}
	if !l.TLS.valid() {
		return fmt.Errorf("tls: %q (want off, explicit, required or implicit)", l.TLS)
	}
	if l.TLS == TLSOff {
		// Without TLS there is nothing to protect or resume. "optional"
		// (the reference's default) is harmless; "required" is a promise
		// the listener cannot keep, so it is refused rather than ignored.
		if l.TLSData == PolicyRequired {
			return errors.New(`tls_data: "required" needs TLS: set tls = "explicit", "required" or "implicit"`)
		}
		l.dataTLS, l.sessionReuse = PolicyOff, PolicyOff
		return nil
	}
	if l.TLSCert == "" || l.TLSKey == "" {
		return fmt.Errorf("tls_cert, tls_key: required with tls = %q (try: cloudftpd cert self-signed --host NAME)", l.TLS)
	}
	l.dataTLS = l.TLSData
	if l.dataTLS == "" {
		// Data protection defaults to what the control connection demands.
		l.dataTLS = l.TLS.Control()
	}
	l.sessionReuse = l.TLSSessionReuse
	if l.sessionReuse == "" {
		l.sessionReuse = PolicyRequired
	}
	for _, p := range []struct {
		key string
		v   Policy
	}{{"tls_data", l.dataTLS}, {"tls_session_reuse", l.sessionReuse}} {
		if p.v == PolicyOff {
			return fmt.Errorf("%s: \"off\" with tls = %q (want \"optional\" or \"required\")", p.key, l.TLS)
		}
	}
	return nil
}

// checkOverlaps rejects two listeners whose passive ranges overlap on the
// same bind address: their passive sockets would fight over ports.
func (c *Config) checkOverlaps() error {
	for i := range c.Listeners {
		a := &c.Listeners[i]
		if a.minPort == 0 {
			continue
		}
		for j := i + 1; j < len(c.Listeners); j++ {
			b := &c.Listeners[j]
			if b.minPort == 0 || a.minPort > b.maxPort || b.minPort > a.maxPort {
				continue
			}
			ha, hb := a.addr.Addr(), b.addr.Addr()
			if ha == hb || ha.IsUnspecified() || hb.IsUnspecified() {
				return fmt.Errorf("listener[%d].passive_ports: %q overlaps listener[%d].passive_ports %q on the same address", j, b.PassivePorts, i, a.PassivePorts)
			}
		}
	}
	return nil
}

func parseListenAddr(s string) (netip.AddrPort, error) {
	host, port, err := splitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	if host == "" {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(p)), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("host must be an IP address: %v", err)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

func splitHostPort(s string) (host, port string, err error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", errors.New("missing port")
	}
	host, port = s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return host, port, nil
}

// ParsePortRange parses "min-max" (or a single port) into its bounds.
// Reversed, zero or out-of-range bounds are errors, never silently fixed.
func ParsePortRange(s string) (lo, hi uint16, err error) {
	a, b, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		b = a
	}
	l, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	h, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, errors.New("want \"min-max\" with ports 1-65535")
	case l == 0 || h == 0:
		return 0, 0, errors.New("port 0 is not a port")
	case l > h:
		return 0, 0, fmt.Errorf("min %d > max %d", l, h)
	}
	return uint16(l), uint16(h), nil
}

// AddrPort is the parsed listen address.
func (l *Listener) AddrPort() netip.AddrPort { return l.addr }

// PortRange returns the parsed passive range; ok is false when any port may
// be used.
func (l *Listener) PortRange() (lo, hi uint16, ok bool) {
	return l.minPort, l.maxPort, l.minPort != 0
}

// ActiveAllowed reports whether PORT/EPRT are allowed.
func (l *Listener) ActiveAllowed() bool { return l.isActive }

// ControlTLS is TLS on control connections: off, optional (explicit) or
// required (required and implicit).
func (l *Listener) ControlTLS() Policy { return l.TLS.Control() }

// DataTLS is protection of data connections (PROT P): off without TLS,
// else tls_data or its default (what the control connection demands).
func (l *Listener) DataTLS() Policy { return l.dataTLS }

// SessionReuse is whether protected data connections must resume the
// control connection's TLS session: off without TLS, else
// tls_session_reuse or its default, required.
func (l *Listener) SessionReuse() Policy { return l.sessionReuse }

// ControlProxy is PROXY protocol on control connections: required from
// proxy_trusted sources, or off.
func (l *Listener) ControlProxy() Policy { return l.controlProxy }

// PassiveProxy is PROXY protocol on passive data connections: required
// from proxy_trusted sources, or off.
func (l *Listener) PassiveProxy() Policy { return l.passiveProxy }

// parseAddressKind classifies a passive rule's address.
func parseAddressKind(s string) (AddressKind, error) {
	switch s {
	case "control":
		return AddressControl, nil
	case "aws":
		return AddressAWS, nil
	case "":
		return 0, errors.New("want \"control\", \"aws\", an IPv4 address or a DNS name")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() {
			return 0, errors.New("PASV replies carry only IPv4 addresses (IPv6 clients use EPSV, which needs no address)")
		}
		return AddressLiteral, nil
	}
	if !isDNSName(s) {
		return 0, errors.New("not an IPv4 address, a DNS name, \"control\" or \"aws\"")
	}
	return AddressDNS, nil
}

// isDNSName reports whether s is a syntactically valid host name.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	// A name made only of digits and dots is a mistyped address.
	return strings.Trim(s, "0123456789.") != ""
}

// Kind says where the rule's address comes from.
func (r *PassiveRule) Kind() AddressKind { return r.kind }

// TrustedProxies returns the parsed proxy_trusted prefixes.
func (l *Listener) TrustedProxies() []netip.Prefix { return l.proxyTrusted }

// ClientPrefixes returns the parsed clients of a rule.
func (r *PassiveRule) ClientPrefixes() []netip.Prefix { return r.clients }

// Path resolves a possibly relative path from the config against c.Dir.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// SlogLevel returns the parsed log level.
func (c *Config) SlogLevel() slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	return lvl
}
