package quota

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/state"
)

// Shared is usage kept in a store several servers share (PostgreSQL,
// internal/pgquota), so that a user's quota holds across them.
//
// Each server changes the committed usage by deltas, never by writing
// its own figure over another's, and spends only room of the quota it
// holds as a lease: the store grants a lease only while committed usage
// plus every server's lease stays within the quota. A server spends its
// lease locally (an upload's chunks cost no round trip), gives back
// what no upload holds when an upload ends, and renews its leases while
// it runs; the leases of a server that died expire, so the room they
// held is not lost.
type Shared interface {
	// UsageOf returns user's committed usage; ok is false when none is
	// recorded (the tree is scanned then).
	UsageOf(ctx context.Context, user string) (u state.Usage, ok bool, err error)
	// SetUsage records u, a scan's result, as the committed usage of
	// user and returns the figure in force: u when replace is set
	// (`cloudftpd quota scan`) or user had none; else the one recorded
	// meanwhile (another server scanned first, and may have committed
	// uploads since).
	SetUsage(ctx context.Context, user string, u Usage, scanned time.Time, replace bool) (state.Usage, error)
	// Exchange applies x.Delta to user's committed usage, sets this
	// server's lease to x.Hold and grows it towards x.Ask (at least
	// x.Need when that fits) within x.Limits, in one transaction.
	Exchange(ctx context.Context, user string, x Exchange) (Granted, error)
	// Renew extends every lease this server holds.
	Renew(ctx context.Context) error
	// ReleaseAll gives back every lease this server holds (it stops).
	ReleaseAll(ctx context.Context) error
}

// Exchange is one round trip of a server's tracker with the shared
// store.
type Exchange struct {
	// Delta is the change of committed usage not yet written.
	Delta Usage
	// Hold is the lease the server keeps: never more than the store last
	// granted it (a server shrinks its lease locally before telling the
	// store, and grows it only with what the store granted).
	Hold Usage
	// Need is the least growth of the lease worth having, Ask the most
	// wanted (a slab, so that the next chunks cost no round trip).
	Need, Ask Usage
	// Limits are the user's quotas; 0 is no bound (and no lease).
	Limits Limits
}

// Granted is the store's answer to an Exchange.
type Granted struct {
	// Lease is the lease the server now holds: Hold plus what was
	// granted. It is less than Hold when the server's lease had expired
	// and the room was given to others meanwhile.
	Lease Usage
	// Used is the committed usage, every server's changes included;
	// Others is what the other servers' leases hold.
	Used, Others Usage
}

// Slab sizes of the leases an upload asks for. An upload asks for as
// much as it has written so far (so a big one makes a round trip each
// time it has doubled, then one every MaxSlab), at least MinSlab (so a
// small file needs one lease, or none when the lease of another upload
// on this server still has room). The store grants at most an eighth of
// the room left once the quota is close to full, so one server's slab
// does not refuse uploads on another that would have fitted.
const (
	MinSlab = 1 << 20
	MaxSlab = 64 << 20
)

// slab is the lease an upload that wrote written bytes asks for.
func slab(written int64) int64 { return min(MaxSlab, max(MinSlab, written)) }

// exchangeTimeout bounds an exchange made after a transfer (a commit,
// an abort, a removal), which no session's context bounds: the reply
// waits for it, so it is short; a change not written is written by the
// flush loop later.
const exchangeTimeout = 5 * time.Second

// exchange writes t's pending change of usage to the shared store and
// settles its lease: with release, it gives back what no upload holds;
// otherwise it asks for need more (and up to ask), unless the lease
// already has that room (another upload grew it meanwhile).
func (t *Tracker) exchange(ctx context.Context, need, ask Usage, release bool) error {
	sh := t.k.opts.Shared
	t.syncMu.Lock()
	defer t.syncMu.Unlock()
	t.mu.Lock()
	kept := false // room not given back, for an upload about to take it
	if release && t.growing > 0 {
		kept = t.lease.Bytes > max(0, t.reserved.Bytes) || t.lease.Files > max(0, t.reserved.Files)
	} else if release {
		// Shrink here first: room the store is told is free must not be
		// spent meanwhile.
		t.lease.Bytes = min(t.lease.Bytes, max(0, t.reserved.Bytes))
		t.lease.Files = min(t.lease.Files, max(0, t.reserved.Files))
		if t.limits.Bytes <= 0 {
			t.lease.Bytes = 0
		}
		if t.limits.Files <= 0 {
			t.lease.Files = 0
		}
	} else if t.pending == (Usage{}) && t.leaseFree().Bytes >= need.Bytes && t.leaseFree().Files >= need.Files {
		t.mu.Unlock()
		return nil
	}
	if release && t.pending == (Usage{}) && t.lease == t.stored {
		t.unsynced = false
		t.mu.Unlock()
		return nil // nothing to write: an abort with no lease to give back
	}
	x := Exchange{Delta: t.pending, Hold: t.lease, Need: need, Ask: ask, Limits: t.limits}
	t.mu.Unlock()

	g, err := sh.Exchange(ctx, t.name, x)

	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.unsynced = true
		t.k.changed()
		return fmt.Errorf("quota: usage of %s in the shared store: %w", t.name, err)
	}
	t.pending = Usage{Bytes: t.pending.Bytes - x.Delta.Bytes, Files: t.pending.Files - x.Delta.Files}
	// What was spent meanwhile has left t.lease already and is in
	// t.pending, for the next exchange.
	t.lease.Bytes += g.Lease.Bytes - x.Hold.Bytes
	t.lease.Files += g.Lease.Files - x.Hold.Files
	t.lease = Usage{Bytes: max(0, t.lease.Bytes), Files: max(0, t.lease.Files)}
	t.stored = g.Lease
	t.used = Usage{Bytes: max(0, g.Used.Bytes+t.pending.Bytes), Files: max(0, g.Used.Files+t.pending.Files)}
	t.others = g.Others
	// Room kept for a growing upload is given back by a later exchange
	// (the upload's own end, or the flush loop).
	t.unsynced = t.pending != (Usage{}) || kept
	t.owed = t.owed || kept
	if release && !kept {
		t.owed = false
	}
	return nil
}

// leaseFree is what of the lease no upload holds; t.mu is held.
func (t *Tracker) leaseFree() Usage {
	return Usage{Bytes: t.lease.Bytes - t.reserved.Bytes, Files: t.lease.Files - t.reserved.Files}
}

// settle is the exchange after an upload ended or a file went away:
// write the change, give back the room no upload holds. A failure is
// logged; the flush loop tries again.
func (t *Tracker) settle() {
	if t.k.opts.Shared == nil {
		return
	}
	t.mu.Lock()
	known := t.known
	t.mu.Unlock()
	if !known {
		// No figure to change yet (its load failed): the scan that
		// makes one sees this change.
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	if err := t.exchange(ctx, Usage{}, Usage{}, true); err != nil {
		t.k.log.Warn("quota: usage not written to the shared store yet; trying again", "user", t.name, "err", err)
	}
}

// grow asks the shared store for need more room (up to ask). It returns
// nil without the room when the quota has none: the caller finds its
// lease still short.
func (t *Tracker) grow(ctx context.Context, need, ask Usage) error {
	return t.exchange(ctx, need, Usage{Bytes: max(need.Bytes, ask.Bytes), Files: max(need.Files, ask.Files)}, false)
}

// growLocked is grow for a caller holding t.mu: it releases t.mu for
// the round trip and takes it again, counting the caller in t.growing
// meanwhile so that no exchange gives back the room granted to it.
func (t *Tracker) growLocked(ctx context.Context, need, ask Usage) error {
	t.growing++
	t.mu.Unlock()
	err := t.grow(ctx, need, ask)
	t.mu.Lock()
	t.growing--
	if t.growing == 0 && t.owed {
		// The last upload to grow is past its grant: give back what
		// an exchange kept for it, once the caller lets go of t.mu.
		t.owed = false
		go t.settle()
	}
	return err
}

// syncShared is the flush of a shared keeper: it writes every tracker's
// pending change and renews the leases.
func (k *Keeper) syncShared(ctx context.Context) error {
	sh := k.opts.Shared
	k.dirty.Store(false)
	k.mu.Lock()
	var todo []*Tracker
	for _, t := range k.users {
		todo = append(todo, t)
	}
	k.mu.Unlock()
	var first error
	holding := false // some lease is recorded: renew
	for _, t := range todo {
		t.mu.Lock()
		behind := t.unsynced && t.known
		holding = holding || t.stored != (Usage{})
		t.mu.Unlock()
		if !behind {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, ioTimeout)
		err := t.exchange(ctx, Usage{}, Usage{}, true)
		cancel()
		if err != nil && first == nil {
			first = err
		}
	}
	if now := k.opts.Now(); holding && now.Sub(k.renewed) >= k.opts.LeaseRenew {
		ctx, cancel := context.WithTimeout(ctx, ioTimeout)
		err := sh.Renew(ctx)
		cancel()
		if err != nil {
			// The leases may expire and their room go to other servers:
			// spend no more of them than uploads hold already.
			for _, t := range todo {
				t.mu.Lock()
				t.lease.Bytes = min(t.lease.Bytes, max(0, t.reserved.Bytes))
				t.lease.Files = min(t.lease.Files, max(0, t.reserved.Files))
				t.mu.Unlock()
			}
			if first == nil {
				first = fmt.Errorf("quota: renewing leases: %w", err)
			}
		} else {
			k.renewed = now
		}
	}
	return first
}
