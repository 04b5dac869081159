package ftp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cloudftpd/cloudftpd/internal/bandwidth"
	"github.com/cloudftpd/cloudftpd/internal/bytesize"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Transfer limits: the user's maximum file size and bandwidth, and the
// listener's bandwidth, as gates (gate.go). A transfer under no limit gets
// no gate at all, so copyData runs exactly as it does without limits.

// limitError ends an upload that a limit refused: the transfer maps it to
// its reply and discards what the upload wrote (discardUpload).
type limitError struct {
	code int
	text string
}

func (e *limitError) Error() string { return e.text }

// fileTooLarge is the refusal of an upload crossing the user's maximum
// file size.
func fileTooLarge(limit int64) *limitError {
	return &limitError{code: 552, text: "File exceeds the maximum size of " + sizeText(limit) + " for this account; upload discarded."}
}

// sizeText writes a size as the users file would ("1MiB"), in bytes when
// no binary unit divides it.
func sizeText(n int64) string {
	s := bytesize.Size(n).String()
	if strings.TrimLeft(s, "0123456789") == "" {
		return s + " bytes"
	}
	return s
}

// sizeGate fails an upload as soon as the file it writes grows past
// limit: it allows one byte past the limit, so crossing it shows in moved
// without reading ahead of the data.
type sizeGate struct {
	limit int64
	size  int64 // the file's size so far: what it started from + what moved
}

func (g *sizeGate) allow(_ context.Context, want int64) (int64, error) {
	return min(want, max(g.limit-g.size+1, 1)), nil
}

func (g *sizeGate) moved(n int64) error {
	g.size += n
	if g.size > g.limit {
		return fileTooLarge(g.limit)
	}
	return nil
}

// rateGate draws each chunk from a bandwidth bucket before it moves.
type rateGate struct{ l *bandwidth.Limiter }

func (g rateGate) allow(ctx context.Context, want int64) (int64, error) { return g.l.Take(ctx, want) }
func (g rateGate) moved(int64) error                                    { return nil }

// uploadGates are the gates of an upload of p, or nil when nothing limits
// it. When the upload cannot end within the size limit whatever is sent
// (it continues a file already larger), it replies 552 and returns false.
func (s *Session) uploadGates(p string, opts storage.CreateOptions) ([]gate, bool) {
	var gates []gate
	if limit := s.user.Limits.MaxFileSize; limit > 0 {
		// The size counted is the file's at the end: an append or a
		// resumed upload starts from the bytes it keeps.
		base := opts.Offset
		if opts.Append {
			if fi, err := s.fs.Stat(s.ctx, p); err == nil {
				base = fi.Size
			} // no file (or none we can see): Create decides
		}
		if base > limit {
			msg := fmt.Sprintf("Restart offset %d is beyond the maximum file size of %s for this account.", base, sizeText(limit))
			if opts.Append {
				msg = fmt.Sprintf("The file is already larger (%d bytes) than the maximum size of %s for this account; nothing can be appended.", base, sizeText(limit))
			}
			s.reply(552, msg)
			return nil, false
		}
		gates = append(gates, &sizeGate{limit: limit, size: base})
	}
	// Bandwidth gates come last: they wait only for the bytes the gates
	// before them allowed.
	return s.rateGates(gates, "up", s.user.Limits.UploadRate, s.cfg.UploadLimit), true
}

// downloadGates are the gates of a download, or nil when nothing limits
// it.
func (s *Session) downloadGates() []gate {
	return s.rateGates(nil, "down", s.user.Limits.DownloadRate, s.cfg.DownloadLimit)
}

// rateGates appends the user's bucket for direction (when the user has a
// rate) and the listener's (when it has one).
func (s *Session) rateGates(gates []gate, direction string, userRate int64, listener *bandwidth.Limiter) []gate {
	if userRate > 0 {
		gates = append(gates, rateGate{s.userRates().Get(direction+" "+s.user.Name, userRate)})
	}
	if listener != nil && listener.Rate() > 0 {
		gates = append(gates, rateGate{listener})
	}
	return gates
}

// userRates is where the user's buckets live: the server's, shared by
// all its sessions, or, for a Config without one, the session's own.
func (s *Session) userRates() *bandwidth.Shared {
	if s.cfg.UserRates != nil {
		return s.cfg.UserRates
	}
	if s.ownRates == nil {
		s.ownRates = &bandwidth.Shared{}
	}
	return s.ownRates
}

// refusedByLimit reports whether err is a limit's refusal, and its reply.
func refusedByLimit(err error) (xferResult, bool) {
	var le *limitError
	if !errors.As(err, &le) {
		return xferResult{}, false
	}
	return xferResult{code: le.code, text: le.text, err: fmt.Errorf("refused: %w", err), holdData: true}, true
}

// discardUpload ends an upload that a limit refused, leaving the file as
// it was before: an in-place upload (APPE, REST+STOR) on a backend that
// can (storage.Discarder) is cut back to its old length, where Abort
// would keep what arrived for the client to resume.
func discardUpload(up storage.Upload) error {
	if d, ok := up.(storage.Discarder); ok {
		return d.Discard()
	}
	return up.Abort()
}
