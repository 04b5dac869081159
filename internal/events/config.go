package events

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// Kind is the kind of a sink: where its events go.
type Kind string

// Sink kinds.
const (
	// KindAudit appends each event as one JSON object per line to Path.
	KindAudit Kind = "audit"
	// KindXferlog appends uploads and downloads to Path in the wu-ftpd
	// xferlog(5) format that vsftpd and ProFTPD write.
	KindXferlog Kind = "xferlog"
	// KindWebhook POSTs each event's JSON to URL, signed with Secret.
	KindWebhook Kind = "webhook"
	// KindCommand runs Command once per event, the JSON on its stdin
	// and the main fields in CLOUDFTPD_* environment variables.
	KindCommand Kind = "command"
	// KindSQS sends each event's JSON as a message to QueueURL.
	KindSQS Kind = "sqs"
)

// Kinds lists every sink kind, for messages.
var Kinds = []Kind{KindAudit, KindXferlog, KindWebhook, KindCommand, KindSQS}

// TransferTypes are the event types an xferlog records.
var TransferTypes = []Type{UploadCommitted, UploadFailed, DownloadDone}

// Defaults applied by Validate to zero fields.
const (
	DefaultRetention      = time.Hour
	DefaultMaxBacklog     = 100_000
	DefaultRetryMin       = time.Second
	DefaultRetryMax       = 5 * time.Minute
	DefaultWebhookTimeout = 10 * time.Second
	DefaultCommandTimeout = time.Minute
)

// OutboxEngine is where the outbox is ([events] outbox).
type OutboxEngine string

// Outbox engines.
const (
	OutboxAuto     OutboxEngine = "auto"
	OutboxLocal    OutboxEngine = "local"
	OutboxPostgres OutboxEngine = "postgres"
)

// DefaultLease is a PostgreSQL outbox's sink lease.
const DefaultLease = 10 * time.Second

// Config is the [events] section: where the outbox lives and the sinks
// that read it.
//
//	[events]
//	state_dir = "/var/lib/cloudftpd"
//
//	[[events.sink]]
//	name = "audit"
//	kind = "audit"
//	path = "/var/log/cloudftpd/audit.jsonl"
type Config struct {
	// StateDir holds the state database (state.db and its -wal and
	// -shm files); required when any sink is configured. The store
	// will hold more than events (bans, quotas), so the server may take
	// it from a wider section; it is here so that this section stands
	// alone.
	StateDir string `toml:"state_dir"`
	// Outbox says where the outbox is: "auto" (the default) is
	// PostgreSQL when users are (auth.store = "postgres", the database
	// several nodes share) and the state directory otherwise; "local"
	// is the state directory's SQLite database whatever the user store;
	// "postgres" requires auth.store = "postgres" (checked by the
	// config, which knows it).
	Outbox OutboxEngine `toml:"outbox"`
	// Lease is how long a node of a PostgreSQL outbox keeps a sink
	// without renewing (default 10s): after a node dies, its sinks wait
	// that long for another node. Renewals come three per lease.
	Lease time.Duration `toml:"lease"`
	// Retention is how long an event stays in the outbox after every
	// sink has delivered it (default 1h), for inspection; undelivered
	// events stay until delivered or dropped.
	Retention time.Duration `toml:"retention"`
	Sinks     []SinkConfig  `toml:"sink"`
}

// SinkConfig is one [[events.sink]]: a destination, its settings, and a
// filter choosing which events it gets.
type SinkConfig struct {
	// Name identifies the sink's position in the outbox: keep it when
	// editing the sink, or it starts again from new events. Letters,
	// digits, '-', '_' and '.'.
	Name string `toml:"name"`
	Kind Kind   `toml:"kind"`

	// Path is the file of an audit or xferlog sink, opened for append
	// (created with mode 0640). Its directory must exist.
	Path string `toml:"path"`

	// URL is a webhook's http or https address.
	URL string `toml:"url"`
	// Secret signs webhook requests (HMAC-SHA256; see docs/events.md);
	// required for a webhook. At least 16 characters.
	Secret string `toml:"secret"`

	// Command is a command hook's program and arguments, run without a
	// shell: ["/usr/local/bin/on-upload", "--queue", "incoming"].
	Command []string `toml:"command"`
	// Concurrency is how many hooks run at once (default 1, which also
	// keeps them in event order).
	Concurrency int `toml:"concurrency"`

	// QueueURL is an SQS sink's queue
	// (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME; ".fifo" for a FIFO
	// queue). Region, when empty, comes from the URL or the AWS
	// configuration; Endpoint overrides the SQS endpoint (a VPC
	// endpoint, a local stand-in).
	QueueURL string `toml:"queue_url"`
	Region   string `toml:"region"`
	Endpoint string `toml:"endpoint"`

	// Timeout bounds one webhook or SQS request (default 10s) or one hook run
	// (default 1m; its process group is killed then).
	Timeout time.Duration `toml:"timeout"`

	// Types lists the event types the sink gets, or patterns of them
	// ("upload.*"); empty is every type (for xferlog: the transfer
	// types, the only ones it can write).
	Types []Type `toml:"types"`
	// Users lists user-name patterns (path.Match: "partner-*"); empty
	// is everyone. Events without a user (a failed login before USER)
	// match only when Users is empty.
	Users []string `toml:"users"`
	// Paths lists virtual-path patterns (path.Match, where '*' stops at
	// '/'), plus one extension: a pattern ending in "/**" matches that
	// directory and everything below it ("/incoming/**"). Empty is every
	// path; when set, events without a path (logins) do not match, and
	// a rename matches by its new or old path.
	Paths []string `toml:"paths"`

	// MaxBacklog bounds the events waiting for this sink (default
	// 100000): past it the oldest undelivered ones are dropped, so a
	// receiver down for days costs bounded disk and a clear log line,
	// never a blocked upload.
	MaxBacklog int `toml:"max_backlog"`
	// RetryMin and RetryMax bound the exponential backoff between
	// attempts at a failed delivery (defaults 1s and 5m).
	RetryMin time.Duration `toml:"retry_min"`
	RetryMax time.Duration `toml:"retry_max"`
}

// Validate fills defaults for zero fields and checks every field. Errors
// name the key, e.g. `sink[1].url: "ftp://x": want an http or https URL`.
func (c *Config) Validate() error {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.Retention < 0 {
		return errors.New("retention: must not be negative")
	}
	switch c.Outbox {
	case "":
		c.Outbox = OutboxAuto
	case OutboxAuto, OutboxLocal, OutboxPostgres:
	default:
		return fmt.Errorf("outbox: %q: want %q, %q or %q", c.Outbox, OutboxAuto, OutboxLocal, OutboxPostgres)
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Lease < time.Second || c.Lease > 10*time.Minute {
		return fmt.Errorf("lease: %v: want 1s to 10m", c.Lease)
	}
	if len(c.Sinks) > 0 && c.StateDir == "" {
		return errors.New("state_dir: required when a sink is configured (events are written there before they are sent)")
	}
	seen := map[string]int{}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if err := s.Validate(); err != nil {
			return fmt.Errorf("sink[%d].%w", i, err)
		}
		if j, dup := seen[s.Name]; dup {
			return fmt.Errorf("sink[%d].name: %q is already sink[%d]'s name", i, s.Name, j)
		}
		seen[s.Name] = i
	}
	return nil
}

// Validate fills defaults for zero fields and checks one sink. Errors
// start with the key ("url: ..."), for Config.Validate to prefix.
func (s *SinkConfig) Validate() error {
	if s.Name == "" {
		return errors.New("name: required (it keeps the sink's place in the outbox)")
	}
	if strings.IndexFunc(s.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) >= 0 || len(s.Name) > 64 {
		return fmt.Errorf("name: %q: use at most 64 letters, digits, '-', '_' or '.'", s.Name)
	}
	switch s.Kind {
	case KindAudit, KindXferlog:
		if s.Path == "" {
			return fmt.Errorf("path: required for a %s sink", s.Kind)
		}
	case KindWebhook:
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url: %q: want an http or https URL", s.URL)
		}
		if len(s.Secret) < 16 {
			return errors.New("secret: required for a webhook, at least 16 characters (e.g. openssl rand -hex 32)")
		}
		if s.Timeout == 0 {
			s.Timeout = DefaultWebhookTimeout
		}
	case KindCommand:
		if len(s.Command) == 0 || s.Command[0] == "" {
			return errors.New("command: required for a command sink: the program and its arguments")
		}
		if s.Concurrency == 0 {
			s.Concurrency = 1
		}
		if s.Concurrency < 0 || s.Concurrency > 64 {
			return fmt.Errorf("concurrency: %d: want 1 to 64", s.Concurrency)
		}
		if s.Timeout == 0 {
			s.Timeout = DefaultCommandTimeout
		}
	case KindSQS:
		u, err := url.Parse(s.QueueURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return fmt.Errorf("queue_url: %q: want the queue's URL, e.g. https://sqs.eu-west-1.amazonaws.com/123456789012/cloudftpd-events", s.QueueURL)
		}
		if s.Endpoint != "" {
			if e, err := url.Parse(s.Endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return fmt.Errorf("endpoint: %q: want an http or https URL", s.Endpoint)
			}
		}
		if s.Timeout == 0 {
			s.Timeout = DefaultWebhookTimeout
		}
	case "":
		return fmt.Errorf("kind: required (one of %v)", Kinds)
	default:
		return fmt.Errorf("kind: %q is not a sink kind (one of %v)", s.Kind, Kinds)
	}
	if s.Timeout < 0 {
		return errors.New("timeout: must not be negative")
	}
	for _, t := range s.Types {
		n := 0
		for _, known := range Types {
			if ok, err := path.Match(string(t), string(known)); err != nil {
				return fmt.Errorf("types: %q: %v", t, err)
			} else if ok {
				n++
				if s.Kind == KindXferlog && !slices.Contains(TransferTypes, known) {
					return fmt.Errorf("types: %q: an xferlog records only %v", t, TransferTypes)
				}
			}
		}
		if n == 0 {
			return fmt.Errorf("types: %q matches no event type (one of %v)", t, Types)
		}
	}
	if s.Kind == KindXferlog && len(s.Types) == 0 {
		s.Types = slices.Clone(TransferTypes)
	}
	for _, p := range s.Users {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("users: %q: %v", p, err)
		}
	}
	for _, p := range s.Paths {
		if _, err := path.Match(strings.TrimSuffix(p, "/**"), ""); err != nil {
			return fmt.Errorf("paths: %q: %v", p, err)
		}
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("paths: %q: virtual paths start with '/'", p)
		}
	}
	if s.MaxBacklog == 0 {
		s.MaxBacklog = DefaultMaxBacklog
	}
	if s.MaxBacklog < 0 {
		return errors.New("max_backlog: must not be negative")
	}
	if s.RetryMin == 0 {
		s.RetryMin = DefaultRetryMin
	}
	if s.RetryMax == 0 {
		s.RetryMax = max(DefaultRetryMax, s.RetryMin)
	}
	if s.RetryMin < 0 {
		return errors.New("retry_min: must not be negative")
	}
	if s.RetryMax < s.RetryMin {
		return fmt.Errorf("retry_max: %s is below retry_min %s", s.RetryMax, s.RetryMin)
	}
	return nil
}

// Match reports whether the sink's filter lets e through: its type, user
// and path must each match one pattern of a non-empty list.
func (s *SinkConfig) Match(e *Event) bool {
	if len(s.Types) > 0 && !slices.ContainsFunc(s.Types, func(p Type) bool {
		ok, _ := path.Match(string(p), string(e.Type))
		return ok
	}) {
		return false
	}
	if len(s.Users) > 0 && (e.User == "" || !slices.ContainsFunc(s.Users, func(p string) bool {
		ok, _ := path.Match(p, e.User)
		return ok
	})) {
		return false
	}
	if len(s.Paths) > 0 && !matchPath(s.Paths, e.Path) && !matchPath(s.Paths, e.OldPath) {
		return false
	}
	return true
}

// matchPath matches p against path.Match patterns, where "dir/**" also
// matches dir and everything below it (path.Match's '*' stops at '/',
// and "every upload under /incoming" is the filter people want most).
func matchPath(patterns []string, p string) bool {
	if p == "" {
		return false
	}
	for _, pat := range patterns {
		if dir, ok := strings.CutSuffix(pat, "/**"); ok {
			if dir == "" {
				return true // "/**": everything
			}
			for q := p; ; q = path.Dir(q) {
				if m, _ := path.Match(dir, q); m {
					return true
				}
				if q == "/" || q == "." {
					break
				}
			}
			continue
		}
		if m, _ := path.Match(pat, p); m {
			return true
		}
	}
	return false
}
