package storage

import (
	"fmt"

	"github.com/cloudftpd/cloudftpd/internal/bytesize"
)

// QuotaError is a refusal by a user's quota, with the figures the client
// may be told: it names no path, so its text is safe to send. It matches
// ErrQuota with errors.Is.
type QuotaError struct {
	// Files is true for the file-count quota, false for the byte quota.
	Files bool
	// Used is what the user stores (bytes or files) including what
	// uploads in progress hold, the refused one too; Limit is the quota.
	Used, Limit int64
	// InFlight is the part of Used that uploads in progress hold.
	InFlight int64
}

func (e *QuotaError) Error() string {
	var s string
	if e.Files {
		s = fmt.Sprintf("Quota exceeded: %d of %d files used", e.Used, e.Limit)
		if e.InFlight > 0 {
			s += fmt.Sprintf(" (%d of them being uploaded)", e.InFlight)
		}
	} else {
		s = fmt.Sprintf("Quota exceeded: %s of %s used", bytesize.Human(e.Used), bytesize.Human(e.Limit))
		if e.InFlight > 0 {
			s += fmt.Sprintf(" (%s of it by uploads in progress)", bytesize.Human(e.InFlight))
		}
	}
	return s + "."
}

// Unwrap makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Unwrap() error { return ErrQuota }
