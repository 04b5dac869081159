package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// ErrNoPorts is returned by Reserve when every port of the range is already
// waiting for a connection from the same client address.
var ErrNoPorts = errors.New("no passive port free in the configured range")

// ErrReleased is returned by Accept after the reservation was released.
var ErrReleased = errors.New("passive reservation released")

// PortPool hands out passive-mode listening ports from a fixed range.
//
// A port can wait for several sessions at once as long as their client
// addresses differ: an incoming data connection is handed to the reservation
// of the address it comes from, and connections from any other address are
// closed. That lets a small range (AWS Transfer Family uses nine ports)
// carry many concurrent transfers. A port's socket is opened on first use
// and closed when nobody has waited on it for a short linger: a session
// that moves many small files asks for a passive port before every one,
// and reusing the socket spares a socket/bind/listen/close round and a new
// accept goroutine each time.
//
// Without a range (lo == 0) every reservation gets its own kernel-chosen
// port; that is only sensible without a firewall in front.
type PortPool struct {
	bind   netip.Addr // address passive sockets listen on; unspecified means all
	lo, hi uint16
	logger *slog.Logger
	// listen opens a passive socket; tests may replace it.
	listen func(network, addr string) (net.Listener, error)
	// wrap, when set, wraps each passive socket (PROXY protocol).
	wrap func(net.Listener) net.Listener

	// linger is how long a socket stays open without reservations.
	linger time.Duration

	mu     sync.Mutex
	ports  map[uint16]*sharedPort
	idle   []*sharedPort // open, nobody waiting, most recently idle last
	cursor uint16        // next port to try, so reservations spread over the range
	closed bool
}

// defaultLinger keeps an unused passive socket open long enough for the
// next EPSV of a busy session, short enough that a port nobody uses does
// not stay open.
const defaultLinger = 2 * time.Second

// sharedPort is one listening socket and the reservations waiting on it,
// keyed by client address.
type sharedPort struct {
	port    uint16
	ln      net.Listener
	wrapped bool // ln reads PROXY headers: dispatch off the accept loop
	waiting map[netip.Addr]*Reservation
	// idleSince is when the last reservation left; expire closes the
	// socket once that is linger ago.
	idleSince time.Time
	expire    *time.Timer
}

// Reservation is one session's pending passive port. It accepts exactly one
// data connection, from the session's client address.
type Reservation struct {
	pool   *PortPool
	sp     *sharedPort
	client netip.Addr
	port   uint16
	conns  chan net.Conn // capacity 1; the accept loop never blocks on it
	done   chan struct{} // closed by Release
	once   sync.Once
}

// NewPortPool returns a pool for ports lo..hi on bind. lo == 0 selects
// kernel-chosen ports.
func NewPortPool(bind netip.Addr, lo, hi uint16, logger *slog.Logger) (*PortPool, error) {
	if lo > hi {
		return nil, fmt.Errorf("netpolicy: passive port range %d-%d is reversed", lo, hi)
	}
	if lo == 0 && hi != 0 {
		return nil, fmt.Errorf("netpolicy: passive port range %d-%d starts at 0", lo, hi)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PortPool{
		bind:   bind,
		lo:     lo,
		hi:     hi,
		logger: logger,
		listen: listenData,
		linger: defaultLinger,
		ports:  make(map[uint16]*sharedPort),
		cursor: lo,
	}, nil
}

// SetListenerWrapper makes every passive socket opened from now on pass
// through wrap; used for PROXY protocol on data connections.
func (p *PortPool) SetListenerWrapper(wrap func(net.Listener) net.Listener) {
	p.mu.Lock()
	p.wrap = wrap
	p.mu.Unlock()
}

// Range returns the configured range; lo == 0 means any port.
func (p *PortPool) Range() (lo, hi uint16) { return p.lo, p.hi }

// Reserve returns a port that waits for a data connection from client.
func (p *PortPool) Reserve(client netip.Addr) (*Reservation, error) {
	client = client.Unmap()
	if p.lo == 0 {
		return p.reserveEphemeral(client)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if r := p.reserveIdleLocked(client); r != nil {
		return r, nil
	}
	size := int(p.hi) - int(p.lo) + 1
	var lastErr error
	for i := 0; i < size; i++ {
		port := p.cursor
		if p.cursor == p.hi {
			p.cursor = p.lo
		} else {
			p.cursor++
		}
		sp := p.ports[port]
		if sp == nil {
			ln, err := p.open(port)
			if err != nil {
				// Taken by another program: skip it, never fall back to a
				// port outside the range.
				lastErr = err
				continue
			}
			sp = p.addPortLocked(port, ln)
		} else if sp.waiting[client] != nil {
			continue
		}
		r := p.newReservation(sp, client, port)
		sp.waiting[client] = r
		return r, nil
	}
	if lastErr != nil {
		p.logger.Warn("passive ports exhausted", "range", p.rangeString(), "client", client, "last_error", lastErr)
	} else {
		p.logger.Warn("passive ports exhausted", "range", p.rangeString(), "client", client)
	}
	return nil, ErrNoPorts
}

func (p *PortPool) newReservation(sp *sharedPort, client netip.Addr, port uint16) *Reservation {
	return &Reservation{
		pool:   p,
		sp:     sp,
		client: client,
		port:   port,
		conns:  make(chan net.Conn, 1),
		done:   make(chan struct{}),
	}
}

// reserveIdleLocked reserves the most recently idle socket, if any is
// open. p.mu must be held.
func (p *PortPool) reserveIdleLocked(client netip.Addr) *Reservation {
	for len(p.idle) > 0 {
		sp := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if p.ports[sp.port] != sp || len(sp.waiting) > 0 {
			continue // closed, or taken by the range scan meanwhile
		}
		r := p.newReservation(sp, client, sp.port)
		sp.waiting[client] = r
		return r
	}
	return nil
}

func (p *PortPool) reserveEphemeral(client netip.Addr) (*Reservation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if r := p.reserveIdleLocked(client); r != nil {
		return r, nil
	}
	ln, err := p.open(0)
	if err != nil {
		return nil, fmt.Errorf("netpolicy: open passive socket: %w", err)
	}
	// A kernel-chosen port is unique while its socket is open, so it can
	// live in the same map as range ports and be closed the same way.
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	sp := p.addPortLocked(port, ln)
	r := p.newReservation(sp, client, port)
	sp.waiting[client] = r
	return r, nil
}

// addPortLocked registers a freshly opened socket and starts accepting on
// it. p.mu must be held.
func (p *PortPool) addPortLocked(port uint16, ln net.Listener) *sharedPort {
	sp := &sharedPort{port: port, ln: ln, wrapped: p.wrap != nil, waiting: make(map[netip.Addr]*Reservation, 1)}
	p.ports[port] = sp
	go p.acceptLoop(sp)
	return sp
}

// open listens on port (0: any). p.mu must be held.
func (p *PortPool) open(port uint16) (net.Listener, error) {
	ln, err := p.listen(p.network(), p.hostPort(port))
	if err != nil {
		return nil, err
	}
	if p.wrap != nil {
		ln = p.wrap(ln)
	}
	return ln, nil
}

// listenData opens a passive socket. Its connections get no TCP
// keep-alive: a data connection lives for one transfer, which has its own
// stall timeout, and the four setsockopt calls per connection are a
// measurable share of a small file's cost.
func listenData(network, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), network, addr)
}

func (p *PortPool) network() string {
	if p.bind.Is4() {
		return "tcp4"
	}
	return "tcp"
}

func (p *PortPool) hostPort(port uint16) string {
	if !p.bind.IsValid() || p.bind.IsUnspecified() {
		return ":" + strconv.Itoa(int(port))
	}
	return netip.AddrPortFrom(p.bind, port).String()
}

func (p *PortPool) rangeString() string {
	return strconv.Itoa(int(p.lo)) + "-" + strconv.Itoa(int(p.hi))
}

// acceptLoop hands each incoming connection to the reservation of its source
// address; it ends when the socket is closed. Other errors (out of file
// descriptors) are waited out, as net/http does, so a port never goes deaf
// while reservations wait on it.
func (p *PortPool) acceptLoop(sp *sharedPort) {
	var backoff time.Duration
	for {
		c, err := sp.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.logger.Error("passive accept", "port", sp.port, "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if sp.wrapped {
			// Reading a PROXY header may take a while: never in the
			// accept loop.
			go p.dispatch(sp, c)
		} else {
			p.dispatch(sp, c)
		}
	}
}

// dispatch hands c to the reservation waiting for its source address, or
// closes it: a data connection is only accepted from the client that asked.
func (p *PortPool) dispatch(sp *sharedPort, c net.Conn) {
	if err := CheckProxyHeader(c); err != nil {
		p.logger.Warn("data connection refused", "port", sp.port, "from", RemoteAddr(c), "err", err)
		c.Close()
		return
	}
	from := RemoteAddr(c)
	p.mu.Lock()
	r := sp.waiting[from]
	if r != nil {
		p.detachLocked(r, true)
		// Delivered under the lock, so Release (which drains under the
		// lock) cannot miss a connection and leak it.
		r.conns <- c // capacity 1 and detached: never blocks
	}
	p.mu.Unlock()
	if r == nil {
		p.logger.Warn("data connection refused: no session of this client waits on the port",
			"port", sp.port, "from", from)
		c.Close()
	}
}

// detachLocked removes r from its port so the port may serve r's client
// again. A socket nobody waits on any more lingers, then closes; but only
// if r got its connection (delivered): a reservation released without one
// may leave its client's connection on the way or in the accept queue, and
// a lingering socket would hand that stale connection to the client's next
// transfer. Such a socket closes at once, resetting what is queued.
// p.mu must be held.
func (p *PortPool) detachLocked(r *Reservation, delivered bool) {
	sp := r.sp
	if sp == nil || sp.waiting[r.client] != r {
		return
	}
	delete(sp.waiting, r.client)
	r.sp = nil
	if len(sp.waiting) > 0 {
		return
	}
	if !delivered || p.linger <= 0 || p.closed {
		p.closePortLocked(sp)
		return
	}
	sp.idleSince = time.Now()
	p.idle = append(p.idle, sp)
	if sp.expire == nil {
		sp.expire = time.AfterFunc(p.linger, func() { p.expireIdle(sp) })
	} else {
		sp.expire.Reset(p.linger)
	}
}

// expireIdle closes sp if it has had no reservation for the whole linger.
func (p *PortPool) expireIdle(sp *sharedPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ports[sp.port] != sp || len(sp.waiting) > 0 {
		return
	}
	if wait := p.linger - time.Since(sp.idleSince); wait > 0 {
		sp.expire.Reset(wait) // used and released again since the timer was set
		return
	}
	p.closePortLocked(sp)
}

// closePortLocked closes sp's socket and forgets it. p.mu must be held.
func (p *PortPool) closePortLocked(sp *sharedPort) {
	sp.ln.Close()
	if sp.expire != nil {
		sp.expire.Stop()
	}
	if p.ports[sp.port] == sp {
		delete(p.ports, sp.port)
	}
	for i, idle := range p.idle {
		if idle == sp {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
}

// Close closes every passive socket; pending Accepts fail with ErrReleased
// and later Reserves with net.ErrClosed.
func (p *PortPool) Close() error {
	p.mu.Lock()
	p.closed = true
	var waiting []*Reservation
	for _, sp := range p.ports {
		if len(sp.waiting) == 0 {
			p.closePortLocked(sp) // lingering
			continue
		}
		for _, r := range sp.waiting {
			waiting = append(waiting, r)
		}
	}
	p.mu.Unlock()
	for _, r := range waiting {
		r.Release() // closes the socket with its last reservation
	}
	return nil
}

// OpenPorts reports how many passive sockets are open, lingering ones
// included (for tests and metrics).
func (p *PortPool) OpenPorts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ports)
}

// Port is the reserved port number.
func (r *Reservation) Port() uint16 { return r.port }

// Accept waits for the client's data connection until ctx ends or the
// reservation is released.
func (r *Reservation) Accept(ctx context.Context) (net.Conn, error) {
	select {
	case c := <-r.conns:
		return c, nil
	case <-r.done:
		return nil, ErrReleased
	case <-ctx.Done():
		r.Release()
		return nil, ctx.Err()
	}
}

// Release gives the port back. It is safe to call more than once and after
// the connection was accepted.
func (r *Reservation) Release() {
	r.once.Do(func() {
		p := r.pool
		p.mu.Lock()
		defer p.mu.Unlock()
		p.detachLocked(r, false) // no-op if the connection was delivered
		close(r.done)
		// A connection delivered but not taken is not wanted any more.
		select {
		case c := <-r.conns:
			c.Close()
		default:
		}
	})
}
