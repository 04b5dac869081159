package pgbans

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/defender"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
)

// Options configure a Sync.
type Options struct {
	// Node names this node in the bans it makes (shown by `cloudftpd ban
	// list`); default the host name.
	Node string
	// PollInterval is how often the change counter is read besides
	// LISTEN (default 5s): the longest a missed notification goes
	// unnoticed, and a database that stops answering without closing the
	// connection.
	PollInterval time.Duration
	// FlushInterval is how often the points scored here are sent
	// (default 1s): an attack spread over the nodes is banned at most
	// about this long after it reaches the threshold on all of them.
	FlushInterval time.Duration
	// PruneInterval is how often forgotten bans and stale scores are
	// deleted (default 1m).
	PruneInterval time.Duration
	// Timeout bounds each query and connection attempt (default 5s).
	Timeout time.Duration
	// Logger receives the database's comings and goings; nil discards.
	Logger *slog.Logger
}

// maxPending caps the prefixes whose points wait to be sent, so that a
// flood of addresses while the database is away costs bounded memory.
const maxPending = 100_000

// Sync keeps one node's defender and the shared bans in step. It is the
// defender's [defender.Share] (give it to SetShare), and serves Ban,
// Unban and Bans for the control API. It is safe for concurrent use.
//
// While the database is out of reach the defender goes on alone: its
// bans hold, the bans it makes and the points it scores wait (the points
// for at most the window) and are sent when the database answers again,
// after which its copy of the bans is read afresh.
type Sync struct {
	store *Store
	d     *defender.Defender
	opts  Options
	log   *slog.Logger

	mu sync.Mutex
	// scores are the points scored here not yet sent, by prefix.
	scores map[netip.Prefix]*pending
	// queue is the bans and unbans made here not yet written, in order.
	queue []change
	// held are prefixes whose change made here is being written: the
	// listener leaves them alone meanwhile, so that an older row read
	// from the database cannot undo a newer ban in the defender.
	held map[netip.Prefix]int
	// dropped counts points not sent for maxPending, logged once a flush.
	dropped int

	// wake makes the writer send the queue at once.
	wake chan struct{}
	// up is whether the defender's copy of the bans is known current.
	up atomic.Bool
	// failing is whether the writer's last write failed.
	failing atomic.Bool
	seen    int64 // change counter of the last full read; listener only
	// loads counts full reads, for tests.
	loads atomic.Int64

	startOnce sync.Once
	stop      context.CancelFunc
	done      sync.WaitGroup
}

type pending struct {
	points int
	first  time.Time
}

// change is a ban (ban set) or an unban (prefix) made here.
type change struct {
	ban    *defender.Ban
	prefix netip.Prefix
}

var _ defender.Share = (*Sync)(nil)

// New returns a Sync of d's bans over pool (which stays the caller's). It
// connects to nothing until Start.
func New(pool *pgxpool.Pool, d *defender.Defender, opts Options) *Sync {
	if opts.Node == "" {
		opts.Node, _ = os.Hostname()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.PruneInterval <= 0 {
		opts.PruneInterval = time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sync{
		store:  NewStore(pool, opts.Node),
		d:      d,
		opts:   opts,
		log:    log,
		scores: make(map[netip.Prefix]*pending),
		held:   make(map[netip.Prefix]int),
		wake:   make(chan struct{}, 1),
	}
}

// Node is the name this node signs its bans with.
func (s *Sync) Node() string { return s.opts.Node }

// Store returns the Sync's store.
func (s *Sync) Store() *Store { return s.store }

// Scored implements defender.Share: the points wait for the next batch.
func (s *Sync) Scored(key netip.Prefix, points int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.scores[key]
	if p == nil {
		if len(s.scores) >= maxPending {
			s.dropped += points
			return
		}
		p = &pending{first: time.Now()}
		s.scores[key] = p
	}
	p.points += points
}

// Banned implements defender.Share: the ban is written at once, in the
// background.
func (s *Sync) Banned(b defender.Ban) {
	s.mu.Lock()
	delete(s.scores, b.Prefix) // the ban ends the score
	s.queue = append(s.queue, change{ban: &b})
	s.held[b.Prefix]++
	s.mu.Unlock()
	s.poke()
}

// Unbanned implements defender.Share.
func (s *Sync) Unbanned(p netip.Prefix) {
	s.mu.Lock()
	delete(s.scores, p)
	s.queue = append(s.queue, change{prefix: p})
	s.held[p]++
	s.mu.Unlock()
	s.poke()
}

func (s *Sync) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Sync) hold(p netip.Prefix) {
	s.mu.Lock()
	s.held[p]++
	s.mu.Unlock()
}

func (s *Sync) release(p netip.Prefix) {
	s.mu.Lock()
	if s.held[p]--; s.held[p] <= 0 {
		delete(s.held, p)
	}
	s.mu.Unlock()
}

func (s *Sync) isHeld(p netip.Prefix) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[p] > 0
}

// Bans returns the bans in force on all the nodes, from the database.
func (s *Sync) Bans(ctx context.Context) ([]defender.Ban, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	return s.store.List(ctx)
}

// Ban bans p for every node, as [defender.Defender.Ban] does for one: in
// the database first (an error when it is out of reach: the ban is not
// made), then in this node's defender at once; the other nodes learn of
// it through the notification.
func (s *Sync) Ban(ctx context.Context, p netip.Prefix, dur time.Duration, reason string) (defender.Ban, error) {
	key, err := s.d.CheckBan(p, dur)
	if err != nil {
		return defender.Ban{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	s.hold(key)
	defer s.release(key)
	b, err := s.store.Ban(ctx, key, dur, reason, s.d.Limits())
	if err != nil {
		return defender.Ban{}, err
	}
	s.d.Apply(b)
	return b, nil
}

// Unban lifts the ban of p for every node, and forgets its strikes and
// score, in the database and then in this node's defender. Errors are
// [Store.Unban]'s.
func (s *Sync) Unban(ctx context.Context, p netip.Prefix) error {
	key, err := defender.Canonical(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	s.hold(key)
	defer s.release(key)
	err = s.store.Unban(ctx, key)
	if err != nil && !errors.Is(err, defender.ErrNotBanned) {
		return err
	}
	s.mu.Lock()
	delete(s.scores, key)
	s.mu.Unlock()
	s.d.Lift(key) // an expired ban's strikes go too
	return err
}

// Start runs the loops that keep the defender and the database in step
// until ctx ends or Close is called; calls after the first do nothing.
func (s *Sync) Start(ctx context.Context) {
	s.startOnce.Do(func() {
		ctx, s.stop = context.WithCancel(ctx)
		s.done.Add(2)
		go func() {
			defer s.done.Done()
			s.runListener(ctx)
		}()
		go func() {
			defer s.done.Done()
			s.runWriter(ctx)
		}()
	})
}

// Close stops the loops, then sends what waits (bans made here, points)
// within one Timeout.
func (s *Sync) Close() error {
	started := false
	s.startOnce.Do(func() {})
	if s.stop != nil {
		s.stop()
		started = true
	}
	if !started {
		return nil
	}
	s.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	return s.flush(ctx)
}

// Ready reports whether the defender's copy of the bans is known to be
// the database's (within one notification).
func (s *Sync) Ready() bool { return s.up.Load() }

// runWriter sends the changes and points made here, at once for bans and
// every FlushInterval for points, and prunes.
func (s *Sync) runWriter(ctx context.Context) {
	flush := time.NewTicker(s.opts.FlushInterval)
	defer flush.Stop()
	prune := time.NewTicker(s.opts.PruneInterval)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			s.writeReport(s.publish(ctx))
		case <-flush.C:
			s.writeReport(s.flush(ctx))
		case <-prune.C:
			qctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
			n, err := s.store.Prune(qctx, s.d.Limits().Window)
			cancel()
			if err == nil && n > 0 {
				s.log.Debug("bans: pruned forgotten bans and stale scores", "rows", n)
			}
		}
	}
}

// writeReport logs the first failed write of a streak and the recovery.
func (s *Sync) writeReport(err error) {
	if err != nil && errors.Is(err, context.Canceled) {
		return
	}
	if err != nil {
		if !s.failing.Swap(true) {
			s.log.Error("ban database unavailable: this node's bans and scores wait and are sent when it answers", "err", err)
		}
		return
	}
	if s.failing.Swap(false) {
		s.log.Info("ban database reachable again: this node's bans and scores sent")
	}
}

// flush writes the queued changes, then the points.
func (s *Sync) flush(ctx context.Context) error {
	if err := s.publish(ctx); err != nil {
		return err
	}
	return s.sendScores(ctx)
}

// publish writes the queued bans and unbans, in order, and applies what
// the database holds afterwards, unless a later change of the same prefix
// waits (it will apply its own result). It stops at the first failure,
// keeping the rest for the next try.
func (s *Sync) publish(ctx context.Context) error {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return nil
		}
		c := s.queue[0]
		s.mu.Unlock()

		p := c.prefix
		if c.ban != nil {
			p = c.ban.Prefix
		}
		qctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		var b defender.Ban
		var err error
		if c.ban != nil {
			b, err = s.store.Publish(qctx, *c.ban, s.d.Limits())
		} else if err = s.store.Unban(qctx, p); errors.Is(err, defender.ErrNotBanned) {
			err = nil
		}
		cancel()
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.queue = s.queue[1:]
		later := slices.ContainsFunc(s.queue, func(q change) bool { return q.prefix == p || q.ban != nil && q.ban.Prefix == p })
		s.mu.Unlock()
		switch {
		case later:
		case c.ban != nil:
			s.d.Apply(b)
		default:
			s.d.Lift(p)
		}
		s.release(p)
	}
}

// sendScores sends the points scored here and applies the bans they made.
// On a failure the points are put back, to be sent with the next batch.
func (s *Sync) sendScores(ctx context.Context) error {
	lim := s.d.Limits()
	s.mu.Lock()
	batch, dropped := s.scores, s.dropped
	s.scores, s.dropped = make(map[netip.Prefix]*pending), 0
	s.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("bans: too many scored addresses waiting for the database; points not shared", "points", dropped, "max", maxPending)
	}
	stale := time.Now().Add(-lim.Window)
	var scores []Score
	for p, sc := range batch {
		if sc.first.After(stale) {
			scores = append(scores, Score{Prefix: p, Points: sc.points})
		}
	}
	if len(scores) == 0 {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	made, err := s.store.AddScores(qctx, scores, lim)
	cancel()
	if err != nil {
		s.mu.Lock()
		for _, sc := range scores {
			if p := s.scores[sc.Prefix]; p != nil {
				p.points += sc.Points
				p.first = batch[sc.Prefix].first
			} else if len(s.scores) < maxPending {
				s.scores[sc.Prefix] = batch[sc.Prefix]
			}
		}
		s.mu.Unlock()
		return err
	}
	for _, b := range made {
		s.d.Apply(b)
	}
	return nil
}

// runListener keeps a listening session going (pgdb.Follower): it reads
// every ban when the session starts, each ban a notification names, and
// the change counter when none comes for PollInterval.
func (s *Sync) runListener(ctx context.Context) {
	f := pgdb.Follower{
		Pool:    s.store.pool,
		Channel: Channel,
		// Named, so an operator (or a test) can find it in pg_stat_activity.
		ApplicationName:  ListenerName(s.opts.Node),
		Timeout:          s.opts.Timeout,
		PollInterval:     s.opts.PollInterval,
		Log:              s.log,
		Up:               &s.up,
		Unavailable:      "ban database unavailable: this node keeps its own bans and learns the others' when it answers again",
		StillUnavailable: "ban database still unavailable",
		// Bans that waited for the database: the writer sends them now
		// (the read that follows keeps them meanwhile).
		Listening: s.poke,
		Load:      s.load,
		Notified:  s.notified,
		Poll:      s.poll,
	}
	f.Run(ctx)
}

// poll reads the change counter and everything when it moved.
func (s *Sync) poll(ctx context.Context, conn *pgx.Conn) error {
	qctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	v, err := version(qctx, conn)
	cancel()
	if err != nil {
		return fmt.Errorf("polling for changes: %w", err)
	}
	if v != s.seen {
		return s.load(ctx, conn)
	}
	return nil
}

// ListenerName is the application_name of a node's listening session.
func ListenerName(node string) string { return "cloudftpd bans " + node }

// notified reads again the row a notification names and applies it, or
// everything for an empty payload.
func (s *Sync) notified(ctx context.Context, conn *pgx.Conn, payload string) error {
	p, err := netip.ParsePrefix(payload)
	if err != nil {
		return s.load(ctx, conn)
	}
	if s.isHeld(p) {
		return nil // being written here: the writer applies the result
	}
	qctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	b, err := get(qctx, conn, p)
	cancel()
	if err != nil {
		return fmt.Errorf("reading a changed ban: %w", err)
	}
	if s.isHeld(p) {
		return nil
	}
	if b == nil {
		s.d.Lift(p)
	} else {
		s.d.Apply(*b)
	}
	return nil
}

// load reads every ban and makes them the defender's, keeping the bans
// made here that are still being written.
func (s *Sync) load(ctx context.Context, conn *pgx.Conn) error {
	qctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	v, bans, err := snapshot(qctx, conn)
	cancel()
	if err != nil {
		return fmt.Errorf("reading the bans: %w", err)
	}
	// A prefix whose change made here is being written keeps the entry
	// the defender has (that change, applied here already); the writer
	// applies the database's result when the write is done.
	s.mu.Lock()
	if len(s.held) > 0 {
		kept := bans[:0]
		for _, b := range bans {
			if s.held[b.Prefix] == 0 {
				kept = append(kept, b)
			}
		}
		bans = kept
		for _, b := range s.d.Bans() {
			if s.held[b.Prefix] > 0 {
				bans = append(bans, b)
			}
		}
	}
	s.mu.Unlock()
	s.d.Replace(bans)
	s.seen = v
	s.loads.Add(1)
	if !s.up.Swap(true) && s.loads.Load() > 1 {
		s.log.Info("ban database reachable again: bans read afresh", "bans", len(bans))
	}
	return nil
}
