package ftp

import (
	"net/netip"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// SessionInfo is a read-only view of a session at one instant, for the
// operations API: who is connected, from where, doing what.
type SessionInfo struct {
	ID       string
	User     string // "" before login
	Client   netip.Addr
	Local    netip.Addr
	Listener string // the listener's configured address
	// TLS is the control connection's TLS, empty when it is clear.
	TLS events.TLS
	// Command is the verb of the last command received ("" before the
	// first); LastCommand is when it came, or the session's start.
	Command     string
	Started     time.Time
	LastCommand time.Time
	// BytesUploaded and BytesDownloaded count file data moved by
	// finished transfers and the running one.
	BytesUploaded, BytesDownloaded int64
	// Transfer is the running transfer, or nil.
	Transfer *TransferInfo
}

// TransferInfo is a running transfer.
type TransferInfo struct {
	Command   string // RETR, STOR, APPE, STOU, LIST, MLSD, NLST, HASH...
	Direction string // "upload", "download" or "other" (listings, HASH)
	Path      string // the user's virtual path
	Bytes     int64  // moved so far
	// Size is the number of bytes the transfer will move when that is
	// known (a download: the file's size less a REST offset), else -1.
	Size    int64
	Started time.Time
}

// Transfer directions.
const (
	DirectionUpload   = "upload"
	DirectionDownload = "download"
	DirectionOther    = "other"
)

// direction classifies a transfer's verb.
func direction(verb string) string {
	switch verb {
	case "STOR", "APPE", "STOU":
		return DirectionUpload
	case "RETR":
		return DirectionDownload
	}
	return DirectionOther
}

// ID is the session's id, as in its events and log lines.
func (s *Session) ID() string { return s.id }

// Info returns a snapshot of the session. It is safe to call from any
// goroutine: it reads only what s.mu guards (the user, the control
// connection, the last command, the running transfer) and atomics, never
// the command goroutine's own state.
func (s *Session) Info() SessionInfo {
	s.mu.Lock()
	info := SessionInfo{
		ID:          s.id,
		Client:      s.client,
		Local:       s.local,
		Listener:    s.cfg.Listener,
		Command:     s.lastVerb,
		Started:     s.start,
		LastCommand: s.lastActive,
	}
	if s.user != nil {
		info.User = s.user.Name
	}
	conn, x := s.conn, s.xfer
	info.BytesUploaded = s.bytesUp.Load()
	info.BytesDownloaded = s.bytesDown.Load()
	s.mu.Unlock()
	if info.LastCommand.IsZero() {
		info.LastCommand = info.Started
	}
	// Swapped in only after its handshake (swapConn): this does not wait.
	info.TLS = tlsOf(conn)
	if x != nil && !x.hashing {
		t := &TransferInfo{Command: x.verb, Direction: direction(x.verb), Path: x.path,
			Bytes: x.bytes.Load(), Size: x.size.Load() - 1, Started: x.start}
		switch t.Direction {
		case DirectionUpload:
			info.BytesUploaded += t.Bytes
		case DirectionDownload:
			info.BytesDownloaded += t.Bytes
		}
		info.Transfer = t
	}
	return info
}

// noteCommand records the verb being served, for Info; the command
// goroutine calls it once per command.
func (s *Session) noteCommand(verb string) {
	now := time.Now()
	s.mu.Lock()
	s.lastVerb, s.lastActive = verb, now
	s.mu.Unlock()
}

// countTransfer adds a finished transfer's bytes to the session's totals;
// s.mu is held.
func (s *Session) countTransfer(x *transfer) {
	switch direction(x.verb) {
	case DirectionUpload:
		s.bytesUp.Add(x.bytes.Load())
	case DirectionDownload:
		s.bytesDown.Add(x.bytes.Load())
	}
}
