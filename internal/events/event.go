// Package events defines what cloudftpd reports about what happened: an
// upload committed, a login failed, a session ended. The protocol engine
// (internal/ftp) fills Events and hands them to a Recorder; it knows
// nothing of where they go. The recorder that the server wires in writes
// each event durably before any sink (audit log, xferlog, webhook, command
// hook) sees it, so that a receiver that is down or a process killed with
// -9 loses nothing.
//
// It offers:
//   - Event, one versioned record (SchemaVersion), with its JSON form;
//   - Type, the kinds of event;
//   - Recorder, the interface the engine reports to, and Discard;
//   - Config and SinkConfig, the [events] configuration, with Validate,
//     and SinkConfig.Match, a sink's filter.
//
// The outbox lives in internal/state (SQLite, one node) or
// internal/pgoutbox (PostgreSQL, shared by several nodes);
// internal/events/delivery is the Recorder the server wires in and the
// sinks it delivers to.
package events

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math"
	"time"
)

// SchemaVersion is the version of Event's JSON form. A field added keeps
// the version; a field renamed, removed or changed in meaning bumps it.
const SchemaVersion = 1

// Type is the kind of an event.
type Type string

// Event types.
const (
	UploadCommitted Type = "upload.committed" // after the rename on disk or the completed S3 upload
	UploadFailed    Type = "upload.failed"    // aborted, failed or disconnected; nothing was stored
	UploadPartial   Type = "upload.partial"   // failed, but what arrived is kept to resume (server.keep_partial_uploads)
	DownloadDone    Type = "download.done"    // Result says whether it completed
	Delete          Type = "file.deleted"
	Rename          Type = "file.renamed"
	Mkdir           Type = "dir.created"
	Rmdir           Type = "dir.removed"
	LoginOK         Type = "login.succeeded"
	LoginFailed     Type = "login.failed"
	SessionEnded    Type = "session.ended"
	// Expired is a file deleted by the retention sweep, not by a client:
	// no session, and ModTime says how old it was.
	Expired Type = "file.expired"
	// AdminAction is a change made through the operations API (a
	// session ended, a ban, a reload): Actor is the API token's name,
	// Method and Path the request, Code its HTTP status.
	AdminAction Type = "admin.action"
)

// Types lists every event type, for validating filters.
var Types = []Type{UploadCommitted, UploadFailed, UploadPartial, DownloadDone, Delete, Rename, Mkdir, Rmdir, LoginOK, LoginFailed, SessionEnded, Expired, AdminAction}

// Results of an event.
const (
	ResultOK      = "ok"
	ResultFailed  = "failed"
	ResultAborted = "aborted"
)

// TLS describes one connection's TLS, or is empty for a clear one.
type TLS struct {
	Version string `json:"version,omitempty"` // "TLS 1.3"
	Cipher  string `json:"cipher,omitempty"`  // "TLS_AES_128_GCM_SHA256"
}

// Event is one thing that happened. Zero fields are left out of the JSON.
type Event struct {
	Schema   int       `json:"schema"`
	ID       string    `json:"id"` // unique and stable: receivers deduplicate by it
	Time     time.Time `json:"time"`
	Type     Type      `json:"type"`
	Session  string    `json:"session,omitempty"`
	User     string    `json:"user,omitempty"`
	Client   string    `json:"client,omitempty"`   // address after PROXY protocol
	Listener string    `json:"listener,omitempty"` // the listener's configured address
	// ControlTLS and DataTLS are the control and data connections' TLS
	// (empty for clear text).
	ControlTLS TLS    `json:"control_tls"`
	DataTLS    TLS    `json:"data_tls"`
	Path       string `json:"path,omitempty"`     // the user's virtual path
	OldPath    string `json:"old_path,omitempty"` // renames: the path before
	Size       int64  `json:"size"`               // bytes moved, or the file's size
	// Duration is how long the operation took, in milliseconds (JSON);
	// for session.ended, the session's length.
	Duration time.Duration `json:"-"`
	Millis   float64       `json:"duration_ms"`
	Result   string        `json:"result"`
	Reason   string        `json:"reason,omitempty"` // why it failed, for people
	Code     int           `json:"code,omitempty"`   // the FTP reply code sent
	SHA256   string        `json:"sha256,omitempty"` // hex, uploads
	// TransferType is the FTP representation type of a transfer:
	// "binary" (TYPE I, the default when empty) or "ascii" (TYPE A).
	TransferType string `json:"transfer_type,omitempty"`
	// Anonymous is set for the anonymous (ftp) login; User is then the
	// login name the client gave.
	Anonymous bool   `json:"anonymous,omitempty"`
	Storage   string `json:"storage,omitempty"`
	// Object is where the file is in the backend: an S3 key or a path
	// on disk.
	Object string `json:"object,omitempty"`
	// ModTime is the file's modification time, for file.expired.
	ModTime time.Time `json:"mod_time,omitzero"`
	// Actor and Method are admin.action's: the API token's name and the
	// request's HTTP method (Path is the request's path).
	Actor  string `json:"actor,omitempty"`
	Method string `json:"method,omitempty"`
}

// Stamp fills the fields every event has: schema, id, time, and the
// duration in milliseconds.
func (e *Event) Stamp(now time.Time) {
	e.Schema = SchemaVersion
	if e.ID == "" {
		e.ID = NewID(now)
	}
	if e.Time.IsZero() {
		e.Time = now.UTC()
	}
	e.Millis = float64(e.Duration.Microseconds()) / 1000
}

// UnmarshalJSON decodes an event and restores Duration from duration_ms,
// so an event read back from the outbox is the event that was recorded.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event // without methods, so this does not recurse
	if err := json.Unmarshal(b, (*plain)(e)); err != nil {
		return err
	}
	// Millis holds whole microseconds (see Stamp); round them back.
	e.Duration = time.Duration(math.Round(e.Millis*1000)) * time.Microsecond
	return nil
}

// NewID returns a unique id that sorts by time: 12 hex digits of
// milliseconds, then 10 random bytes.
func NewID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// Recorder takes events from the engine. Record must not block for long:
// it is called on the session's goroutines. It returns once the event is
// durably recorded; an error means the event may be lost, and is for the
// caller to log: it never stops the operation, which has already happened.
// Record stamps the event (see Stamp), so the engine may leave ID, Time
// and Schema empty.
type Recorder interface {
	Record(e Event) error
}

// Discard is a Recorder that drops everything.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(Event) error { return nil }
