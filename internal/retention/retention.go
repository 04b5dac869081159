// Package retention deletes files that are older than their owner's
// retention rules allow: the background sweep behind the users file's
// `retention` key and the `retention` of its [[user.dir]] tables.
//
// It offers Sweeper, with Sweep (one bounded pass) and Run (a pass every
// interval until the context ends). A pass lists the users with their
// limits (auth.Lister), opens each home with a retention rule through the
// storage backend, and walks the directories the rules cover with
// storage.Storage.ReadDir, so it sees exactly what the user sees: nothing
// outside the home (the backend jails every path), no upload in progress
// (temporary files and S3 multipart uploads are not listed), and symbolic
// links as links, which it neither follows nor deletes. It deletes
// regular files only; directories stay, even when the sweep empties them.
//
// Each deletion is logged and recorded as an events.Expired event. A file
// that cannot be deleted is logged and the pass carries on with the
// others.
package retention

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Env is what a pass works on, as the running config says now: users and
// storage change with a reload, so the sweeper asks before every pass.
type Env struct {
	// Users lists the users and their rules; nil: nobody to sweep for.
	Users auth.Lister
	// Storage holds the homes.
	Storage storage.Backend
	// StorageName is the backend's name for events ("local", "s3").
	StorageName string
	// Interval is the time between passes.
	Interval time.Duration
	// MaxFiles bounds the directory entries one pass looks at; the next
	// pass carries on where this one stopped.
	MaxFiles int
}

// Options configure a Sweeper.
type Options struct {
	// Env is asked for the users, storage and bounds before every pass.
	Env func() Env
	// Events hears of every deletion; nil records nothing.
	Events events.Recorder
	// Deleted, when set, is told of every file deleted, with its size
	// (the quota usage it gives back).
	Deleted func(user string, size int64)
	Logger  *slog.Logger
	// Now is the clock files are aged by (time.Now). S3 modification
	// times cannot be set, so tests age files by moving it forward.
	Now func() time.Time
	// FirstDelay is the wait before the first pass of Run (a minute, or
	// the interval when that is shorter): not at once, so that a start
	// is not slowed by a sweep, but soon, so an operator sees it work.
	FirstDelay time.Duration
}

// Result is what one pass did.
type Result struct {
	Users    int // users with a retention rule that the pass got to
	Examined int // directory entries looked at
	Deleted  int // files deleted
	Failed   int // files, directories or homes that could not be handled (logged)
	// Complete is true when the pass reached the end of every user's
	// tree; false when it stopped at MaxFiles (or its context ended), and
	// the next pass resumes there.
	Complete bool
}

// Stats are a Sweeper's counters since it was made.
type Stats struct {
	Passes, Deleted, Failed uint64
}

// Sweeper runs retention passes. Sweep and Run must not be called
// concurrently; Stats may be called at any time.
type Sweeper struct {
	opts Options
	log  *slog.Logger

	// resume is where the last pass stopped, nil when it completed.
	resume *cursor

	passes, deleted, failed atomic.Uint64
	mu                      sync.Mutex // guards running
	running                 bool
}

// cursor is the position of an unfinished pass: the user, the directories
// still to list (breadth first), and how many entries of the first of
// them were already handled.
type cursor struct {
	user    string
	pending []string
	skip    int
}

// New returns a sweeper; nothing runs until Sweep or Run.
func New(opts Options) *Sweeper {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sweeper{opts: opts, log: opts.Logger}
}

// Stats returns the counters.
func (s *Sweeper) Stats() Stats {
	return Stats{Passes: s.passes.Load(), Deleted: s.deleted.Load(), Failed: s.failed.Load()}
}

// Run makes a pass after FirstDelay and then every interval until ctx
// ends. A pass in progress stops at the next file when ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	first := s.opts.FirstDelay
	if first <= 0 {
		first = min(time.Minute, s.interval())
	}
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		res, err := s.Sweep(ctx)
		if ctx.Err() != nil {
			return
		}
		lvl := slog.LevelDebug
		if res.Deleted > 0 || res.Failed > 0 || err != nil {
			lvl = slog.LevelInfo
		}
		s.log.Log(ctx, lvl, "retention: sweep done", "users", res.Users, "examined", res.Examined,
			"deleted", res.Deleted, "failed", res.Failed, "complete", res.Complete,
			"took", time.Since(start).Round(time.Millisecond), "err", err)
		t.Reset(s.interval())
	}
}

func (s *Sweeper) interval() time.Duration {
	if d := s.opts.Env().Interval; d > 0 {
		return d
	}
	return time.Hour
}

// Sweep makes one pass: it deletes the files, in every tree a retention
// rule covers, whose modification time is older than the most specific
// rule for their directory allows, looking at no more than MaxFiles
// entries. The error is for the pass as a whole (the users could not be
// listed); failures on single files are logged and counted in Result.
func (s *Sweeper) Sweep(ctx context.Context) (Result, error) {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return Result{}, errors.New("retention: a sweep is already running")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	s.passes.Add(1)

	env := s.opts.Env()
	var res Result
	if env.Users == nil || env.Storage == nil {
		res.Complete = true
		return res, nil
	}
	users, err := env.Users.ListUsers(ctx)
	if err != nil {
		return res, fmt.Errorf("retention: listing users: %w", err)
	}
	budget := env.MaxFiles
	if budget <= 0 {
		budget = 100000
	}
	p := &pass{s: s, env: env, now: s.opts.Now(), budget: budget, res: &res}
	resume := s.resume
	s.resume = nil
	for _, u := range users {
		if resume != nil && u.Name < resume.user {
			continue // done in an earlier pass
		}
		rules := retentionRules(u.Limits.Dirs)
		if len(rules) == 0 {
			continue
		}
		c := &cursor{user: u.Name, pending: roots(rules)}
		if resume != nil && resume.user == u.Name {
			c = resume
		}
		resume = nil
		res.Users++
		if !p.sweepUser(ctx, u, rules, c) {
			s.resume = c
			return res, nil
		}
	}
	res.Complete = true
	return res, nil
}

// retentionRules are the rules of dirs that set a retention.
func retentionRules(dirs []auth.DirRule) []auth.DirRule {
	var out []auth.DirRule
	for _, d := range dirs {
		if d.Retention > 0 {
			out = append(out, d)
		}
	}
	return out
}

// roots are the directories a walk must start from to cover every rule:
// those not below another rule's.
func roots(rules []auth.DirRule) []string {
	dirs := make([]string, 0, len(rules))
	for _, r := range rules {
		dirs = append(dirs, r.Dir)
	}
	slices.SortFunc(dirs, func(a, b string) int { return len(a) - len(b) })
	var out []string
	for _, d := range dirs {
		if !slices.ContainsFunc(out, func(r string) bool { return within(d, r) }) {
			out = append(out, d)
		}
	}
	return out
}

// within reports whether the clean virtual path p is dir or below it.
func within(p, dir string) bool {
	return dir == "/" || p == dir || strings.HasPrefix(p, dir+"/")
}

// ruleFor is the most specific rule covering the directory dir.
func ruleFor(rules []auth.DirRule, dir string) (auth.DirRule, bool) {
	best, found := auth.DirRule{}, false
	for _, r := range rules {
		if within(dir, r.Dir) && (!found || len(r.Dir) > len(best.Dir)) {
			best, found = r, true
		}
	}
	return best, found
}

// pass is one Sweep's state.
type pass struct {
	s      *Sweeper
	env    Env
	now    time.Time
	budget int
	res    *Result
}

// sweepUser walks one user's trees from c. It returns false when the
// pass must stop (budget spent, ctx ended), with c where to resume.
func (p *pass) sweepUser(ctx context.Context, u auth.User, rules []auth.DirRule, c *cursor) bool {
	log := p.s.log.With("user", u.Name)
	st, err := p.env.Storage.Home(ctx, u.Home)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		p.fail(log, "retention: cannot open the user's home; skipped", "home", u.Home, "err", err)
		return true
	}
	defer st.Close()
	for len(c.pending) > 0 {
		if ctx.Err() != nil {
			return false
		}
		dir := c.pending[0]
		kept, more := p.sweepDir(ctx, log, st, u, rules, dir, c)
		if more {
			// Stopped inside dir: next time skip what was seen and is
			// still there (deleted entries no longer list).
			c.skip = kept
			return false
		}
		c.pending, c.skip = c.pending[1:], 0
	}
	return true
}

// sweepDir lists dir, queues its subdirectories and deletes its expired
// files, after skipping the first c.skip entries. It returns how many of
// the entries it read are still there, and whether it stopped before the
// end of the directory.
func (p *pass) sweepDir(ctx context.Context, log *slog.Logger, st storage.Storage, u auth.User, rules []auth.DirRule, dir string, c *cursor) (kept int, more bool) {
	it, err := st.ReadDir(ctx, dir)
	if err != nil {
		if !errors.Is(err, storage.ErrNotExist) && ctx.Err() == nil {
			// A rule's directory that does not exist (yet) is normal.
			p.fail(log, "retention: cannot list a directory; skipped", "path", dir, "err", err)
		}
		return 0, false
	}
	defer it.Close()
	rule, covered := ruleFor(rules, dir)
	seen := 0
	for {
		if p.budget <= 0 || ctx.Err() != nil {
			return kept, true
		}
		fi, err := it.Next()
		if err == io.EOF {
			return kept, false
		}
		if err != nil {
			if ctx.Err() == nil {
				p.fail(log, "retention: listing a directory failed; the rest of it is skipped", "path", dir, "err", err)
			}
			return kept, false
		}
		seen++
		if seen <= c.skip {
			kept++
			continue // handled by the pass that stopped here
		}
		p.budget--
		p.res.Examined++
		name := path.Join(dir, fi.Name)
		switch {
		case fi.IsDir():
			c.pending = append(c.pending, name)
			kept++
		case fi.Mode.IsRegular() && covered:
			if !p.expire(ctx, log, st, u, rule, name, fi) {
				kept++
			}
		default:
			kept++ // links, devices: never deleted
		}
	}
}

// expire deletes the file name if it is older than rule allows, and
// reports whether it did.
func (p *pass) expire(ctx context.Context, log *slog.Logger, st storage.Storage, u auth.User, rule auth.DirRule, name string, fi storage.FileInfo) bool {
	if !p.old(fi, rule) {
		return false
	}
	// The listing may be minutes old by now, and the name replaced by a
	// new upload since (an upload's rename keeps the name): look again
	// just before deleting.
	fresh, err := st.Stat(ctx, name)
	switch {
	case errors.Is(err, storage.ErrNotExist):
		return true // gone already
	case err != nil:
		if ctx.Err() == nil {
			p.fail(log, "retention: cannot stat an expired file; kept", "path", name, "err", err)
		}
		return false
	case !fresh.Mode.IsRegular() || !p.old(fresh, rule):
		return false
	}
	if err := st.Remove(ctx, name); err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return true
		}
		if ctx.Err() == nil {
			p.fail(log, "retention: cannot delete an expired file; kept", "path", name, "err", err)
		}
		return false
	}
	p.res.Deleted++
	p.s.deleted.Add(1)
	object := ""
	if l, ok := st.(storage.Locator); ok {
		object = l.Locate(name)
	}
	age := p.now.Sub(fresh.ModTime)
	log.Info("retention: expired file deleted", "path", name, "age", age.Round(time.Second),
		"modified", fresh.ModTime.UTC(), "retention", rule.Retention, "rule", rule.Dir,
		"size", fresh.Size, "storage", p.env.StorageName, "object", object)
	if f := p.s.opts.Deleted; f != nil {
		f(u.Name, fresh.Size)
	}
	if r := p.s.opts.Events; r != nil {
		e := events.Event{
			Type:    events.Expired,
			User:    u.Name,
			Path:    name,
			Size:    fresh.Size,
			Result:  events.ResultOK,
			Reason:  fmt.Sprintf("older than the retention of %s (%s)", rule.Dir, rule.Retention),
			Storage: p.env.StorageName,
			Object:  object,
			ModTime: fresh.ModTime.UTC(),
		}
		if err := r.Record(e); err != nil {
			log.Error("retention: recording the event failed", "path", name, "err", err)
		}
	}
	return true
}

// old reports whether fi is older than rule allows. A file without a
// modification time is never old: its age is unknown.
func (p *pass) old(fi storage.FileInfo, rule auth.DirRule) bool {
	return !fi.ModTime.IsZero() && p.now.Sub(fi.ModTime) > rule.Retention
}

func (p *pass) fail(log *slog.Logger, msg string, args ...any) {
	p.res.Failed++
	p.s.failed.Add(1)
	log.Warn(msg, args...)
}
