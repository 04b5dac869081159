package defender

import (
	"net/netip"
	"time"
)

// Share is told of a defender's own decisions, so that the nodes behind
// one balancer can pool them (internal/pgbans keeps them in PostgreSQL):
// an attacker that spreads its guesses over the nodes is then banned at
// the threshold of them all together, and a ban made on one node holds on
// every node.
//
// The defender calls it outside its locks from the goroutine that scored
// or banned (a session's, or the control API's), so every method must
// return at once: queue, and do the work elsewhere. What the other nodes
// decided comes back through [Defender.Apply], [Defender.Lift] and
// [Defender.Replace], which Share does not hear of.
type Share interface {
	// Scored reports points scored against key (an address's unit, see
	// [Canonical]) that did not ban it here.
	Scored(key netip.Prefix, points int)
	// Banned reports a ban made here, by scoring or by [Defender.Ban].
	Banned(b Ban)
	// Unbanned reports a prefix whose ban, or memory of one, was lifted
	// here by [Defender.Unban].
	Unbanned(p netip.Prefix)
}

// shareBox holds a Share in an atomic.Pointer.
type shareBox struct{ s Share }

// SetShare makes the defender report its scores and bans to s from now
// on; nil stops the reports.
func (d *Defender) SetShare(s Share) {
	if s == nil {
		d.share.Store(nil)
		return
	}
	d.share.Store(&shareBox{s})
}

func (d *Defender) shared() Share {
	if b := d.share.Load(); b != nil {
		return b.s
	}
	return nil
}

// Limits are the numbers that decide a ban, for a Share that decides bans
// of its own from the pooled scores.
type Limits struct {
	Threshold           int
	Window              time.Duration
	BanTime, MaxBanTime time.Duration
}

// Limits returns the defender's current limits (a reload may change them).
func (d *Defender) Limits() Limits {
	p := d.pol.Load()
	return Limits{Threshold: p.threshold, Window: p.window, BanTime: p.banTime, MaxBanTime: p.maxBanTime}
}

// BanLength is the length of the strikes-th ban of an address under l:
// BanTime doubled for each earlier strike, at most MaxBanTime, as the
// defender escalates its own bans.
func (l Limits) BanLength(strikes int) time.Duration {
	dur := l.BanTime
	for i := 1; i < strikes && dur < l.MaxBanTime; i++ {
		dur *= 2
	}
	return min(dur, l.MaxBanTime)
}

// Apply takes a ban decided elsewhere as it is: its times, strikes,
// reason and node are kept, nothing escalates and Share is not told. It
// replaces the ban of b.Prefix (which must be [Canonical]) if there is
// one. A ban that has ended is kept as the memory of a strike, until
// MaxBanTime after its end, as the defender's own are.
//
// A ban in force that was not in force here before is logged and given to
// OnBan (so the sessions of the banned prefix end here too); a ban that
// only changes one in force, or is already known, is not.
func (d *Defender) Apply(b Ban) {
	now := d.now().UnixNano()
	d.mu.Lock()
	fresh := d.applyLocked(b, now)
	d.mu.Unlock()
	if fresh {
		d.banned(b)
		d.dropScore(b.Prefix)
	}
}

// applyLocked sets the entry of b and reports whether it is a ban in force
// that was not. d.mu is held for writing.
func (d *Defender) applyLocked(b Ban, now int64) bool {
	e, _ := d.bans.get(b.Prefix)
	was := e != nil && e.active(now)
	next := banEntry{since: b.Since.UnixNano(), strikes: max(b.Strikes, 1), reason: b.Reason, manual: b.Manual, node: b.Node}
	if !b.Until.IsZero() {
		next.until = b.Until.UnixNano()
		next.forget = next.until + int64(d.pol.Load().maxBanTime)
	}
	if next.forget != 0 && next.forget <= now {
		// Ended, and its strikes forgotten: nothing to keep.
		if e != nil {
			d.bans.del(b.Prefix)
			d.gen++
			d.wake()
		}
		return false
	}
	if e != nil && *e == next {
		return false
	}
	if e == nil {
		d.makeRoomLocked(now)
		e = &banEntry{}
		d.bans.set(b.Prefix, e)
	}
	*e = next
	d.gen++
	d.wake()
	if !was && e.active(now) {
		d.bansTotal.Add(1)
		return true
	}
	return false
}

// Lift removes the ban of p (canonical), and the memory of its strikes
// and score, as lifted elsewhere: Share is not told. It reports whether a
// ban in force was lifted.
func (d *Defender) Lift(p netip.Prefix) bool {
	now := d.now().UnixNano()
	d.dropScore(p)
	d.mu.Lock()
	e, _ := d.bans.get(p)
	if e != nil {
		d.bans.del(p)
		d.gen++
		d.wake()
	}
	d.mu.Unlock()
	lifted := e != nil && e.active(now)
	if lifted {
		d.log.Info("defender: unbanned", "prefix", p.String(), "by", "another node")
	}
	return lifted
}

// Replace makes bans the defender's whole list of bans, as another copy
// of it (a database the nodes share) has it: the bans not in the list are
// lifted, the others applied as by [Defender.Apply]. Share is not told.
func (d *Defender) Replace(bans []Ban) {
	now := d.now().UnixNano()
	keep := make(map[netip.Prefix]bool, len(bans))
	for _, b := range bans {
		keep[b.Prefix] = true
	}
	var fresh []Ban
	var lifted []netip.Prefix
	d.mu.Lock()
	var gone []netip.Prefix
	for p, e := range d.bans.all {
		if !keep[p] {
			gone = append(gone, p)
			if e.active(now) {
				lifted = append(lifted, p)
			}
		}
	}
	for _, p := range gone {
		d.bans.del(p)
	}
	if len(gone) > 0 {
		d.gen++
		d.wake()
	}
	for _, b := range bans {
		if d.applyLocked(b, now) {
			fresh = append(fresh, b)
		}
	}
	d.mu.Unlock()
	for _, p := range lifted {
		d.log.Info("defender: unbanned", "prefix", p.String(), "by", "another node")
	}
	for _, b := range fresh {
		d.banned(b)
		d.dropScore(b.Prefix)
	}
}

// dropScore forgets the score of key: it is banned, or was unbanned.
func (d *Defender) dropScore(key netip.Prefix) {
	d.smu.Lock()
	if tr := d.scores[key]; tr != nil {
		tr.unlink()
		delete(d.scores, key)
	}
	d.smu.Unlock()
}
