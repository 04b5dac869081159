package ftp

import (
	"context"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// QuotaKeeper holds users' storage quotas (auth.Limits.QuotaBytes and
// QuotaFiles) server-wide, so that all sessions of a user share one
// account of what it stores and what its uploads in flight hold.
// internal/quota implements it (adapted in internal/server).
type QuotaKeeper interface {
	// Quota returns u's quota with its usage known, or nil when u has
	// none. fs is u's tree, for a scan when no usage is recorded yet.
	Quota(ctx context.Context, u *auth.User, fs storage.Storage) (Quota, error)
}

// Quota is one user's quota.
type Quota interface {
	// Upload starts holding an upload to the quota: old is the size of
	// the file it writes to (-1: none), base where writing starts (0 for
	// STOR, old for APPE, the offset for REST+STOR), inPlace whether the
	// data lands in the file as it arrives. It fails with a
	// *storage.QuotaError when a new file does not fit the file count.
	// ctx bounds asking a store shared by several servers for room.
	Upload(ctx context.Context, old, base int64, inPlace bool) (QuotaUpload, error)
	// Removed records that a file of size bytes is gone.
	Removed(size int64)
}

// QuotaUpload is an upload held to a quota. Allow and Moved are its
// gate (gate.go); an atomic upload then calls Prepare before the storage
// commit and Commit after it, or Abort; an in-place one calls Commit with
// the file's size before and after, whatever happened (its data stays).
type QuotaUpload interface {
	Allow(ctx context.Context, want int64) (int64, error)
	Moved(n int64) error
	Prepare(ctx context.Context, replaced, final int64) error
	Commit(replaced, final int64)
	Abort()
	// Unchanged reports whether none of the user's sessions committed or
	// removed a file since the upload started: the size seen at the
	// start still holds.
	Unchanged() bool
}

// quotaGate is a QuotaUpload as a gate of copyData.
type quotaGate struct{ u QuotaUpload }

func (g quotaGate) allow(ctx context.Context, want int64) (int64, error) { return g.u.Allow(ctx, want) }
func (g quotaGate) moved(n int64) error                                  { return g.u.Moved(n) }

// quotaStatTimeout bounds the look-ups an upload's quota makes after the
// transfer, when the session may be closing.
const quotaStatTimeout = 30 * time.Second

// userQuota returns the session user's quota, nil when there is none.
// ok is false when usage could not be determined; it has replied then
// (refusing rather than letting the upload go unbounded).
func (s *Session) userQuota() (q Quota, ok bool) {
	if s.cfg.Quotas == nil || (s.user.Limits.QuotaBytes <= 0 && s.user.Limits.QuotaFiles <= 0) {
		return nil, true
	}
	if s.quota != nil {
		return s.quota, true
	}
	q, err := s.cfg.Quotas.Quota(s.ctx, s.user, s.homeTree())
	if err != nil {
		s.log.Error("quota: cannot determine usage", "user", s.user.Name, "err", err)
		s.reply(451, "Cannot determine your storage usage for the quota; try again later.")
		return nil, false
	}
	s.quota = q
	return q, true
}

// fileSize is the size of the regular file at p, or -1 when there is
// none (or it cannot be seen).
func (s *Session) fileSize(ctx context.Context, p string) int64 {
	fi, err := s.fs.Stat(ctx, p)
	if err != nil || !fi.Mode.IsRegular() {
		return -1
	}
	return fi.Size
}

// quotaUpload is an upload's hold on its user's quota; nil (no quota)
// does nothing, so upload() calls it unconditionally.
type quotaUpload struct {
	u       QuotaUpload
	p       string
	old     int64 // the file's size at the start, -1 for none
	inPlace bool
	// replaced is the size of the file the commit replaces: old, or
	// what prepare saw just before the storage commit when the user's
	// files changed meanwhile.
	replaced int64
}

// startQuotaUpload holds an upload of p to the user's quota. ok is false
// when it was refused (552 when a new file does not fit the file count);
// the reply has been sent.
func (s *Session) startQuotaUpload(p string, opts storage.CreateOptions) (*quotaUpload, bool) {
	if s.user.Limits.FolderAt(p) != nil {
		return nil, true // virtual folders are not the user's to count
	}
	q, ok := s.userQuota()
	if !ok || q == nil {
		return nil, ok
	}
	old := s.fileSize(s.ctx, p)
	qu := &quotaUpload{p: p, old: old, replaced: old, inPlace: opts.Append || opts.Offset > 0}
	var base int64
	switch {
	case opts.Append:
		base = max(old, 0)
	case opts.Offset > 0:
		base = opts.Offset
	}
	u, err := q.Upload(s.ctx, old, base, qu.inPlace)
	if err != nil {
		s.replyStorageErr("upload", p, err)
		return nil, false
	}
	qu.u = u
	return qu, true
}

// gates bounds the transfer by the quota.
func (qu *quotaUpload) gates() []gate {
	if qu == nil {
		return nil
	}
	return []gate{quotaGate{qu.u}}
}

// prepare reserves what committing an atomic upload of final bytes adds,
// against the file it replaces now; a *storage.QuotaError when that does
// not fit.
func (qu *quotaUpload) prepare(s *Session, final int64) error {
	if qu == nil || qu.inPlace {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), quotaStatTimeout)
	defer cancel()
	if !qu.u.Unchanged() {
		// Another session of the user may have replaced or removed it.
		qu.replaced = s.fileSize(ctx, qu.p)
	}
	return qu.u.Prepare(ctx, qu.replaced, final)
}

// end settles the quota after the storage commit (committed) or abort of
// the upload, which moved final bytes.
func (qu *quotaUpload) end(s *Session, committed bool, final int64) {
	if qu == nil {
		return
	}
	if qu.inPlace {
		// The data that arrived is in the file either way: count the
		// file as it now is.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), quotaStatTimeout)
		now := s.fileSize(ctx, qu.p)
		cancel()
		qu.u.Commit(qu.old, now)
		return
	}
	if committed {
		qu.u.Commit(qu.replaced, final)
		return
	}
	qu.u.Abort()
}

// quotaRemoval is a file about to be removed or replaced by a rename,
// whose size goes back to the quota when that succeeds.
type quotaRemoval struct {
	q    Quota
	size int64
}

// startQuotaRemoval notes the size of the file at p before it is
// removed. ok is false when the quota's usage could not be determined
// (it has replied).
func (s *Session) startQuotaRemoval(p string) (quotaRemoval, bool) {
	if s.user.Limits.FolderAt(p) != nil {
		return quotaRemoval{}, true
	}
	q, ok := s.userQuota()
	if !ok || q == nil {
		return quotaRemoval{}, ok
	}
	return quotaRemoval{q: q, size: s.fileSize(s.ctx, p)}, true
}

// done gives the removed file back to the quota.
func (r quotaRemoval) done() {
	if r.q != nil && r.size >= 0 {
		r.q.Removed(r.size)
	}
}
