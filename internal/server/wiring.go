package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/bandwidth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/ftp"
	"github.com/cloudftpd/cloudftpd/internal/idhook"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgusers"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/local"
	"github.com/cloudftpd/cloudftpd/internal/storage/s3store"
	"github.com/cloudftpd/cloudftpd/internal/sysusers"
)

// Options are the parts of a Server that do not come from the config file.
type Options struct {
	Logger *slog.Logger
	// Level, when set, is set to the config's log.level by New and by
	// every successful Reload, so a logger built on it follows the config.
	Level *slog.LevelVar
	// Auth overrides the users file named in the config (tests, embedding
	// programs); Reload then leaves authentication alone.
	Auth auth.Authenticator
	// Storage overrides the backend named in the config.
	Storage storage.Backend
	// Now is the clock the retention sweep ages files by (time.Now);
	// tests move it forward, as S3 modification times cannot be set.
	Now func() time.Time
	// Version is the server's version, for the operations API's status.
	Version string
	// Node names this node in the bans it shares with the others through
	// PostgreSQL (auth.store = "postgres"); default the host name.
	Node string
	// Doctor runs the doctor's checks of a config (internal/doctor,
	// which builds on this package and so is handed in), for the
	// operations API's GET /v1/doctor; nil answers 503.
	Doctor func(ctx context.Context, cfg *config.Config) []diag.Check
}

// Wiring is a server's parts built from one config: the authenticator, the
// storage backend and, for each listener, its certificate, passive port
// pool, passive rules with their discovered addresses, and the ftp.Config
// its sessions get. Building it opens no socket and starts no goroutine.
// serve (New and Reload), check-config and doctor all build this one
// thing, so they cannot disagree about a config.
type Wiring struct {
	Config *config.Config
	// Users is the loaded users file: nil for an anonymous-only config or
	// when Options.Auth replaces it.
	Users   *auth.UsersFile
	Auth    auth.Authenticator
	Storage storage.Backend
	// Volumes are the [[volume]] backends by name, for virtual folders.
	Volumes   map[string]storage.Backend
	Listeners []*ListenerWiring

	logger *slog.Logger
	// sources are the discovered passive addresses ("aws", DNS names) by
	// lowercased address, shared by every rule that names them so each is
	// looked up and refreshed once.
	sources map[string]*addressSource
	// owned lists what this wiring built itself (not taken over from the
	// running one on reload): released by Close when the wiring is not
	// used, handed to the server when it is.
	owned []io.Closer
	// fileAuth and authOpts describe an authenticator built from the users
	// file, so a reload with the same anonymous settings can keep it (and
	// its cache of verified passwords) and swap its users.
	fileAuth *auth.FileAuthenticator
	authOpts auth.Options
	// reloadUsers, when set, is the running authenticator this wiring
	// reuses: committing the wiring gives it Users.
	reloadUsers *auth.FileAuthenticator
	// pgUsers is the authenticator of auth.store = "postgres", and
	// pgKey the settings it was built with: a reload that keeps them
	// keeps it (its pool and its copy of the users).
	pgUsers *pgusers.Authenticator
	pgKey   pgUsersKey
	// pgPool is the database of auth.store = "postgres" (nil otherwise).
	// The state the nodes share lives there as well: quota usage, the
	// defender's bans and scores, the event outbox (README "Several
	// nodes"). It is pgUsers' pool and lives as long as it does.
	pgPool *pgxpool.Pool
}

// pgUsersKey is what a PostgreSQL authenticator is built from.
type pgUsersKey struct {
	db            config.PostgresUsers
	passwordFile  string
	anonymous     bool
	anonymousHome string
}

// ListenerWiring is one [[listener]] ready to be served.
type ListenerWiring struct {
	// Name is "listener[N]", as errors and doctor name it.
	Name   string
	Config *config.Listener
	// Certs holds the certificate; nil with tls = "off".
	Certs *certs.Store
	// Ports is the passive port pool (no socket is open until a PASV).
	Ports *netpolicy.PortPool
	// Rules are the passive rules with their address sources; nil when an
	// address could not be discovered.
	Rules []netpolicy.Rule
	// Session is what the listener gives its sessions; nil when any part
	// of the wiring failed.
	Session *ftp.Config
	// Upload and Download are the listener's bandwidth buckets, shared by
	// its sessions. A reload that keeps the listener keeps them and sets
	// their rates when it commits (applyRates), so the sessions of the
	// old config and of the new draw on one bucket.
	Upload, Download *bandwidth.Limiter

	// key identifies the listener across reloads: its address, and which
	// listener with that address it is (two "127.0.0.1:0" are two).
	key string
}

// PartError is the failure of one part of a Wiring.
type PartError struct {
	// Part names the part the way doctor reports it: "users", "storage",
	// "passive addresses", or "listener[N] TLS".
	Part string
	// Key is the config key at fault, e.g. "auth.users_file".
	Key string
	Err error
}

func (e *PartError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *PartError) Unwrap() error { return e.Err }

// WiringError lists every part of a Wiring that could not be built: a
// config with several mistakes names all of them at once.
type WiringError struct {
	Parts []*PartError
}

func (e *WiringError) Error() string {
	msgs := make([]string, len(e.Parts))
	for i, p := range e.Parts {
		msgs[i] = p.Error()
	}
	return "server: " + strings.Join(msgs, "; ")
}

// Unwrap returns the parts' errors, for errors.Is and errors.As.
func (e *WiringError) Unwrap() []error {
	out := make([]error, len(e.Parts))
	for i, p := range e.Parts {
		out[i] = p
	}
	return out
}

// Wire builds every part of a server for cfg (validating it first)
// without listening: it loads the users file and certificates, builds the
// storage backend (for S3, checking the bucket), discovers "aws" and DNS
// passive addresses and makes the passive port pools, within ctx.
//
// It tries every part even when one fails; the error is then a
// *WiringError naming each failure (a config that does not validate gives
// the validation error alone), and the returned Wiring (never nil) holds
// the parts that were built, for doctor to examine. Either way the caller
// must Close the wiring when it does not serve it.
func Wire(ctx context.Context, cfg *config.Config, opts Options) (*Wiring, error) {
	return wire(ctx, cfg, opts, nil, sessionHooks{})
}

// Close releases what the wiring built (storage handles, port pools). A
// server closes the wiring it serves itself.
func (w *Wiring) Close() error {
	var errs []error
	for _, c := range w.owned {
		errs = append(errs, c.Close())
	}
	w.owned = nil
	return errors.Join(errs...)
}

// addressSource is a discovered passive address and its refresh loop.
type addressSource struct {
	src    refreshingSource
	cancel context.CancelFunc // nil until the refresh loop runs
}

// refreshingSource is an address source that keeps itself current.
type refreshingSource interface {
	netpolicy.AddressSource
	Run(ctx context.Context)
}

// wire is Wire for a server: prev is the running wiring on reload, whose
// parts that the new config leaves alike are taken over (the
// authenticator, the storage backend, discovered addresses, port pools of
// listeners that keep their address), and hooks are what sessions report
// to.
func wire(ctx context.Context, cfg *config.Config, opts Options, prev *Wiring, hooks sessionHooks) (*Wiring, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Wiring{Config: cfg, logger: logger, sources: make(map[string]*addressSource)}
	if err := cfg.Validate(); err != nil {
		return w, fmt.Errorf("server: config: %w", err)
	}
	var fails []*PartError
	fail := func(part, key string, err error) { fails = append(fails, &PartError{Part: part, Key: key, Err: err}) }

	if err := w.wireAuth(opts, prev); err != nil {
		key := "auth.users_file"
		if cfg.Auth.Store == config.StorePostgres {
			key = "auth.postgres"
		}
		if cfg.Auth.Store == config.StoreHTTP {
			key = "auth.http"
		}
		if cfg.Auth.Store == config.StoreSystem {
			key = "auth.system"
		}
		fail("users", key, err)
	}
	if err := w.wireStorage(ctx, opts, prev); err != nil {
		key := "storage.root"
		if cfg.Storage.Backend == "s3" {
			key = "storage.bucket"
		}
		fail("storage", key, err)
	}
	for _, pe := range w.wireVolumes(ctx, prev) {
		fails = append(fails, pe)
	}
	if err := checkFolderVolumes(w.Users, cfg); err != nil {
		fail("users", "auth.users_file", err)
	}
	discovered := true
	for _, pe := range w.discover(ctx, prev) {
		fails, discovered = append(fails, pe), false
	}
	for i := range cfg.Listeners {
		lc := &cfg.Listeners[i]
		lw := &ListenerWiring{Name: fmt.Sprintf("listener[%d]", i), Config: lc, key: listenerKey(cfg, i)}
		w.Listeners = append(w.Listeners, lw)
		if lc.ControlTLS() != config.PolicyOff {
			st, err := certs.Load(cfg.Path(lc.TLSCert), cfg.Path(lc.TLSKey))
			if err != nil {
				fail(lw.Name+" TLS", lw.Name+".tls_cert", err)
			}
			lw.Certs = st
		}
		pool, err := w.portPool(lw, prev)
		if err != nil {
			fail(lw.Name+" passive ports", lw.Name+".passive_ports", err)
		}
		lw.Ports = pool
		lw.Upload, lw.Download = listenerBuckets(lw, prev)
		if discovered {
			lw.Rules = w.passiveRules(lc)
		}
	}
	if len(fails) > 0 {
		return w, &WiringError{Parts: fails}
	}
	for _, lw := range w.Listeners {
		lw.Session = w.sessionConfig(lw, hooks)
	}
	return w, nil
}

// wireAuth loads the users file the config's auth policies call for.
func (w *Wiring) wireAuth(opts Options, prev *Wiring) error {
	if opts.Auth != nil {
		w.Auth = opts.Auth
		return nil
	}
	a := &w.Config.Auth
	if a.Store == config.StorePostgres {
		return w.wirePostgresUsers(prev)
	}
	if a.Store == config.StoreHTTP {
		hook, err := newHook(a, w.logger)
		if err != nil {
			return err
		}
		w.Auth = hook
		return nil
	}
	if a.Store == config.StoreSystem {
		sys, err := newSystemUsers(w.Config, w.logger)
		if err != nil {
			return err
		}
		w.Auth = sys
		return nil
	}
	if a.UsersFilePolicy() == config.PolicyRequired {
		uf, err := auth.LoadUsersFile(w.Config.Path(a.UsersFile))
		if err != nil {
			return err
		}
		w.Users = uf
	}
	w.authOpts = auth.Options{
		Anonymous:     a.AnonymousPolicy() != config.PolicyOff,
		AnonymousHome: a.AnonymousHome,
		Logger:        w.logger,
	}
	if prev != nil && prev.fileAuth != nil && prev.authOpts == w.authOpts {
		// Same anonymous settings: keep the authenticator (sessions not yet
		// logged in hold it) and give it the new users on commit.
		w.fileAuth, w.reloadUsers = prev.fileAuth, prev.fileAuth
	} else {
		// An anonymous-only config has no users file: no users.
		w.fileAuth = auth.NewFileAuthenticator(w.Users, w.authOpts)
	}
	w.Auth = w.fileAuth
	return nil
}

// wirePostgresUsers builds the authenticator of auth.store = "postgres",
// or keeps the running one when its settings stay. Nothing connects
// here: the server starts the authenticator's loop (startUsers), so
// check-config and doctor open no connection through it.
func (w *Wiring) wirePostgresUsers(prev *Wiring) error {
	cfg := w.Config
	opts := pgdb.OptionsFrom(cfg)
	key := pgUsersKey{db: cfg.Auth.Postgres, passwordFile: opts.PasswordFile,
		anonymous: cfg.Auth.AnonymousPolicy() != config.PolicyOff, anonymousHome: cfg.Auth.AnonymousHome}
	if prev != nil && prev.pgUsers != nil && prev.pgKey == key {
		w.pgUsers, w.pgKey, w.Auth, w.pgPool = prev.pgUsers, key, prev.pgUsers, prev.pgPool
		return nil
	}
	pool, err := pgdb.Open(opts)
	if err != nil {
		return err
	}
	a := pgusers.NewAuthenticator(pool, pgusers.Options{
		Anonymous:     key.anonymous,
		AnonymousHome: key.anonymousHome,
		PollInterval:  cfg.Auth.Postgres.PollEvery(),
		Timeout:       cfg.Auth.Postgres.QueryTimeout(),
		Logger:        w.logger,
	})
	w.owned = append(w.owned, closerFunc(func() error {
		err := a.Close()
		pool.Close()
		return err
	}))
	w.pgUsers, w.pgKey, w.Auth, w.pgPool = a, key, a, pool
	return nil
}

// closerFunc is a func as an io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// wireStorage builds the backend the config names, or keeps the running
// one when the [storage] table is unchanged.
func (w *Wiring) wireStorage(ctx context.Context, opts Options, prev *Wiring) error {
	if opts.Storage != nil {
		w.Storage = opts.Storage
		return nil
	}
	cfg := w.Config
	if prev != nil && prev.Storage != nil && prev.Config.Storage == cfg.Storage && prev.Config.Path(prev.Config.Storage.Root) == cfg.Path(cfg.Storage.Root) {
		w.Storage = prev.Storage
		return nil
	}
	b, err := newBackend(ctx, cfg, cfg.Storage, w.logger)
	if err != nil {
		return err
	}
	w.Storage = b
	if c, ok := b.(io.Closer); ok {
		w.owned = append(w.owned, c)
	}
	return nil
}

// checkFolderVolumes refuses a users file whose folders mount a volume
// the config does not have: the user could not log in. (A user store
// that changes while the server runs, PostgreSQL, is checked at login.)
func checkFolderVolumes(uf *auth.UsersFile, cfg *config.Config) error {
	if uf == nil {
		return nil
	}
	for _, e := range uf.Users() {
		for i, f := range e.Folders {
			if f.Volume != "" && !slices.ContainsFunc(cfg.Volumes, func(v config.Volume) bool { return v.Name == f.Volume }) {
				return fmt.Errorf("user %q: folder[%d] %q: volume %q is not a [[volume]] of the config", e.Name, i, f.Path, f.Volume)
			}
		}
	}
	return nil
}

// wireVolumes builds the [[volume]] backends, keeping the running one of
// a volume whose table is unchanged.
func (w *Wiring) wireVolumes(ctx context.Context, prev *Wiring) []*PartError {
	var fails []*PartError
	cfg := w.Config
	w.Volumes = make(map[string]storage.Backend, len(cfg.Volumes))
	for i, v := range cfg.Volumes {
		if prev != nil && prev.Volumes[v.Name] != nil {
			if j := slices.IndexFunc(prev.Config.Volumes, func(p config.Volume) bool { return p.Name == v.Name }); j >= 0 {
				if p := prev.Config.Volumes[j]; p == v && prev.Config.Path(p.Root) == cfg.Path(v.Root) {
					w.Volumes[v.Name] = prev.Volumes[v.Name]
					continue
				}
			}
		}
		b, err := newBackend(ctx, cfg, v.Storage, w.logger)
		if err != nil {
			key := fmt.Sprintf("volume[%d].root", i)
			if v.Backend == "s3" {
				key = fmt.Sprintf("volume[%d].bucket", i)
			}
			fails = append(fails, &PartError{Part: "volume " + v.Name, Key: key, Err: err})
			continue
		}
		w.Volumes[v.Name] = b
		if c, ok := b.(io.Closer); ok {
			w.owned = append(w.owned, c)
		}
	}
	return fails
}

// newBackend builds the storage backend that st, [storage] or a
// [[volume]] of cfg, names.
func newBackend(ctx context.Context, cfg *config.Config, st config.Storage, logger *slog.Logger) (storage.Backend, error) {
	if st.Backend == "s3" {
		// Bounded: New checks the bucket once, so a wrong endpoint or
		// missing permission stops the start with its reason.
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return s3store.New(ctx, s3store.Options{
			Bucket:      st.Bucket,
			Prefix:      st.Prefix,
			Region:      st.Region,
			Endpoint:    st.Endpoint,
			PathStyle:   st.PathStyle,
			PartSize:    int64(st.PartSize),
			Concurrency: st.Concurrency,
			Logger:      logger,
			// Checksums of multipart uploads in object tags.
			ChecksumTags: st.ChecksumTagsOn(),

			// Shared by all sessions: bounds the part buffers of all
			// uploads, and the silence of any one S3 request.
			UploadMemory:   int64(st.UploadMemory),
			RequestTimeout: st.RequestTimeout.D(),
		})
	}
	return local.New(cfg.Path(st.Root), local.Options{Logger: logger})
}

// discover resolves every "aws" and DNS-name passive address once: a
// server that cannot learn its public address refuses to start (or to
// reload) with the reason, instead of handing clients addresses that
// hang. Addresses the running wiring already knows are taken over with
// their refresh loops.
func (w *Wiring) discover(ctx context.Context, prev *Wiring) []*PartError {
	var fails []*PartError
	failed := map[string]bool{}
	for i := range w.Config.Listeners {
		for j, r := range w.Config.Listeners[i].Passive {
			key := strings.ToLower(r.Address)
			if _, done := w.sources[key]; done || failed[key] {
				continue
			}
			if prev != nil && prev.sources[key] != nil {
				w.sources[key] = prev.sources[key]
				continue
			}
			var src refreshingSource
			var err error
			switch r.Kind() {
			case config.AddressAWS:
				src, err = netpolicy.NewAWSAddress(ctx, netpolicy.AWSOptions{Logger: w.logger})
			case config.AddressDNS:
				src, err = netpolicy.NewDNSAddress(ctx, r.Address, netpolicy.DNSOptions{Logger: w.logger})
			default:
				continue
			}
			if err != nil {
				failed[key] = true
				fails = append(fails, &PartError{Part: "passive addresses",
					Key: fmt.Sprintf("listener[%d].passive[%d].address", i, j), Err: fmt.Errorf("%q: %w", r.Address, err)})
				continue
			}
			w.sources[key] = &addressSource{src: src}
		}
	}
	return fails
}

// passiveRules turns a listener's passive rules into the policy's, with
// the discovered address sources.
func (w *Wiring) passiveRules(lc *config.Listener) []netpolicy.Rule {
	rules := []netpolicy.Rule{}
	for j := range lc.Passive {
		r := &lc.Passive[j]
		rule := netpolicy.Rule{Clients: r.ClientPrefixes(), PortOffset: r.PortOffset()}
		switch r.Kind() {
		case config.AddressControl:
		case config.AddressLiteral:
			rule.Source = netpolicy.StaticAddress(netip.MustParseAddr(r.Address))
		default:
			rule.Source = w.sources[strings.ToLower(r.Address)].src
		}
		rules = append(rules, rule)
	}
	return rules
}

// listenerKey identifies listener i of cfg across reloads.
func listenerKey(cfg *config.Config, i int) string {
	ap := cfg.Listeners[i].AddrPort()
	n := 0
	for j := range i {
		if cfg.Listeners[j].AddrPort() == ap {
			n++
		}
	}
	return fmt.Sprintf("%s#%d", ap, n)
}

// portPool makes the listener's passive port pool, or keeps the running
// listener's when its address, range and PROXY settings stay: its open
// passive sockets and the reservations of sessions waiting on them are
// then untouched by a reload.
func (w *Wiring) portPool(lw *ListenerWiring, prev *Wiring) (*netpolicy.PortPool, error) {
	lc := lw.Config
	if prev != nil {
		for _, old := range prev.Listeners {
			if old.key == lw.key && old.Ports != nil && samePassiveSockets(old.Config, lc) {
				return old.Ports, nil
			}
		}
	}
	lo, hi, _ := lc.PortRange()
	pool, err := netpolicy.NewPortPool(lc.AddrPort().Addr(), lo, hi, w.logger)
	if err != nil {
		return nil, err
	}
	if lc.PassiveProxy() == config.PolicyRequired {
		trusted := lc.TrustedProxies()
		pool.SetListenerWrapper(func(l net.Listener) net.Listener { return netpolicy.WrapProxyProtocol(l, trusted) })
	}
	w.owned = append(w.owned, pool)
	return pool, nil
}

// listenerBuckets are the bandwidth buckets of lw: the running
// listener's when it stays (their rates change only at commit, so a
// reload that fails changes nothing), new ones at the configured rates
// otherwise.
func listenerBuckets(lw *ListenerWiring, prev *Wiring) (up, down *bandwidth.Limiter) {
	if prev != nil {
		for _, old := range prev.Listeners {
			if old.key == lw.key && old.Upload != nil && old.Download != nil {
				return old.Upload, old.Download
			}
		}
	}
	return bandwidth.New(int64(lw.Config.UploadRate)), bandwidth.New(int64(lw.Config.DownloadRate))
}

// applyRates gives the listeners' buckets the rates of this wiring's
// config: at once for the transfers that share them, running ones too.
func (w *Wiring) applyRates() {
	for _, lw := range w.Listeners {
		if lw.Upload != nil && lw.Download != nil {
			lw.Upload.SetRate(int64(lw.Config.UploadRate))
			lw.Download.SetRate(int64(lw.Config.DownloadRate))
		}
	}
}

// samePassiveSockets reports whether two listener configs open their
// passive sockets alike.
func samePassiveSockets(a, b *config.Listener) bool {
	alo, ahi, _ := a.PortRange()
	blo, bhi, _ := b.PortRange()
	return alo == blo && ahi == bhi && a.PassiveProxy() == b.PassiveProxy() &&
		(b.PassiveProxy() == config.PolicyOff || slices.Equal(a.TrustedProxies(), b.TrustedProxies()))
}

// sessionConfig builds what a listener gives its sessions. It is never
// changed afterwards: a reload builds a new one for new sessions.
func (w *Wiring) sessionConfig(lw *ListenerWiring, hooks sessionHooks) *ftp.Config {
	lc := lw.Config
	var tp ftp.TLSPolicy
	if lw.Certs != nil {
		tp = ftp.TLSPolicy{
			Config:         lw.Certs.ServerConfig(),
			Implicit:       lc.TLS == config.TLSImplicit,
			RequireControl: lc.ControlTLS() == config.PolicyRequired,
			RequireData:    lc.DataTLS() == config.PolicyRequired,
			RequireReuse:   lc.SessionReuse() == config.PolicyRequired,
			AllowCCC:       lc.TLSAllowCCC,
		}
	}
	sc := w.Config.Server
	hashMax, hashRate := sc.HashLimits()
	cmdRate, cmdBurst := sc.CommandRate()
	var up, down *bandwidth.Limiter // nil: no gate at all
	if lc.UploadRate > 0 {
		up = lw.Upload
	}
	if lc.DownloadRate > 0 {
		down = lw.Download
	}
	return &ftp.Config{
		UploadChecksum:    sc.UploadChecksums(),
		HashMaxSize:       hashMax,
		HashRate:          hashRate,
		TLS:               tp,
		Banner:            sc.Banner,
		IdleTimeout:       sc.IdleTimeout.D(),
		DataTimeout:       sc.DataTimeout.D(),
		StallTimeout:      sc.StallTimeout.D(),
		LoginTimeout:      sc.LoginTimeout.D(),
		MaxLoginFailures:  sc.MaxLoginFailures,
		LoginFailureDelay: sc.LoginFailureDelay.D(),
		ReplaceGrace:      sc.ReplaceGraceDuration(),
		KeepPartial:       sc.KeepPartialUploads,
		BinaryOnly:        lc.BinaryOnly,
		CommandRate:       float64(cmdRate),
		CommandBurst:      cmdBurst,
		UploadLimit:       up,
		DownloadLimit:     down,
		UserRates:         hooks.userRates,
		Auth:              w.Auth,
		Storage:           w.Storage,
		Volumes:           w.Volumes,
		Network:           &netpolicy.Policy{Rules: lw.Rules, Ports: lw.Ports, ActiveAllowed: lc.ActiveAllowed()},
		Logger:            w.logger,
		Metrics:           hooks.metrics,
		Guard:             hooks.guard,
		UserSessions:      hooks.userSessions,
		Events:            hooks.events,
		Quotas:            hooks.quotas,
		Listener:          lc.Address,
		StorageName:       w.Config.Storage.Backend,
	}
}

// sessionHooks are the server-wide parts sessions report to: nil ones
// hear nothing.
type sessionHooks struct {
	metrics ftp.Metrics
	guard   ftp.Guard
	events  events.Recorder
	quotas  ftp.QuotaKeeper
	// userRates are the per-user bandwidth buckets, one set for the
	// server, kept across reloads.
	userRates *bandwidth.Shared
	// userSessions is the server's count of each user's sessions.
	userSessions ftp.SessionCounter
}

// newSystemUsers builds the authenticator of auth.store = "system". It
// reads the account files now, so check-config and doctor report a
// shadow file the server cannot read, and a reload (SIGHUP) builds a new
// one: that is how a password changed with passwd(1) takes effect.
func newSystemUsers(cfg *config.Config, logger *slog.Logger) (*sysusers.Authenticator, error) {
	s := &cfg.Auth.System
	perms, err := auth.ParsePermissions(s.Permissions)
	if err != nil {
		return nil, fmt.Errorf("auth.system.permissions: %w", err)
	}
	passwd, shadow, group := s.Files()
	base := ""
	if s.Home == config.HomePasswd {
		if base, err = filepath.Abs(cfg.Path(cfg.Storage.Root)); err != nil {
			return nil, fmt.Errorf("storage.root: %w", err)
		}
	}
	return sysusers.New(sysusers.Options{
		PasswdFile:       cfg.Path(passwd),
		ShadowFile:       cfg.Path(shadow),
		GroupFile:        cfg.Path(group),
		FTPUsersFile:     cfg.Path(s.FTPUsers()),
		FTPUsersRequired: s.FTPUsersFile != nil,
		UserlistFile:     cfg.Path(s.UserlistFile),
		UserlistDeny:     s.DenyUserlist(),
		Users:            s.Users,
		Groups:           s.Groups,
		MinUID:           s.LowestUID(),
		Home:             s.Home,
		HomeBase:         base,
		Perms:            perms,
		AllowMD5Crypt:    s.AllowMD5Crypt,
		Anonymous:        cfg.Auth.AnonymousPolicy() != config.PolicyOff,
		AnonymousHome:    cfg.Auth.AnonymousHome,
		Logger:           logger,
	})
}

// newHook builds the identity hook of auth.store = "http". A reload builds
// a new one: its cache of accepted logins starts empty, which costs one
// hook call per user at most.
func newHook(a *config.Auth, logger *slog.Logger) (*idhook.Hook, error) {
	h := &a.HTTP
	perms, err := auth.ParsePermissions(h.DefaultPermissions)
	if err != nil {
		return nil, fmt.Errorf("auth.http.default_permissions: %w", err)
	}
	return idhook.New(idhook.Options{
		URL:                h.URL,
		Timeout:            h.Timeout.D(),
		CacheTTL:           h.CacheTTLDuration(),
		Secret:             h.Secret,
		BearerToken:        h.BearerToken,
		ServerID:           h.ServerID,
		DefaultPermissions: perms,
		HomeDirectoryRoot:  h.HomeDirectoryRoot,
		Anonymous:          a.AnonymousPolicy() != config.PolicyOff,
		AnonymousHome:      a.AnonymousHome,
		Logger:             logger,
	})
}
