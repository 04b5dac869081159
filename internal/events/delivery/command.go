package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// CommandSink runs a program once per event: the event's JSON on its
// standard input, the main fields in environment variables (EnvVars), no
// shell, in its own process group, which is killed at the timeout. Up to
// the sink's concurrency run at once; with 1 they run in event order.
//
// Retry policy: a hook that ran is not run again for the same event,
// whatever its exit status. Hooks move files, send mail, call other
// systems: a non-zero exit or a kill at the timeout usually comes after
// part of that work, and running a non-idempotent script twice does more
// harm than logging the failure (exit status and the start of stderr, at
// warn, and the Failed counter). A hook that did not start at all (program
// missing, not executable, fork failing) did nothing, so that is retried
// with backoff like a webhook that is down. One case runs a hook twice: a
// crash or kill -9 of cloudftpd while it ran (the outbox only records it
// once it returned); CLOUDFTPD_EVENT_ID lets a hook that cares notice.
//
// Shutdown lets running hooks finish, within their timeout.
type CommandSink struct {
	name        string
	argv        []string
	concurrency int
	timeout     time.Duration
	log         *slog.Logger
	onFailed    func()
}

// EnvVars lists the environment variables a hook gets besides cloudftpd's
// own environment, each set (empty when the event has no value) so that a
// script may use `set -u`.
var EnvVars = []string{
	"CLOUDFTPD_EVENT_ID",    // the event's id, stable across retries
	"CLOUDFTPD_EVENT_TYPE",  // upload.committed, download.done, ...
	"CLOUDFTPD_EVENT_TIME",  // RFC 3339, UTC
	"CLOUDFTPD_SESSION",     // the session's id
	"CLOUDFTPD_USER",        // the login name
	"CLOUDFTPD_ANONYMOUS",   // "1" for the anonymous login, else ""
	"CLOUDFTPD_CLIENT",      // the client's address (after PROXY protocol)
	"CLOUDFTPD_LISTENER",    // the listener's configured address
	"CLOUDFTPD_PATH",        // the user's virtual path, e.g. /incoming/a.csv
	"CLOUDFTPD_OLD_PATH",    // renames: the path before
	"CLOUDFTPD_SIZE",        // bytes moved, or the file's size
	"CLOUDFTPD_SHA256",      // hex SHA-256 of an upload
	"CLOUDFTPD_STORAGE",     // the storage backend ("local", "s3")
	"CLOUDFTPD_OBJECT",      // where the file is: a path on disk or an S3 key
	"CLOUDFTPD_RESULT",      // ok, failed, aborted
	"CLOUDFTPD_REASON",      // why it failed, for people
	"CLOUDFTPD_DURATION_MS", // how long it took
	"CLOUDFTPD_TLS",         // the control connection's TLS version, "" if clear
}

// NewCommand returns a sink running argv. It checks that the program can
// be found now, so a typo fails at start rather than at the first event.
func NewCommand(name string, argv []string, concurrency int, timeout time.Duration, log *slog.Logger) (*CommandSink, error) {
	if len(argv) == 0 {
		return nil, errors.New("delivery: command: no program")
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("delivery: command: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &CommandSink{name: name, argv: argv, concurrency: max(concurrency, 1), timeout: timeout, log: log, onFailed: func() {}}, nil
}

// BatchSize is the concurrency: the dispatcher hands over no more events
// than can run at once, so at most that many hooks run again after a
// crash.
func (c *CommandSink) BatchSize() int { return c.concurrency }

func (c *CommandSink) setFailed(f func()) { c.onFailed = f }

// Deliver implements Sink. It starts the hooks in order, up to the
// concurrency at once, and waits for them all; if one cannot start, it
// starts no more and reports the events before it as delivered.
func (c *CommandSink) Deliver(ctx context.Context, evs []events.Event) (int, error) {
	// Hooks outlive ctx (shutdown): see the type's comment.
	hctx := context.WithoutCancel(ctx)
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	n, startErr := len(evs), error(nil)
	for i := range evs {
		sem <- struct{}{}
		started := make(chan error, 1)
		wg.Go(func() {
			defer func() { <-sem }()
			c.run(hctx, &evs[i], started)
		})
		if err := <-started; err != nil {
			n, startErr = i, err
			break
		}
	}
	wg.Wait()
	return n, startErr
}

// run runs one hook, reporting on started whether it started.
func (c *CommandSink) run(ctx context.Context, e *events.Event, started chan<- error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = append(withoutOurs(os.Environ()), hookEnv(e)...)
	cmd.Stdin = bytes.NewReader(append(marshal(e), '\n'))
	var stderr headWriter
	stderr.max = 2048
	cmd.Stderr = &stderr
	inOwnGroup(cmd) // Cancel kills the group, grandchildren included
	// Pipes a surviving grandchild holds open must not hold Wait.
	cmd.WaitDelay = 2 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		started <- fmt.Errorf("delivery: command %s: %w", c.argv[0], err)
		return
	}
	started <- nil
	err := cmd.Wait()
	took := time.Since(start).Round(time.Millisecond)
	attrs := []any{"sink", c.name, "event", e.ID, "type", e.Type, "path", e.Path, "took", took}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		attrs = append(attrs, "stderr", s)
	}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		c.onFailed()
		c.log.Warn("events: hook killed at its timeout; not run again", append(attrs, "timeout", c.timeout)...)
	case err != nil:
		c.onFailed()
		c.log.Warn("events: hook failed; not run again", append(attrs, "err", err)...)
	case stderr.Len() > 0:
		c.log.Info("events: hook ran", attrs...)
	default:
		c.log.Debug("events: hook ran", attrs...)
	}
}

func hookEnv(e *events.Event) []string {
	anon := ""
	if e.Anonymous {
		anon = "1"
	}
	vals := []string{
		e.ID, string(e.Type), e.Time.UTC().Format(time.RFC3339Nano), e.Session, e.User, anon,
		e.Client, e.Listener, e.Path, e.OldPath, strconv.FormatInt(e.Size, 10), e.SHA256,
		e.Storage, e.Object, e.Result, e.Reason, strconv.FormatFloat(e.Millis, 'f', -1, 64),
		e.ControlTLS.Version,
	}
	env := make([]string, len(EnvVars))
	for i, k := range EnvVars {
		// exec refuses a NUL in the environment; FTP paths cannot
		// hold one, but a hook must not stop over it.
		env[i] = k + "=" + strings.ReplaceAll(vals[i], "\x00", "")
	}
	return env
}

// withoutOurs drops CLOUDFTPD_ variables inherited from cloudftpd's own
// environment, so a hook never mistakes them for the event's.
func withoutOurs(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CLOUDFTPD_") {
			out = append(out, kv)
		}
	}
	return out
}

// headWriter keeps the first max bytes written to it.
type headWriter struct {
	bytes.Buffer
	max int
	cut bool
}

func (w *headWriter) Write(p []byte) (int, error) {
	room := w.max - w.Len()
	if room >= len(p) {
		w.Buffer.Write(p)
		return len(p), nil
	}
	if !w.cut {
		w.Buffer.Write(p[:max(room, 0)])
		w.Buffer.WriteString("…")
		w.cut = true
	}
	return len(p), nil
}
