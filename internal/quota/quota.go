// Package quota keeps what each user stores (bytes and files) and holds
// uploads to the user's quota while they stream.
//
// It offers:
//   - Keeper, the server-wide set of per-user trackers: every session of
//     a user shares one, so two parallel uploads cannot both squeeze under
//     the limit. It loads usage from a Store (the state database) and
//     writes changes back about once a second in one transaction; a user
//     without a recorded figure, or whose figure a crash left stale, is
//     scanned first.
//   - Tracker, one user's usage, reservations and limits, with Upload
//     (an upload in flight: it reserves as it streams), Removed (DELE, a
//     file replaced by RNTO) and Set (a scan's result).
//   - Scan, which walks a user's tree through storage.Storage (local disk
//     and S3 alike).
//   - Shared, a store several servers share (internal/pgquota): a keeper
//     given one changes usage there by deltas and spends only room of
//     the quota the store leased it (shared.go), so that the quota holds
//     for all the servers together.
//
// The invariant: usage plus reservations stays within the quota. An
// upload reserves each chunk before it moves (allowing one byte past the
// space left, so that crossing the limit is noticed and the upload
// refused rather than cut short and committed), reserves what its commit
// adds before the storage commit, and turns the reservation into usage
// after it: a replaced file frees its old size, a new file takes one
// from the file count. Deletions and scans may leave usage over a quota
// that was lowered; nothing new then fits until enough is freed.
package quota

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Limits are a user's quotas; 0 is no bound.
type Limits struct {
	Bytes, Files int64
}

// Usage is what a user stores.
type Usage struct {
	Bytes, Files int64
}

// Status is a tracker's figures, for `cloudftpd user list` and the
// control API.
type Status struct {
	User   string
	Used   Usage
	Limits Limits
	// Reserved is what uploads in progress hold.
	Reserved Usage
	// Scanned is when usage was last computed by a scan (zero: never in
	// this server's memory or store).
	Scanned time.Time
	// Known is false until usage was loaded or scanned.
	Known bool
}

// Tracker is one user's usage. It is safe for concurrent use.
type Tracker struct {
	name string
	k    *Keeper

	// loading is a one-slot semaphore held while usage is loaded or
	// scanned, so that waiting sessions can give up with their context.
	loading chan struct{}

	mu       sync.Mutex
	known    bool // usage was loaded or scanned
	limits   Limits
	used     Usage
	reserved Usage
	scanned  time.Time
	dirty    bool // changed since the last write to the store
	// changes counts commits and removals, so that an upload can tell
	// whether the file it replaces may have changed meanwhile.
	changes uint64

	// With a Shared store (shared.go): used is the committed usage of
	// every server as last seen plus this server's pending change;
	// lease is the room this server holds, its reservations included;
	// others is what other servers' leases held at the last exchange.
	// unsynced is set while pending, or a lease given back, is not
	// written yet. syncMu makes exchanges one at a time, t.mu not held.
	pending  Usage
	lease    Usage
	stored   Usage // the lease as the store last recorded it
	others   Usage
	unsynced bool
	syncMu   sync.Mutex
	// growing counts uploads between asking the store for room and
	// reserving it (t.mu is released meanwhile): an exchange that gives
	// room back then keeps the lease whole, or it could hand back the
	// room just granted before its upload takes it, and refuse that
	// upload while the quota has room.
	growing int
	owed    bool // room was kept for growing uploads: give it back after them
}

// Name is the user's name.
func (t *Tracker) Name() string { return t.name }

// Limits returns the quotas in force.
func (t *Tracker) Limits() Limits {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.limits
}

// SetLimits changes the quotas (a session of a user whose limits were
// reloaded logs in).
func (t *Tracker) SetLimits(l Limits) {
	t.mu.Lock()
	t.limits = l
	t.mu.Unlock()
}

// Status returns the tracker's figures.
func (t *Tracker) Status() Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Status{User: t.name, Used: t.used, Limits: t.limits, Reserved: t.reserved, Scanned: t.scanned, Known: t.known}
}

// freeBytes is what may still be reserved; t.mu is held. It may be
// negative (a quota lowered below usage). With a shared store it is what
// of this server's lease no upload holds.
func (t *Tracker) freeBytes() int64 {
	if t.shared() {
		return t.lease.Bytes - t.reserved.Bytes
	}
	return t.limits.Bytes - t.used.Bytes - t.reserved.Bytes
}

// roomLeft is what of the quota no one uses or holds, as far as t
// knows; t.mu is held. With a shared store it counts the other servers'
// leases as of the last exchange.
func (t *Tracker) roomLeft() int64 {
	if t.shared() {
		return t.limits.Bytes - t.used.Bytes - t.others.Bytes - t.reserved.Bytes
	}
	return t.freeBytes()
}

// shared reports whether usage is shared with other servers.
func (t *Tracker) shared() bool { return t.k.opts.Shared != nil }

// bytesError and filesError are the refusals, with what uploads in
// flight hold counted as used: the client is told why its upload did not
// fit. t.mu is held.
func (t *Tracker) bytesError() error {
	inFlight := t.reserved.Bytes + t.others.Bytes
	return &storage.QuotaError{Used: t.used.Bytes + inFlight, Limit: t.limits.Bytes, InFlight: inFlight}
}

func (t *Tracker) filesError() error {
	inFlight := t.reserved.Files + t.others.Files
	return &storage.QuotaError{Files: true, Used: t.used.Files + inFlight, Limit: t.limits.Files, InFlight: inFlight}
}

// reserveFile takes a file slot; t.mu is held.
func (t *Tracker) reserveFile() error {
	if t.limits.Files > 0 {
		if t.shared() && t.lease.Files-t.reserved.Files <= 0 ||
			!t.shared() && t.used.Files+t.reserved.Files >= t.limits.Files {
			return t.filesError()
		}
	}
	t.reserved.Files++
	return nil
}

// reserveFileShared is reserveFile, asking the shared store for a file
// slot (and a first slab of bytes, saving the upload's first chunk a
// round trip) when the lease has none; t.mu is held, and released
// during the exchange.
func (t *Tracker) reserveFileShared(ctx context.Context) error {
	if err := t.reserveFile(); err == nil || !t.shared() {
		return err
	}
	ask := Usage{Files: 1}
	if t.limits.Bytes > 0 && t.freeBytes() < MinSlab {
		ask.Bytes = MinSlab
	}
	if err := t.growLocked(ctx, Usage{Files: 1}, ask); err != nil {
		return err
	}
	return t.reserveFile()
}

// Removed records that a file of size bytes is gone (DELE, or a file
// replaced by a rename onto it).
func (t *Tracker) Removed(size int64) {
	t.mu.Lock()
	t.used.Bytes = max(0, t.used.Bytes-size)
	t.used.Files = max(0, t.used.Files-1)
	t.pending.Bytes -= size
	t.pending.Files--
	t.unsynced = true
	t.dirty = true
	t.changes++
	t.mu.Unlock()
	t.k.changed()
	t.settle()
}

// Set replaces the usage with a scan's result. Uploads in progress keep
// their reservations and add their delta when they commit: a scan counts
// only committed files, which is what their delta is applied to.
func (t *Tracker) Set(u Usage, scanned time.Time) {
	t.mu.Lock()
	t.used, t.scanned, t.known, t.dirty = u, scanned, true, true
	t.pending = Usage{} // the scan saw the changes not yet written
	t.mu.Unlock()
	t.k.changed()
}

// UploadSpec describes an upload to Tracker.Upload.
type UploadSpec struct {
	// Old is the size of the file the upload writes to, -1 when there is
	// none.
	Old int64
	// Base is where writing starts: 0 for STOR, Old for APPE, the offset
	// for REST+STOR.
	Base int64
	// InPlace is true when the data lands in the file as it arrives
	// (APPE, REST+STOR): it cannot be taken back, so the upload never
	// writes past the quota, and what it wrote counts even when it
	// fails.
	InPlace bool
}

// Upload starts holding an upload to the quota. It fails with a
// *storage.QuotaError when the upload would make a new file and the
// file-count quota is full. Exactly one of Commit or Abort must follow.
// ctx bounds asking a shared store for room.
func (t *Tracker) Upload(ctx context.Context, spec UploadSpec) (*Upload, error) {
	u := &Upload{t: t, inPlace: spec.InPlace}
	if spec.Old >= 0 {
		// Bytes the upload overwrites cost nothing.
		u.credit = max(0, spec.Old-spec.Base)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if spec.Old < 0 {
		if err := t.reserveFileShared(ctx); err != nil {
			return nil, err
		}
		u.file = true
	}
	u.changes = t.changes
	return u, nil
}

// Upload is an upload held to a quota. Its Allow and Moved bound each
// chunk of the transfer (see internal/ftp/gate.go); Prepare, Commit and
// Abort end it. It is used by one goroutine at a time.
type Upload struct {
	t       *Tracker
	inPlace bool
	credit  int64 // bytes written over the old file's: free
	written int64
	// reserved is the bytes this upload holds of t.reserved; file is
	// whether it holds a file slot.
	reserved int64
	file     bool
	done     bool
	changes  uint64 // t.changes when the upload started
}

// Unchanged reports whether no upload was committed and no file removed
// through this tracker since the upload started: the file it replaces is
// then as it was at the start, as far as the user's sessions go, and
// need not be looked at again before the commit (a request saved on S3).
func (u *Upload) Unchanged() bool {
	u.t.mu.Lock()
	defer u.t.mu.Unlock()
	return u.t.changes == u.changes
}

// need is what writing w bytes adds to the user's usage.
func (u *Upload) need(w int64) int64 { return max(0, w-u.credit) }

// minStep is the least a chunk reserves when space is short (see Allow).
const minStep = 64 << 10

// Allow implements the gate's allow: it reserves the next chunk of want
// bytes, or what is left of the quota, and returns how much may move.
//
// A chunk reserves at most an eighth of the free space (and at least
// minStep): with a quota far from full that is the whole chunk, and near
// the limit it keeps one upload from holding all the space for a chunk
// it may not fill, refusing parallel uploads that would have fitted.
// When the space runs out, an atomic upload is allowed one byte past it,
// so Moved sees the limit crossed; an in-place one fails at once (the
// byte would stay in the file).
//
// With a shared store, the eighth is of the room the quota has left on
// every server (as of the last round trip), and a chunk is reserved from
// this server's lease; when the lease is short Allow asks the store for
// a slab more, ctx bounding the round trip.
func (u *Upload) Allow(ctx context.Context, want int64) (int64, error) {
	t := u.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.limits.Bytes <= 0 {
		return want, nil
	}
	wanted := u.need(u.written+want) - u.reserved
	if wanted <= 0 {
		return want, nil // overwrites the old file, or reserved already
	}
	free := max(0, t.freeBytes())
	extra := min(wanted, max(minStep, max(0, t.roomLeft())/8))
	if t.shared() {
		if extra > free {
			if err := t.growLocked(ctx, Usage{Bytes: extra - free}, Usage{Bytes: slab(u.written)}); err != nil {
				return 0, err
			}
			free = max(0, t.freeBytes())
		}
	}
	if extra <= free {
		u.reserve(extra)
		return min(want, u.room()), nil
	}
	u.reserve(free)
	room := u.room()
	if u.inPlace {
		if room <= 0 {
			return 0, t.bytesError()
		}
		return min(want, room), nil
	}
	return min(want, room+1), nil
}

// room is how many more bytes fit in the upload's credit and
// reservation; t.mu is held.
func (u *Upload) room() int64 { return u.credit + u.reserved - u.written }

// reserve adds n bytes to the upload's reservation; t.mu is held.
func (u *Upload) reserve(n int64) {
	u.reserved += n
	u.t.reserved.Bytes += n
}

// Moved implements the gate's moved: it counts n more bytes written and
// fails with a *storage.QuotaError when they do not fit. What the chunk
// did not use of its reservation is given back.
func (u *Upload) Moved(n int64) error {
	t := u.t
	t.mu.Lock()
	defer t.mu.Unlock()
	u.written += n
	if t.limits.Bytes <= 0 {
		return nil
	}
	need := u.need(u.written)
	if need > u.reserved {
		extra := need - u.reserved
		if extra > max(0, t.freeBytes()) {
			return t.bytesError()
		}
		u.reserve(extra)
	}
	u.reserve(need - u.reserved) // gives back (negative) what is left over
	return nil
}

// Prepare is called before the storage commit of an atomic upload with
// the size of the file it replaces now (-1: none) and the size it will
// have. It reserves what the commit adds, failing with a
// *storage.QuotaError when that does not fit (the file it replaces
// shrank or went away during the upload, or a new name appeared where a
// file had been). On failure the upload must still be aborted. ctx
// bounds asking a shared store for room.
func (u *Upload) Prepare(ctx context.Context, replaced, final int64) error {
	t := u.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if replaced < 0 && !u.file {
		if err := t.reserveFileShared(ctx); err != nil {
			return err
		}
		u.file = true
	}
	need := max(0, final-max(0, replaced))
	if t.limits.Bytes > 0 && need > u.reserved && need-u.reserved > max(0, t.freeBytes()) && t.shared() {
		short := need - u.reserved - max(0, t.freeBytes())
		if err := t.growLocked(ctx, Usage{Bytes: short}, Usage{Bytes: short}); err != nil {
			return err
		}
	}
	if t.limits.Bytes > 0 && need > u.reserved && need-u.reserved > max(0, t.freeBytes()) {
		return t.bytesError()
	}
	u.reserve(need - u.reserved)
	return nil
}

// Commit turns the reservation into usage: the file that was replaced
// (size replaced; -1 for none) gives way to one of size final. For an
// in-place upload it is called after the storage commit or abort alike,
// with the sizes seen before and after (-1 when there is no file): the
// data is in the file either way.
func (u *Upload) Commit(replaced, final int64) {
	t := u.t
	t.mu.Lock()
	if !u.done {
		u.done = true
		t.reserved.Bytes -= u.reserved
		if u.file {
			t.reserved.Files--
		}
		delta := Usage{Bytes: max(0, final) - max(0, replaced), Files: exists(final) - exists(replaced)}
		t.used.Bytes = max(0, t.used.Bytes+delta.Bytes)
		t.used.Files = max(0, t.used.Files+delta.Files)
		// The lease pays for what the commit adds: the store moves it
		// from the lease to the usage at the next exchange.
		t.lease.Bytes = max(0, t.lease.Bytes-max(0, delta.Bytes))
		t.lease.Files = max(0, t.lease.Files-max(0, delta.Files))
		t.pending.Bytes += delta.Bytes
		t.pending.Files += delta.Files
		t.unsynced = true
		t.dirty = true
		t.changes++
	}
	t.mu.Unlock()
	t.k.changed()
	t.settle()
}

// exists is 1 for the size of a file, 0 for -1 (no file).
func exists(size int64) int64 {
	if size < 0 {
		return 0
	}
	return 1
}

// Abort gives the reservation back: nothing was stored.
func (u *Upload) Abort() {
	t := u.t
	t.mu.Lock()
	if u.done {
		t.mu.Unlock()
		return
	}
	u.done = true
	t.reserved.Bytes -= u.reserved
	if u.file {
		t.reserved.Files--
	}
	t.mu.Unlock()
	t.settle()
}

// Written is how many bytes the upload has moved.
func (u *Upload) Written() int64 {
	u.t.mu.Lock()
	defer u.t.mu.Unlock()
	return u.written
}

// Scan walks tree from its root and returns what it stores: the size and
// number of its regular files. Directories and symbolic links count
// nothing; uploads in progress are not listed by the backends and count
// nothing either (their reservations do).
func Scan(ctx context.Context, tree storage.Storage) (Usage, error) {
	var u Usage
	dirs := []string{"/"}
	for len(dirs) > 0 {
		dir := dirs[len(dirs)-1]
		dirs = dirs[:len(dirs)-1]
		if err := scanDir(ctx, tree, dir, &u, &dirs); err != nil {
			return Usage{}, err
		}
	}
	return u, nil
}

func scanDir(ctx context.Context, tree storage.Storage, dir string, u *Usage, dirs *[]string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("quota: scan: %w", err)
	}
	it, err := tree.ReadDir(ctx, dir)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) && dir != "/" {
			return nil // removed while we walked
		}
		return fmt.Errorf("quota: scan %s: %w", dir, err)
	}
	defer it.Close()
	for {
		fi, err := it.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("quota: scan %s: %w", dir, err)
		}
		switch {
		case fi.IsDir():
			p := dir + "/" + fi.Name
			if dir == "/" {
				p = "/" + fi.Name
			}
			*dirs = append(*dirs, p)
		case fi.Mode.IsRegular():
			u.Bytes += fi.Size
			u.Files++
		}
	}
}

// discard is the logger of a Keeper given none.
var discard = slog.New(slog.DiscardHandler)
