package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// FileSink appends one line per event to a file: the audit log and the
// xferlog. Each Deliver is one write(2) and one fsync, so a batch is on
// disk before the cursor moves past it.
type FileSink struct {
	path   string
	format func(b []byte, e *events.Event) []byte

	mu sync.Mutex
	f  *os.File // nil after a failed write: reopened by the next Deliver
}

// OpenAudit opens (creating, mode 0640) the audit log at path: each event's
// JSON (the schema in docs/events.md) on one line.
func OpenAudit(path string) (*FileSink, error) {
	return openFile(path, appendJSONLine)
}

// OpenXferlog opens (creating, mode 0640) an xferlog at path, its times in
// loc (wu-ftpd and ProFTPD write local time).
func OpenXferlog(path string, loc *time.Location) (*FileSink, error) {
	return openFile(path, func(b []byte, e *events.Event) []byte {
		return append(XferlogLine(b, e, loc), '\n')
	})
}

func openFile(path string, format func([]byte, *events.Event) []byte) (*FileSink, error) {
	s := &FileSink{path: path, format: format}
	f, err := s.open()
	if err != nil {
		return nil, err
	}
	s.f = f
	return s, nil
}

// open opens the file for appending. If it ends inside a line (a write
// cut short by a crash or a full disk), it ends that line first: the torn
// fragment stays a line of its own, and the events, written again,
// each get a whole line.
func (s *FileSink) open() (*os.File, error) {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], st.Size()-1); err == nil && last[0] != '\n' {
			if _, err := f.Write([]byte{'\n'}); err != nil {
				f.Close()
				return nil, fmt.Errorf("delivery: %s: %w", s.path, err)
			}
		}
	}
	return f, nil
}

// Deliver implements Sink.
func (s *FileSink) Deliver(ctx context.Context, evs []events.Event) (int, error) {
	var b []byte
	for i := range evs {
		b = s.format(b, &evs[i])
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		f, err := s.open()
		if err != nil {
			return 0, err
		}
		s.f = f
	}
	_, err := s.f.Write(b)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// Part of the batch may be in the file; it is written again
		// (at least once), after open ends any torn line.
		s.f.Close()
		s.f = nil
		return 0, fmt.Errorf("delivery: %s: %w", s.path, err)
	}
	return len(evs), nil
}

// Reopen opens the file at its path again and closes the old one, for
// logrotate. On error the old file stays in use.
func (s *FileSink) Reopen() error {
	f, err := s.open()
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.f
	s.f = f
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	return nil
}

// marshal is the event's JSON as the audit log and webhooks carry it,
// without HTML escaping (paths with '&' stay readable).
func marshal(e *events.Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(e) // an Event always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func appendJSONLine(b []byte, e *events.Event) []byte {
	return append(append(b, marshal(e)...), '\n')
}

// XferlogLine appends e as an xferlog(5) line (without the newline), the
// format wu-ftpd defined and vsftpd (xferlog_std_format) and ProFTPD
// (TransferLog) write:
//
//	current-time transfer-time remote-host file-size filename transfer-type
//	special-action-flag direction access-mode username service-name
//	authentication-method authenticated-user-id completion-status
//
// For example:
//
//	Sun Mar  1 13:00:00 2026 3 198.51.100.7 1048576 /in/a_b.csv b _ i r alice ftp 0 * c
//
// current-time is the event's time in loc in ctime(3)'s layout;
// transfer-time is whole seconds, at least 1 (as vsftpd); remote-host is
// the client's address without its port; filename is the user's virtual
// path with white space and control characters turned into '_' (as
// ProFTPD), so every field stays one token; transfer-type is 'a' (ASCII)
// or 'b'; the special action is always '_'; direction is 'i' for uploads,
// 'o' for downloads; access-mode is 'a' (anonymous) or 'r'; the service is
// "ftp", the authentication method 0 and the authenticated user id "*";
// completion-status is 'c' (complete) or 'i' (incomplete: a failed
// upload, an unfinished download).
func XferlogLine(b []byte, e *events.Event, loc *time.Location) []byte {
	b = e.Time.In(loc).AppendFormat(b, "Mon Jan _2 15:04:05 2006")
	b = append(b, ' ')
	secs := int64(math.Round(e.Duration.Seconds()))
	b = strconv.AppendInt(b, max(secs, 1), 10)
	b = append(b, ' ')
	b = appendToken(b, clientHost(e.Client))
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, ' ')
	b = appendToken(b, e.Path)
	if e.TransferType == "ascii" {
		b = append(b, " a _ "...)
	} else {
		b = append(b, " b _ "...)
	}
	if e.Type == events.DownloadDone {
		b = append(b, 'o')
	} else {
		b = append(b, 'i')
	}
	if e.Anonymous {
		b = append(b, " a "...)
	} else {
		b = append(b, " r "...)
	}
	b = appendToken(b, e.User)
	b = append(b, " ftp 0 * "...)
	if e.Result == events.ResultOK && e.Type != events.UploadFailed {
		b = append(b, 'c')
	} else {
		b = append(b, 'i')
	}
	return b
}

// appendToken appends s with white space and control characters as '_',
// or "-" for an empty s, so that it is exactly one field.
func appendToken(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029' || r == 0xa0 {
			r = '_'
		}
		b = append(b, string(r)...)
	}
	return b
}

// clientHost is the address of a client given as "ip:port" or "ip".
func clientHost(c string) string {
	if ap, err := netip.ParseAddrPort(c); err == nil {
		return ap.Addr().Unmap().String()
	}
	if h, _, err := net.SplitHostPort(c); err == nil {
		return h
	}
	return c
}
