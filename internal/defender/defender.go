// Package defender decides, per client address, whether a connection is
// admitted. The server asks [Defender.Admit] at accept, before the greeting
// and before TLS, so a banned address costs one map lookup and a closed
// socket; the protocol engine reports misbehaviour with [Defender.Score],
// and an address whose points within a sliding window reach the threshold
// is banned for a while, each new ban of the same address longer than the
// last.
//
// What the package offers:
//
//   - [Event]: what the server reports (a failed login, an unknown user, a
//     bad command before login, a failed TLS handshake, a connection that
//     never sent a command), each worth [DefaultWeights] points.
//   - [Config] and [New]: threshold, window, ban times, weights, static
//     allow and deny lists, memory caps and the state file.
//   - [Defender.Admit], [Defender.Score]: the two calls of the server.
//   - [Defender.Ban], [Defender.Unban], [Defender.Bans]: for the control
//     API and `cloudftpd ban`.
//   - [Defender.Stats]: counters for metrics.
//   - [Share], [Defender.SetShare], [Defender.Apply], [Defender.Lift],
//     [Defender.Replace], [Defender.Limits]: for nodes that pool their
//     scores and bans (internal/pgbans); the check at accept stays this
//     defender's own map lookup.
//
// Addresses: IPv4 addresses are counted and banned one by one; IPv6
// addresses by their /64, since one host usually owns a whole /64 and
// picks a fresh address from it at will; IPv4-mapped IPv6 addresses
// (::ffff:192.0.2.1, as a dual-stack listener reports IPv4 clients) count
// as the IPv4 address. Bans made by hand may cover any prefix (an IPv6 one
// at most /64 long).
//
// Precedence at [Defender.Admit]: the longest matching allow or deny prefix
// decides first (allowed: admitted, never scored, never banned; denied:
// refused), so `deny = ["0.0.0.0/0"]` with `allow = ["198.51.100.0/24"]`
// admits only that network; otherwise a ban covering the address refuses
// it.
//
// Memory is bounded: scores are kept for at most [Config.MaxTracked]
// addresses (the address scored least recently is forgotten first) and
// bans, with the memory of expired ones that drives escalation, for at most
// [Config.MaxBans] prefixes (the expired ones go first, then the automatic
// bans closest to their end; bans made by hand are never evicted). A flood
// of distinct addresses therefore costs a bounded amount of memory; its
// price is that such a flood can make the defender forget a score, which a
// patient attacker with many addresses could get anyway by spreading its
// guesses.
//
// Bans, and the strikes of expired bans still remembered, survive a restart
// in [Config.StateFile]; transient scores do not.
package defender

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Event is something a client did that counts against its address.
type Event string

// The events the server reports. Each counts its weight in points (see
// [DefaultWeights]).
const (
	// LoginFailed: a wrong password for an existing user. The server
	// reports UnknownUser instead, not both, for a user that does not
	// exist.
	LoginFailed Event = "login_failed"
	// UnknownUser: a login attempt for a user that does not exist; user
	// name guessing is a surer sign of an attack than a mistyped password.
	UnknownUser Event = "unknown_user"
	// BadCommandBeforeLogin: an unknown or malformed command before login,
	// typically an HTTP or SMTP scanner talking to the FTP port. The
	// server reports it once per connection, not once per line, so one
	// scanner's request of ten header lines counts once.
	BadCommandBeforeLogin Event = "bad_command_before_login"
	// TLSHandshakeFailed: a failed TLS handshake on a control connection.
	TLSHandshakeFailed Event = "tls_handshake_failed"
	// NoCommand: a connection closed (by the client or by the login
	// timeout) before it sent any command: port scanners, and connection
	// floods. Health checks of a load balancer look the same: put their
	// source addresses in the allow list.
	NoCommand Event = "no_command"
	// APIAuthFailed: a request to the operations API without a valid
	// token (none, or a wrong one). Scripts with a stale token retry;
	// a token guesser sends many.
	APIAuthFailed Event = "api_auth_failed"
)

// events lists every Event, in the order of the documentation.
var events = [...]Event{LoginFailed, UnknownUser, BadCommandBeforeLogin, TLSHandshakeFailed, NoCommand, APIAuthFailed}

// Events returns every Event the server may report.
func Events() []Event { return slices.Clone(events[:]) }

// DefaultWeights returns the points of each event. With the default
// threshold of 10 points in 5 minutes: 5 wrong passwords ban an address,
// 4 unknown user names, 5 connections of a scanner sending junk, 10 failed
// TLS handshakes, 10 connections that say nothing or 5 API requests with a
// wrong token. A partner mistyping a
// password twice, or a client retrying a handshake with the wrong TLS
// settings a few times, stays well below it.
func DefaultWeights() map[Event]int {
	return map[Event]int{
		LoginFailed:           2,
		UnknownUser:           3,
		BadCommandBeforeLogin: 2,
		TLSHandshakeFailed:    1,
		NoCommand:             1,
		APIAuthFailed:         2,
	}
}

// Defaults of the zero fields of a Config.
const (
	DefaultThreshold  = 10
	DefaultWindow     = 5 * time.Minute
	DefaultBanTime    = 15 * time.Minute
	DefaultMaxBanTime = 24 * time.Hour
	DefaultMaxTracked = 100_000
	DefaultMaxBans    = 100_000
)

// Forever, as the duration of [Defender.Ban], bans until [Defender.Unban].
const Forever time.Duration = -1

// Errors of Ban and Unban, to be told apart with errors.Is.
var (
	// ErrNotBanned: Unban of a prefix that has no ban of its own.
	ErrNotBanned = errors.New("not banned")
	// ErrAllowed: Ban of a prefix inside the allow list, which would have
	// no effect.
	ErrAllowed = errors.New("in the allow list")
)

// Config configures a Defender. Zero numbers take the defaults above.
type Config struct {
	// Threshold is the number of points within Window that bans an
	// address.
	Threshold int
	// Window is how long a point counts.
	Window time.Duration
	// BanTime is the length of an address's first ban; each further ban
	// while the previous one is remembered doubles it, up to MaxBanTime.
	// An expired ban is remembered for MaxBanTime after its end.
	BanTime, MaxBanTime time.Duration
	// Weights overrides the points of some events (the others keep
	// DefaultWeights); 0 ignores an event.
	Weights map[Event]int
	// Allow lists networks never scored nor banned (VPN ranges, partners,
	// health checkers); Deny networks always refused. The longest matching
	// prefix of either list wins; a prefix in both is an error.
	Allow, Deny []netip.Prefix
	// MaxTracked caps the addresses with a score; MaxBans the banned
	// prefixes, counting expired bans still remembered for escalation.
	MaxTracked, MaxBans int
	// StateFile keeps the bans across restarts; "" keeps them in memory
	// only.
	StateFile string
	// OnBan, if set, is called (outside the defender's locks) after each
	// ban, automatic or not, so the server can close the banned address's
	// open sessions.
	OnBan func(Ban)
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
	// Logger receives one line per ban and per problem with the state
	// file; nil discards.
	Logger *slog.Logger
}

// Ban is a banned prefix.
type Ban struct {
	Prefix netip.Prefix
	Reason string
	Since  time.Time
	// Until is the end of the ban; zero for a ban until Unban.
	Until time.Time
	// Strikes counts the bans of this prefix while earlier ones were
	// remembered: 1 for a first ban.
	Strikes int
	// Manual is set for bans made with Ban rather than by scoring.
	Manual bool
	// Node is the node that made the ban, for a ban learnt from a
	// database the nodes share (see [Share]); "" for a ban of this
	// defender alone.
	Node string
}

// Stats are the defender's counters, for metrics.
type Stats struct {
	Active  int    // bans in force
	Tracked int    // addresses with a score
	Bans    uint64 // bans made since start, automatic and manual
	// RefusedBanned and RefusedDenied count the connections Admit
	// refused, because of a ban or of the deny list.
	RefusedBanned, RefusedDenied uint64
	// Evicted counts the scores and remembered bans forgotten early
	// because of MaxTracked and MaxBans: non-zero means a flood.
	Evicted uint64
}

// Defender is safe for concurrent use. Its zero value is not usable: call
// New.
type Defender struct {
	// pol is what Reconfigure may change: the scoring, the ban times and
	// the lists. Each call reads it once, so it sees one policy.
	pol                 atomic.Pointer[policy]
	maxTracked, maxBans int
	stateFile           string
	onBan               func(Ban)
	now                 func() time.Time
	log                 *slog.Logger

	// mu guards the bans; Admit holds it for reading only.
	mu   sync.RWMutex
	bans prefixMap[*banEntry]
	gen  uint64 // changes of bans, for the writer

	// smu guards the scores. Lock order: smu before mu.
	smu    sync.Mutex
	scores map[netip.Prefix]*tracked
	lru    tracked // sentinel of the list of scores, most recent first

	bansTotal, refusedBanned, refusedDenied, evicted atomic.Uint64

	// share hears of this defender's own scores and bans (shared.go);
	// nil for a defender alone.
	share atomic.Pointer[shareBox]

	// The writer goroutine saves the state file and sweeps expired
	// entries.
	dirty     chan struct{} // one pending wake-up
	done      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	closeErr  error
	savedGen  uint64 // guarded by the writer (and Close after it stopped)
	saveErr   error
}

// banEntry is a ban in force, or an expired one remembered for escalation
// until forget. Times are Unix nanoseconds; until and forget are 0 for a
// ban until Unban.
type banEntry struct {
	since, until, forget int64
	strikes              int
	reason               string
	manual               bool
	node                 string
}

func (e *banEntry) active(now int64) bool { return e.until == 0 || now < e.until }

// tracked is the score of one address: its events within the window, in
// order, and its place in the LRU list.
type tracked struct {
	key        netip.Prefix
	prev, next *tracked
	sum        int
	events     []scored
}

type scored struct {
	at    int64 // Unix nanoseconds
	w     int32
	event uint8 // index in events
}

// New makes a Defender, loading the state file if there is one. A corrupt
// state file is logged and renamed to StateFile+".corrupt", and the
// defender starts with no bans.
func New(cfg Config) (*Defender, error) {
	pol, err := newPolicy(cfg)
	if err != nil {
		return nil, err
	}
	d := &Defender{
		maxTracked: cfg.MaxTracked,
		maxBans:    cfg.MaxBans,
		stateFile:  cfg.StateFile,
		onBan:      cfg.OnBan,
		now:        cfg.Now,
		log:        cfg.Logger,
		scores:     make(map[netip.Prefix]*tracked),
		dirty:      make(chan struct{}, 1),
		done:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	d.pol.Store(pol)
	setDefault(&d.maxTracked, DefaultMaxTracked)
	setDefault(&d.maxBans, DefaultMaxBans)
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.maxTracked < 0 || d.maxBans < 0 {
		return nil, errors.New("defender: max_tracked and max_bans must be positive")
	}
	d.lru.prev, d.lru.next = &d.lru, &d.lru
	if d.stateFile != "" {
		if err := d.load(); err != nil {
			return nil, err
		}
	}
	go d.writer()
	return d, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// policy is the part of a Defender's configuration that a reload may
// change without losing scores or bans.
type policy struct {
	threshold           int
	window              time.Duration
	banTime, maxBanTime time.Duration
	weights             [len(events)]int
	rules               rules // allow and deny
}

// newPolicy fills cfg's defaults and checks it.
func newPolicy(cfg Config) (*policy, error) {
	p := &policy{threshold: cfg.Threshold, window: cfg.Window, banTime: cfg.BanTime, maxBanTime: cfg.MaxBanTime}
	setDefault(&p.threshold, DefaultThreshold)
	setDefault(&p.window, DefaultWindow)
	setDefault(&p.banTime, DefaultBanTime)
	setDefault(&p.maxBanTime, DefaultMaxBanTime)
	switch {
	case p.threshold < 0:
		return nil, fmt.Errorf("defender: threshold %d: must be positive", p.threshold)
	case p.window < 0, p.banTime < 0, p.maxBanTime < 0:
		return nil, errors.New("defender: window, ban_time and max_ban_time must be positive")
	case p.maxBanTime < p.banTime:
		return nil, fmt.Errorf("defender: max_ban_time %v is shorter than ban_time %v", p.maxBanTime, p.banTime)
	}
	def := DefaultWeights()
	for i, e := range events {
		p.weights[i] = def[e]
	}
	for e, w := range cfg.Weights {
		i := eventIndex(e)
		if i < 0 {
			return nil, fmt.Errorf("defender: weights: unknown event %q (known: %s)", e, eventNames())
		}
		if w < 0 {
			return nil, fmt.Errorf("defender: weights.%s = %d: must be 0 or more", e, w)
		}
		p.weights[i] = w
	}
	var err error
	if p.rules, err = newRules(cfg.Allow, cfg.Deny); err != nil {
		return nil, err
	}
	return p, nil
}

// CheckReconfigure reports whether Reconfigure would take cfg, so that a
// reload can check everything before it changes anything.
func CheckReconfigure(cfg Config) error {
	_, err := newPolicy(cfg)
	return err
}

// Reconfigure applies a new threshold, window, ban times, weights, allow
// and deny lists (a config reload). Scores and bans are kept: a ban in
// force runs its course, and an address now on the allow list is admitted
// at once whatever its ban. MaxTracked, MaxBans, StateFile, OnBan, Now and
// Logger are New's alone and ignored here.
func (d *Defender) Reconfigure(cfg Config) error {
	p, err := newPolicy(cfg)
	if err != nil {
		return err
	}
	d.pol.Store(p)
	return nil
}

func eventIndex(e Event) int {
	for i, x := range events {
		if x == e {
			return i
		}
	}
	return -1
}

func eventNames() string {
	var s []string
	for _, e := range events {
		s = append(s, string(e))
	}
	return strings.Join(s, ", ")
}

// normalize unmaps an IPv4-mapped address; false for an invalid one.
func normalize(a netip.Addr) (netip.Addr, bool) {
	if !a.IsValid() {
		return a, false
	}
	return a.Unmap(), true
}

// keyOf is the prefix an address is scored and banned by: the address
// itself for IPv4, its /64 for IPv6. a is normalized.
func keyOf(a netip.Addr) netip.Prefix {
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// Admit reports whether a connection from addr may proceed. It is called
// for every connection, so it allocates nothing and takes one read lock;
// the clock is read only when a ban entry matches. An invalid address
// (not from IP) is admitted.
func (d *Defender) Admit(addr netip.Addr) bool {
	a, ok := normalize(addr)
	if !ok {
		return true
	}
	switch d.pol.Load().rules.match(a) {
	case allowed:
		return true
	case denied:
		d.refusedDenied.Add(1)
		return false
	}
	d.mu.RLock()
	_, banned := d.bannedLocked(a, 0)
	d.mu.RUnlock()
	if banned {
		d.refusedBanned.Add(1)
		return false
	}
	return true
}

// bannedLocked returns the prefix of a ban in force covering a, the
// longest first. now is read from the clock when 0. d.mu is held.
func (d *Defender) bannedLocked(a netip.Addr, now int64) (netip.Prefix, bool) {
	for _, l := range d.bans.levels(a) {
		e, ok := l.find(a)
		if !ok {
			continue
		}
		if e.until != 0 {
			if now == 0 {
				now = d.now().UnixNano()
			}
			if now >= e.until {
				continue
			}
		}
		p, _ := a.Prefix(l.bits)
		return p, true
	}
	return netip.Prefix{}, false
}

// Score adds the points of event e to addr's score, and bans it when its
// points within the window reach the threshold. Addresses in the allow or
// deny list, and addresses already banned, are not scored.
func (d *Defender) Score(addr netip.Addr, e Event) {
	pol := d.pol.Load()
	i := eventIndex(e)
	if i < 0 || pol.weights[i] == 0 {
		return
	}
	a, ok := normalize(addr)
	if !ok || pol.rules.match(a) != unlisted {
		return
	}
	key := keyOf(a)
	t := d.now()
	now := t.UnixNano()

	d.smu.Lock()
	d.mu.RLock()
	_, banned := d.bannedLocked(a, now)
	d.mu.RUnlock()
	if banned {
		d.smu.Unlock()
		return
	}
	tr := d.scores[key]
	if tr == nil {
		tr = &tracked{key: key}
		d.scores[key] = tr
		d.evictScoresLocked(now)
	} else {
		tr.unlink()
	}
	tr.prune(now - int64(pol.window))
	tr.events = append(tr.events, scored{at: now, w: int32(pol.weights[i]), event: uint8(i)})
	tr.sum += pol.weights[i]
	if tr.sum < pol.threshold {
		tr.linkAfter(&d.lru)
		d.smu.Unlock()
		if sh := d.shared(); sh != nil {
			sh.Scored(key, pol.weights[i])
		}
		return
	}
	delete(d.scores, key)
	reason := tr.summary(pol.window)
	d.mu.Lock()
	// A ban by hand may have come in since the check above; it stands.
	_, banned = d.bannedLocked(a, now)
	var b Ban
	if !banned {
		b = d.banLocked(key, 0, reason, false, now)
	}
	d.mu.Unlock()
	d.smu.Unlock()
	if !banned {
		d.banned(b)
		if sh := d.shared(); sh != nil {
			sh.Banned(b)
		}
	}
}

// evictScoresLocked keeps the scores within maxTracked, forgetting the
// least recently scored addresses; those whose events have all left the
// window go first, for free. d.smu is held.
func (d *Defender) evictScoresLocked(now int64) {
	for len(d.scores) > d.maxTracked {
		old := d.lru.prev
		if old == &d.lru {
			return // only the entry being added is unlinked
		}
		if last := old.events[len(old.events)-1].at; last > now-int64(d.pol.Load().window) {
			d.evicted.Add(1)
		}
		old.unlink()
		delete(d.scores, old.key)
	}
}

func (t *tracked) unlink() {
	t.prev.next, t.next.prev = t.next, t.prev
	t.prev, t.next = nil, nil
}

func (t *tracked) linkAfter(at *tracked) {
	t.prev, t.next = at, at.next
	at.next.prev = t
	at.next = t
}

// prune drops the events before from.
func (t *tracked) prune(from int64) {
	n := 0
	for n < len(t.events) && t.events[n].at <= from {
		t.sum -= int(t.events[n].w)
		n++
	}
	if n > 0 {
		t.events = slices.Delete(t.events, 0, n)
	}
}

// summary is the reason of an automatic ban: "10 points in 5m0s:
// login_failed x3, unknown_user x2".
func (t *tracked) summary(window time.Duration) string {
	var count [len(events)]int
	for _, e := range t.events {
		count[e.event]++
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d points in %v:", t.sum, window)
	sep := " "
	for i, n := range count {
		if n > 0 {
			fmt.Fprintf(&b, "%s%s x%d", sep, events[i], n)
			sep = ", "
		}
	}
	return b.String()
}

// banLocked bans key (canonical) for dur, or for the escalated ban time
// when dur is 0, and returns the ban. d.mu is held for writing.
func (d *Defender) banLocked(key netip.Prefix, dur time.Duration, reason string, manual bool, now int64) Ban {
	e, _ := d.bans.get(key)
	strikes := 1
	if e != nil && (e.forget == 0 || now < e.forget) {
		strikes = e.strikes + 1
	}
	if e == nil {
		d.makeRoomLocked(now)
		e = &banEntry{}
		d.bans.set(key, e)
	}
	if dur == 0 {
		dur = d.escalated(strikes)
	}
	*e = banEntry{since: now, strikes: strikes, reason: reason, manual: manual}
	if dur != Forever {
		e.until = now + int64(dur)
		e.forget = e.until + int64(d.pol.Load().maxBanTime)
	}
	d.gen++
	d.bansTotal.Add(1)
	d.wake()
	return e.ban(key)
}

// escalated is the length of the strikes-th ban: BanTime doubled for
// each earlier strike, at most MaxBanTime.
func (d *Defender) escalated(strikes int) time.Duration {
	return d.Limits().BanLength(strikes)
}

// banned logs a new ban and tells OnBan, outside the locks.
func (d *Defender) banned(b Ban) {
	args := []any{"prefix", b.Prefix.String(), "strikes", b.Strikes, "reason", b.Reason}
	if b.Until.IsZero() {
		args = append(args, "for", "forever")
	} else {
		args = append(args, "for", b.Until.Sub(b.Since).String(), "until", b.Until.Format(time.RFC3339))
	}
	if b.Manual {
		args = append(args, "manual", true)
	}
	if b.Node != "" {
		args = append(args, "node", b.Node)
	}
	d.log.Warn("defender: banned", args...)
	if d.onBan != nil {
		d.onBan(b)
	}
}

// makeRoomLocked keeps the bans below maxBans before one is added:
// forgetting expired bans first, then ending the automatic bans closest
// to their end, 1/64 of the cap at a time so a flood of bans does not scan
// the map for every new one. Manual bans stay. d.mu is held for writing.
func (d *Defender) makeRoomLocked(now int64) {
	if d.bans.len() < d.maxBans {
		return
	}
	type cand struct {
		p     netip.Prefix
		until int64
	}
	var auto []cand
	var stale []netip.Prefix
	for p, e := range d.bans.all {
		switch {
		case !e.active(now):
			stale = append(stale, p)
		case !e.manual:
			auto = append(auto, cand{p, e.until})
		}
	}
	for _, p := range stale {
		d.bans.del(p)
	}
	need := d.bans.len() - d.maxBans + 1
	if need <= 0 {
		return
	}
	need = max(need, d.maxBans/64)
	slices.SortFunc(auto, func(a, b cand) int { return cmp.Compare(a.until, b.until) })
	n := min(need, len(auto))
	for _, c := range auto[:n] {
		d.bans.del(c.p)
	}
	d.evicted.Add(uint64(n))
	d.log.Warn("defender: too many bans: ended the ones closest to their end early", "ended", n, "max_bans", d.maxBans)
}

func (e *banEntry) ban(p netip.Prefix) Ban {
	b := Ban{Prefix: p, Reason: e.reason, Since: time.Unix(0, e.since), Strikes: e.strikes, Manual: e.manual, Node: e.node}
	if e.until != 0 {
		b.Until = time.Unix(0, e.until)
	}
	return b
}

// Canonical returns the prefix Ban and Unban work on: unmapped, masked,
// and at most /64 for IPv6, the unit the defender bans by. It fails for an
// invalid prefix.
func Canonical(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, errors.New("defender: invalid prefix")
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	if a.Is6() && bits > 64 {
		bits = 64
	}
	q, err := a.Prefix(bits)
	if err != nil {
		return p, fmt.Errorf("defender: %w", err)
	}
	return q, nil
}

// ParsePrefix reads what an operator types: an address ("203.0.113.7",
// "2001:db8::1") or a CIDR prefix ("203.0.113.0/24"); a prefix with host
// bits set ("203.0.113.7/24") is refused as a probable typo. The result is
// [Canonical]: an IPv6 address becomes its /64.
func ParsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("defender: %q is not an address or a CIDR prefix", s)
		}
		if p.Masked() != p {
			return p, fmt.Errorf("defender: %s has host bits set (the network is %s)", s, p.Masked())
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Errorf("defender: %q is not an address or a CIDR prefix", s)
		}
		if a.Zone() != "" {
			return p, fmt.Errorf("defender: %q: zoned addresses cannot be banned", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return Canonical(p)
}

// Ban bans prefix p (see [Canonical]) for dur: 0 means the defender's own
// escalated ban time, [Forever] until Unban. A ban of the same prefix
// replaces the previous one. A prefix inside the allow list is refused
// with ErrAllowed; a wider one is banned, and its allowed parts stay
// admitted.
func (d *Defender) Ban(p netip.Prefix, dur time.Duration, reason string) (Ban, error) {
	key, err := d.CheckBan(p, dur)
	if err != nil {
		return Ban{}, err
	}
	now := d.now().UnixNano()
	d.mu.Lock()
	b := d.banLocked(key, dur, reason, true, now)
	d.mu.Unlock()
	d.banned(b)
	if sh := d.shared(); sh != nil {
		sh.Banned(b)
	}
	return b, nil
}

// CheckBan returns the prefix Ban(p, dur, ...) would ban, or the error it
// would return, without banning: for a ban made elsewhere (a database the
// nodes share) and then applied with [Defender.Apply].
func (d *Defender) CheckBan(p netip.Prefix, dur time.Duration) (netip.Prefix, error) {
	key, err := Canonical(p)
	if err != nil {
		return key, err
	}
	if dur < 0 && dur != Forever {
		return key, fmt.Errorf("defender: ban of %s: negative duration %v", key, dur)
	}
	if q, ok := d.pol.Load().rules.allowedPrefix(key); ok {
		return key, fmt.Errorf("defender: %s is inside %s of the allow list: %w", key, q, ErrAllowed)
	}
	return key, nil
}

// Unban lifts the ban of prefix p (see [Canonical]) and forgets its
// strikes and score, as for a ban made by mistake. It returns an error
// wrapping ErrNotBanned when p has no ban in force of its own, naming the
// wider ban covering it if there is one.
func (d *Defender) Unban(p netip.Prefix) error {
	key, err := Canonical(p)
	if err != nil {
		return err
	}
	now := d.now().UnixNano()
	d.smu.Lock()
	if tr := d.scores[key]; tr != nil {
		tr.unlink()
		delete(d.scores, key)
	}
	d.smu.Unlock()

	d.mu.Lock()
	e, _ := d.bans.get(key)
	if e != nil {
		d.bans.del(key)
		d.gen++
		d.wake()
	}
	switch q, ok := d.bannedLocked(key.Addr(), now); {
	case e != nil && e.active(now):
	case ok && q.Bits() < key.Bits():
		err = fmt.Errorf("defender: %s has no ban of its own but is covered by the ban of %s: %w", key, q, ErrNotBanned)
	default:
		err = fmt.Errorf("defender: %s: %w", key, ErrNotBanned)
	}
	d.mu.Unlock()
	if err == nil {
		d.log.Info("defender: unbanned", "prefix", key.String())
	}
	// The strikes of an expired ban are forgotten too: tell the others.
	if sh := d.shared(); sh != nil && e != nil {
		sh.Unbanned(key)
	}
	return err
}

// Bans returns the bans in force, sorted by prefix.
func (d *Defender) Bans() []Ban {
	now := d.now().UnixNano()
	d.mu.RLock()
	var out []Ban
	for p, e := range d.bans.all {
		if e.active(now) {
			out = append(out, e.ban(p))
		}
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b Ban) int { return comparePrefix(a.Prefix, b.Prefix) })
	return out
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Stats returns the counters. Counting the bans in force walks them, so
// call it at the pace of a metrics scrape, not per connection.
func (d *Defender) Stats() Stats {
	now := d.now().UnixNano()
	s := Stats{
		Bans:          d.bansTotal.Load(),
		RefusedBanned: d.refusedBanned.Load(),
		RefusedDenied: d.refusedDenied.Load(),
		Evicted:       d.evicted.Load(),
	}
	d.smu.Lock()
	s.Tracked = len(d.scores)
	d.smu.Unlock()
	d.mu.RLock()
	for _, e := range d.bans.all {
		if e.active(now) {
			s.Active++
		}
	}
	d.mu.RUnlock()
	return s
}

// sweep forgets the scores whose events have all left the window and the
// expired bans whose strikes need no longer be remembered, so memory
// shrinks back after a flood.
func (d *Defender) sweep() {
	now := d.now().UnixNano()
	from := now - int64(d.pol.Load().window)
	d.smu.Lock()
	for old := d.lru.prev; old != &d.lru && old.events[len(old.events)-1].at <= from; old = d.lru.prev {
		old.unlink()
		delete(d.scores, old.key)
	}
	d.smu.Unlock()

	// Find under the read lock, so Admit is not held up by the walk.
	var stale []netip.Prefix
	d.mu.RLock()
	for p, e := range d.bans.all {
		if e.forget != 0 && e.forget <= now {
			stale = append(stale, p)
		}
	}
	d.mu.RUnlock()
	if len(stale) == 0 {
		return
	}
	d.mu.Lock()
	for _, p := range stale {
		if e, _ := d.bans.get(p); e != nil && e.forget != 0 && e.forget <= now {
			d.bans.del(p)
		}
	}
	d.gen++
	d.mu.Unlock()
	d.wake()
}

// wake tells the writer that the bans changed.
func (d *Defender) wake() {
	select {
	case d.dirty <- struct{}{}:
	default:
	}
}

// Close stops the defender's goroutine and writes the state file one last
// time. Admit and Score keep working after Close, without persistence.
func (d *Defender) Close() error {
	d.closeOnce.Do(func() {
		close(d.done)
		<-d.stopped
		d.closeErr = d.saveIfChanged()
	})
	return d.closeErr
}
