package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestValidateNamesTheField(t *testing.T) {
	ok := func() Config {
		return Config{StateDir: "/var/lib/cloudftpd", Sinks: []SinkConfig{
			{Name: "audit", Kind: KindAudit, Path: "/var/log/audit.jsonl"},
			{Name: "hook", Kind: KindWebhook, URL: "https://example.com/h", Secret: "0123456789abcdef"},
		}}
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string // substring of the error; "" for valid
	}{
		{"valid", func(c *Config) {}, ""},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "state_dir: required"},
		{"negative retention", func(c *Config) { c.Retention = -1 }, "retention:"},
		{"outbox auto", func(c *Config) { c.Outbox = OutboxAuto }, ""},
		{"outbox postgres", func(c *Config) { c.Outbox = OutboxPostgres }, ""},
		{"unknown outbox", func(c *Config) { c.Outbox = "redis" }, `outbox: "redis"`},
		{"short lease", func(c *Config) { c.Lease = time.Millisecond }, "lease: 1ms"},
		{"no name", func(c *Config) { c.Sinks[1].Name = "" }, "sink[1].name: required"},
		{"bad name", func(c *Config) { c.Sinks[0].Name = "a b" }, "sink[0].name:"},
		{"duplicate name", func(c *Config) { c.Sinks[1].Name = "audit" }, `sink[1].name: "audit" is already sink[0]'s name`},
		{"no kind", func(c *Config) { c.Sinks[0].Kind = "" }, "sink[0].kind: required"},
		{"bad kind", func(c *Config) { c.Sinks[0].Kind = "syslog" }, `sink[0].kind: "syslog"`},
		{"audit without path", func(c *Config) { c.Sinks[0].Path = "" }, "sink[0].path: required"},
		{"webhook ftp url", func(c *Config) { c.Sinks[1].URL = "ftp://x/y" }, "sink[1].url:"},
		{"webhook no host", func(c *Config) { c.Sinks[1].URL = "https:///y" }, "sink[1].url:"},
		{"webhook short secret", func(c *Config) { c.Sinks[1].Secret = "short" }, "sink[1].secret:"},
		{"command without argv", func(c *Config) { c.Sinks[1] = SinkConfig{Name: "x", Kind: KindCommand} }, "sink[1].command: required"},
		{"command concurrency", func(c *Config) {
			c.Sinks[1] = SinkConfig{Name: "x", Kind: KindCommand, Command: []string{"/bin/true"}, Concurrency: 100}
		}, "sink[1].concurrency:"},
		{"unknown type", func(c *Config) { c.Sinks[0].Types = []Type{"upload.done"} }, `sink[0].types: "upload.done" matches no event type`},
		{"bad type pattern", func(c *Config) { c.Sinks[0].Types = []Type{"upload.["} }, "sink[0].types:"},
		{"xferlog with logins", func(c *Config) {
			c.Sinks[0] = SinkConfig{Name: "x", Kind: KindXferlog, Path: "/x", Types: []Type{"login.*"}}
		}, "sink[0].types: \"login.*\": an xferlog records only"},
		{"bad user pattern", func(c *Config) { c.Sinks[0].Users = []string{"[a"} }, "sink[0].users:"},
		{"relative path pattern", func(c *Config) { c.Sinks[0].Paths = []string{"incoming/*"} }, "sink[0].paths:"},
		{"bad path pattern", func(c *Config) { c.Sinks[0].Paths = []string{"/[a/**"} }, "sink[0].paths:"},
		{"negative backlog", func(c *Config) { c.Sinks[0].MaxBacklog = -1 }, "sink[0].max_backlog:"},
		{"retry max below min", func(c *Config) { c.Sinks[0].RetryMin, c.Sinks[0].RetryMax = time.Minute, time.Second }, "sink[0].retry_max:"},
		{"negative timeout", func(c *Config) { c.Sinks[1].Timeout = -time.Second }, "sink[1].timeout:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateDefaults(t *testing.T) {
	c := Config{StateDir: "/s", Sinks: []SinkConfig{
		{Name: "x", Kind: KindXferlog, Path: "/x"},
		{Name: "c", Kind: KindCommand, Command: []string{"/bin/true"}},
		{Name: "w", Kind: KindWebhook, URL: "http://127.0.0.1/", Secret: "0123456789abcdef"},
	}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	x, cmd, w := c.Sinks[0], c.Sinks[1], c.Sinks[2]
	if c.Retention != DefaultRetention || x.MaxBacklog != DefaultMaxBacklog || x.RetryMin != DefaultRetryMin || x.RetryMax != DefaultRetryMax {
		t.Errorf("defaults not filled: %+v %+v", c, x)
	}
	if len(x.Types) != 3 || cmd.Concurrency != 1 || cmd.Timeout != DefaultCommandTimeout || w.Timeout != DefaultWebhookTimeout {
		t.Errorf("kind defaults not filled: xferlog types %v, command %d %s, webhook %s", x.Types, cmd.Concurrency, cmd.Timeout, w.Timeout)
	}
}

// TestConfigTOML: the shape decodes from the TOML the README documents,
// durations as strings.
func TestConfigTOML(t *testing.T) {
	var c struct {
		Events Config `toml:"events"`
	}
	md, err := toml.Decode(`
[events]
state_dir = "/var/lib/cloudftpd"
retention = "2h"

[[events.sink]]
name = "partners"
kind = "webhook"
url = "https://hooks.example.com/ftp"
secret = "0123456789abcdef0123"
timeout = "5s"
types = ["upload.*"]
users = ["partner-*"]
paths = ["/incoming/**"]
max_backlog = 5000
retry_min = "2s"
retry_max = "10m"

[[events.sink]]
name = "scan"
kind = "command"
command = ["/usr/local/bin/scan", "--quiet"]
concurrency = 2
`, &c)
	if err != nil {
		t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Fatalf("undecoded keys: %v", und)
	}
	if err := c.Events.Validate(); err != nil {
		t.Fatal(err)
	}
	w := c.Events.Sinks[0]
	if c.Events.Retention != 2*time.Hour || w.Timeout != 5*time.Second || w.RetryMax != 10*time.Minute || w.MaxBacklog != 5000 || w.Paths[0] != "/incoming/**" {
		t.Errorf("decoded %+v", c.Events)
	}
	if s := c.Events.Sinks[1]; s.Command[1] != "--quiet" || s.Concurrency != 2 {
		t.Errorf("decoded %+v", s)
	}
}

func TestMatch(t *testing.T) {
	up := Event{Type: UploadCommitted, User: "partner-acme", Path: "/incoming/acme/a.csv"}
	login := Event{Type: LoginFailed, User: ""}
	ren := Event{Type: Rename, User: "bob", Path: "/done/a.csv", OldPath: "/incoming/a.csv"}
	for _, tc := range []struct {
		name string
		cfg  SinkConfig
		e    Event
		want bool
	}{
		{"no filter", SinkConfig{}, login, true},
		{"type listed", SinkConfig{Types: []Type{DownloadDone, UploadCommitted}}, up, true},
		{"type not listed", SinkConfig{Types: []Type{DownloadDone}}, up, false},
		{"type pattern", SinkConfig{Types: []Type{"upload.*"}}, up, true},
		{"type pattern misses", SinkConfig{Types: []Type{"login.*"}}, up, false},
		{"user glob", SinkConfig{Users: []string{"partner-*"}}, up, true},
		{"user glob misses", SinkConfig{Users: []string{"staff-*"}}, up, false},
		{"no user, users set", SinkConfig{Users: []string{"*"}}, login, false},
		{"path glob stops at slash", SinkConfig{Paths: []string{"/incoming/*"}}, up, false},
		{"path glob exact depth", SinkConfig{Paths: []string{"/incoming/*/*.csv"}}, up, true},
		{"path /** below", SinkConfig{Paths: []string{"/incoming/**"}}, up, true},
		{"path /** the dir itself", SinkConfig{Paths: []string{"/incoming/**"}}, Event{Type: Mkdir, Path: "/incoming"}, true},
		{"path /** not a prefix of a name", SinkConfig{Paths: []string{"/incoming/**"}}, Event{Type: Mkdir, Path: "/incomingX/a"}, false},
		{"path glob then /**", SinkConfig{Paths: []string{"/*/acme/**"}}, up, true},
		{"root /**", SinkConfig{Paths: []string{"/**"}}, up, true},
		{"no path, paths set", SinkConfig{Paths: []string{"/**"}}, login, false},
		{"rename by old path", SinkConfig{Paths: []string{"/incoming/*"}}, ren, true},
		{"all three", SinkConfig{Types: []Type{"upload.*"}, Users: []string{"partner-*"}, Paths: []string{"/incoming/**"}}, up, true},
		{"all three, one misses", SinkConfig{Types: []Type{"upload.*"}, Users: []string{"bob"}, Paths: []string{"/incoming/**"}}, up, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Match(&tc.e); got != tc.want {
				t.Errorf("Match(%+v) = %v, want %v", tc.e, got, tc.want)
			}
		})
	}
}

// TestEventJSONRoundTrip: what the outbox stores reads back equal,
// Duration included (it travels as duration_ms).
func TestEventJSONRoundTrip(t *testing.T) {
	e := Event{Type: UploadCommitted, User: "u", Path: "/a", Size: 42, Duration: 1234567 * time.Microsecond,
		Result: ResultOK, SHA256: "ab", TransferType: "ascii", Anonymous: true, ControlTLS: TLS{Version: "TLS 1.3"}}
	e.Stamp(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC))
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != e {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, e)
	}
	if !strings.Contains(string(b), `"duration_ms":1234.567`) || strings.Contains(string(b), "Duration") {
		t.Errorf("JSON: %s", b)
	}
}
