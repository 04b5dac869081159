package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/state"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Store keeps usage across restarts; *state.Store is one.
type Store interface {
	ClaimUsage(ctx context.Context, now time.Time) (recovered bool, err error)
	ReleaseUsage(ctx context.Context) error
	UsageOf(ctx context.Context, user string) (state.Usage, bool, error)
	PutUsage(ctx context.Context, rows []state.Usage, now time.Time) error
}

var _ Store = (*state.Store)(nil)

// Options configure a Keeper.
type Options struct {
	// Open returns the store, at the first use of a quota (a server
	// whose users have none never opens it). Open nil, a nil store or an
	// error keep usage in memory only: every start then scans again.
	Open func(ctx context.Context) (Store, error)
	// FlushInterval is how often changed usage is written (default 1s).
	// A crash loses at most that much, and the next start rescans
	// the users it may have touched (see state.ClaimUsage).
	FlushInterval time.Duration
	Logger        *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Shared, when set, is a store several servers share (PostgreSQL):
	// usage is read from it and changed in it by deltas, and uploads
	// spend room leased from it (shared.go). Open is not used then.
	Shared Shared
	// LeaseRenew is how often a shared keeper renews its leases
	// (default 10s); it must be well under the store's lease lifetime.
	LeaseRenew time.Duration
}

// DefaultLeaseRenew is Options.LeaseRenew when unset.
const DefaultLeaseRenew = 10 * time.Second

// DefaultFlushInterval is Options.FlushInterval when unset.
const DefaultFlushInterval = time.Second

// ioTimeout bounds one read or write of the store: the store's own, not
// a session's (a flush carries many users' figures).
const ioTimeout = 30 * time.Second

// Keeper holds every user's Tracker, server-wide. It is safe for
// concurrent use.
type Keeper struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	users map[string]*Tracker

	openOnce sync.Once
	storeMu  sync.Mutex
	store    Store // nil: memory only (or not opened yet)

	dirty   atomic.Bool
	flushMu sync.Mutex // one flush at a time
	renewed time.Time  // last lease renewal (shared); flushMu held
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
}

// New returns a keeper and starts its flush loop; Close stops it.
func New(opts Options) *Keeper {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LeaseRenew <= 0 {
		opts.LeaseRenew = DefaultLeaseRenew
	}
	log := opts.Logger
	if log == nil {
		log = discard
	}
	k := &Keeper{opts: opts, log: log, users: make(map[string]*Tracker), stop: make(chan struct{}), done: make(chan struct{})}
	go k.flushLoop()
	return k
}

// changed notes that some tracker has something to write.
func (k *Keeper) changed() { k.dirty.Store(true) }

// tracker returns user's tracker, creating an empty one.
func (k *Keeper) tracker(user string) *Tracker {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.users[user]
	if t == nil {
		t = &Tracker{name: user, k: k, loading: make(chan struct{}, 1)}
		k.users[user] = t
	}
	return t
}

// Lookup returns user's tracker if one is in memory, else nil.
func (k *Keeper) Lookup(user string) *Tracker {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.users[user]
}

// Tracker returns user's tracker with limits in force and its usage
// known: loaded from the store, or, when the store has no figure (the
// first use of a quota) or a stale one (after a crash), computed by a
// scan of tree. Sessions of the user arriving meanwhile wait for the
// one scan (or give up with their ctx).
func (k *Keeper) Tracker(ctx context.Context, user string, limits Limits, tree storage.Storage) (*Tracker, error) {
	t := k.tracker(user)
	t.SetLimits(limits)
	if t.Status().Known {
		return t, nil
	}
	select {
	case t.loading <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("quota: usage of %s: %w", user, ctx.Err())
	}
	defer func() { <-t.loading }()
	if t.Status().Known {
		return t, nil // another session loaded it while we waited
	}
	if sh := k.opts.Shared; sh != nil {
		rctx, cancel := context.WithTimeout(ctx, ioTimeout)
		row, ok, err := sh.UsageOf(rctx, user)
		cancel()
		if err != nil {
			// Not a scan: its figure would replace the one every node
			// shares, and the database is needed for the leases anyway.
			return nil, fmt.Errorf("quota: usage of %s: %w", user, err)
		}
		if ok && !row.Stale {
			t.mu.Lock()
			if !t.known {
				t.used, t.scanned, t.known = Usage{Bytes: row.Bytes, Files: row.Files}, row.Scanned, true
			}
			t.mu.Unlock()
			return t, nil
		}
	} else if st := k.storeFor(ctx); st != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
		row, ok, err := st.UsageOf(rctx, user)
		cancel()
		switch {
		case err != nil:
			k.log.Error("quota: reading usage; scanning instead", "user", user, "err", err)
		case ok && !row.Stale:
			t.mu.Lock()
			if !t.known {
				t.used, t.scanned, t.known = Usage{Bytes: row.Bytes, Files: row.Files}, row.Scanned, true
			}
			t.mu.Unlock()
			return t, nil
		}
	}
	if _, err := k.scan(ctx, t, tree, false); err != nil {
		return nil, err
	}
	return t, nil
}

// Rescan computes user's usage again by a scan of tree and makes it the
// figure in force (`cloudftpd quota scan`), creating the tracker if
// needed. limits are the user's quotas.
func (k *Keeper) Rescan(ctx context.Context, user string, limits Limits, tree storage.Storage) (Status, error) {
	t := k.tracker(user)
	t.SetLimits(limits)
	select {
	case t.loading <- struct{}{}:
	case <-ctx.Done():
		return Status{}, fmt.Errorf("quota: scan %s: %w", user, ctx.Err())
	}
	defer func() { <-t.loading }()
	// Claim the store first: a claim that finds a crash marks rows
	// stale, and must not do so to the figure about to be written.
	k.storeFor(ctx)
	if _, err := k.scan(ctx, t, tree, true); err != nil {
		return Status{}, err
	}
	return t.Status(), nil
}

// scan walks tree and sets t's usage; t.loading is held.
// With a shared store the figure is written there; replace says whether
// it replaces one another server recorded meanwhile.
func (k *Keeper) scan(ctx context.Context, t *Tracker, tree storage.Storage, replace bool) (Usage, error) {
	start := k.opts.Now()
	u, err := Scan(ctx, tree)
	if err != nil {
		return Usage{}, fmt.Errorf("quota: usage of %s: %w", t.name, err)
	}
	scanned := k.opts.Now()
	if sh := k.opts.Shared; sh != nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
		row, err := sh.SetUsage(wctx, t.name, u, scanned, replace)
		cancel()
		if err != nil {
			return Usage{}, fmt.Errorf("quota: usage of %s: %w", t.name, err)
		}
		u, scanned = Usage{Bytes: row.Bytes, Files: row.Files}, row.Scanned
	}
	t.Set(u, scanned)
	k.log.Info("quota: usage scanned", "user", t.name, "bytes", u.Bytes, "files", u.Files,
		"duration", time.Since(start).Round(time.Millisecond))
	return u, nil
}

// storeFor opens the store at its first use, claiming the usage in it.
func (k *Keeper) storeFor(ctx context.Context) Store {
	k.openOnce.Do(func() {
		if k.opts.Open == nil || k.closed.Load() {
			return // after Close, a claim would never be released
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
		defer cancel()
		st, err := k.opts.Open(ctx)
		if err != nil {
			k.log.Error("quota: cannot open the state store; usage is kept in memory only and scanned again at the next start", "err", err)
			return
		}
		if st == nil {
			return // no store configured: memory only
		}
		recovered, err := st.ClaimUsage(ctx, k.opts.Now())
		if err != nil {
			k.log.Error("quota: cannot claim usage in the state store; usage is kept in memory only", "err", err)
			return
		}
		if recovered {
			k.log.Warn("quota: the last server run did not stop cleanly; recorded usage is marked stale and each user's tree is scanned at its next use")
		}
		k.storeMu.Lock()
		k.store = st
		k.storeMu.Unlock()
	})
	return k.opened()
}

// opened is the store if it was opened, else nil.
func (k *Keeper) opened() Store {
	k.storeMu.Lock()
	defer k.storeMu.Unlock()
	return k.store
}

func (k *Keeper) flushLoop() {
	defer close(k.done)
	tick := time.NewTicker(k.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-tick.C:
			if k.dirty.Load() || k.opts.Shared != nil { // shared: renew the leases too
				if err := k.Flush(context.Background()); err != nil {
					k.log.Error("quota: writing usage", "err", err)
				}
			}
		}
	}
}

// Flush writes the usage that changed since the last flush, in one
// transaction.
func (k *Keeper) Flush(ctx context.Context) error {
	k.flushMu.Lock()
	defer k.flushMu.Unlock()
	if k.opts.Shared != nil {
		return k.syncShared(ctx)
	}
	store := k.opened()
	if store == nil {
		k.dirty.Store(false)
		return nil
	}
	k.dirty.Store(false) // before collecting: a change from now on is seen next time
	k.mu.Lock()
	trackers := make([]*Tracker, 0, len(k.users))
	for _, t := range k.users {
		trackers = append(trackers, t)
	}
	k.mu.Unlock()
	var rows []state.Usage
	var written []*Tracker
	for _, t := range trackers {
		t.mu.Lock()
		if t.dirty && t.known {
			t.dirty = false
			rows = append(rows, state.Usage{User: t.name, Bytes: t.used.Bytes, Files: t.used.Files, Scanned: t.scanned})
			written = append(written, t)
		}
		t.mu.Unlock()
	}
	if len(rows) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	if err := store.PutUsage(ctx, rows, k.opts.Now()); err != nil {
		for _, t := range written {
			t.mu.Lock()
			t.dirty = true
			t.mu.Unlock()
		}
		k.dirty.Store(true)
		return fmt.Errorf("quota: %w", err)
	}
	return nil
}

// Statuses returns the figures of every tracker in memory, by name.
func (k *Keeper) Statuses() []Status {
	k.mu.Lock()
	trackers := make([]*Tracker, 0, len(k.users))
	for _, t := range k.users {
		trackers = append(trackers, t)
	}
	k.mu.Unlock()
	out := make([]Status, 0, len(trackers))
	for _, t := range trackers {
		out = append(out, t.Status())
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.User, b.User) })
	return out
}

// Close stops the flush loop, writes what changed and releases the
// usage in the store, so the next start trusts it. Sessions must be done
// with their trackers: a change after Close is not written.
func (k *Keeper) Close() error {
	if !k.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(k.stop)
	<-k.done
	err := k.Flush(context.Background())
	k.mu.Lock()
	used := len(k.users) > 0
	k.mu.Unlock()
	if sh := k.opts.Shared; sh != nil && !used {
		return err // no quota was used: no lease to give back
	}
	if sh := k.opts.Shared; sh != nil {
		// Give back every lease, written or not: another server may use
		// the room at once rather than when the leases expire.
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if rerr := sh.ReleaseAll(ctx); rerr != nil {
			err = errors.Join(err, rerr)
		}
		if err != nil {
			return fmt.Errorf("quota: shared usage: %w", err)
		}
		return nil
	}
	if store := k.opened(); err == nil && store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		err = store.ReleaseUsage(ctx)
	}
	if err != nil {
		// Not released: the next start rescans, which is right when the
		// last figures could not be written.
		return errors.Join(errors.New("quota: usage not saved; it is scanned again at the next start"), err)
	}
	return nil
}
