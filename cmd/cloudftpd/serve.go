package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/doctor"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// defaultConfigFile is read by serve and check-config when it exists and
// no --config is given.
const defaultConfigFile = "cloudftpd.toml"

// configPath returns the config file serve reads: path, or cloudftpd.toml
// in the working directory, or "" (meaning the built-in demo) when neither
// is given or there.
func configPath(path string) string {
	if path != "" {
		return path
	}
	if _, err := os.Stat(defaultConfigFile); err != nil {
		return ""
	}
	return defaultConfigFile
}

// newLogger logs to w in the config's format, at level.
func newLogger(cfg *config.Config, w io.Writer, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serving is what serve builds before it listens.
type serving struct {
	srv    *server.Server
	logger *slog.Logger
	// cfg is the config served, replaced by each successful reload.
	cfg atomic.Pointer[config.Config]
}

// newServing is serve's build step: the logger and the server built from
// cfg (server.New: the wiring check-config and doctor build too), nothing
// listening yet. The log level follows cfg and every reload.
func newServing(ctx context.Context, cfg *config.Config, stderr io.Writer) (*serving, error) {
	level := new(slog.LevelVar)
	logger := newLogger(cfg, stderr, level)
	srv, err := server.New(ctx, cfg, server.Options{Logger: logger, Level: level, Version: version(),
		Doctor: func(ctx context.Context, cfg *config.Config) []diag.Check {
			// Its own wiring logs nothing: the running one is the server.
			return doctor.Diagnose(ctx, cfg, doctor.Options{})
		}})
	if err != nil {
		return nil, err
	}
	sv := &serving{srv: srv, logger: logger}
	sv.cfg.Store(cfg)
	return sv, nil
}

// reload re-reads the config file and applies it (SIGHUP). A file that
// does not load leaves the server as it was, with one error line; so does
// one that loads but cannot be built, which Reload itself reports.
func (sv *serving) reload(ctx context.Context, path string) {
	if path == "" {
		sv.logger.Warn("SIGHUP: no config file to reload (serving the built-in demo)")
		return
	}
	cfg, err := config.Load(path)
	if err != nil {
		sv.logger.Error("config not reloaded; the server keeps running as it was", "file", path, "err", err)
		return
	}
	if sv.srv.Reload(ctx, cfg) == nil {
		sv.cfg.Store(cfg)
	}
}

// runServe serves until ctx ends (SIGINT/SIGTERM in main), then shuts
// down gracefully.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFlag := fs.String("config", "", "config file (default: ./cloudftpd.toml if present, else built-in demo defaults)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path := configPath(*cfgFlag)
	var cfg *config.Config
	demoPassword := ""
	if path == "" {
		// The demo's users file lives as long as the process: its
		// password is new on every start.
		dir, err := os.MkdirTemp("", "cloudftpd-demo-")
		if err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		usersFile := filepath.Join(dir, "users.toml")
		if demoPassword, err = writeDemoUsers(usersFile); err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
		cfg = config.Default(usersFile)
	} else {
		var err error
		if cfg, err = config.Load(path); err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
	}
	sv, err := newServing(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	if err := sv.srv.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	if demoPassword != "" {
		printDemo(stdout, cfg, sv.srv.Addrs()[0], demoPassword)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(hup)
	go func() {
		for sig := range hup {
			// Both reopen the event sinks' files (logrotate sends
			// USR1); HUP also reloads the config.
			if err := sv.srv.ReopenLogs(); err != nil {
				sv.logger.Error("reopening event log files", "err", err)
			}
			if sig == syscall.SIGHUP {
				sv.reload(ctx, path)
			}
		}
	}()
	<-ctx.Done()
	// The drain delay (listeners still open, /healthz 503) comes first;
	// the grace for running transfers counts from when they close. The
	// server's config, not sv.cfg: POST /v1/reload reloads too.
	sc := sv.srv.Config().Server
	grace, drain := sc.ShutdownGrace.D(), sc.DrainDelay.D()
	sv.logger.Info("shutting down", "drain_delay", drain, "grace", grace)
	graceCtx, cancel := context.WithTimeout(context.Background(), drain+grace)
	defer cancel()
	if err := sv.srv.Shutdown(graceCtx); err != nil {
		sv.logger.Warn("transfers cut short by shutdown", "err", err)
	}
	return 0
}

// signalContext ends on the first SIGINT or SIGTERM; after that the signals'
// default action is restored, so a second one stops the process at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// writeDemoUsers writes a users file with the built-in "demo" user and a
// random password, which it returns.
func writeDemoUsers(path string) (string, error) {
	pw := rand.Text()[:16]
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return "", err
	}
	all, err := auth.ParsePermissions([]string{"all"})
	if err != nil {
		return "", err
	}
	uf := &auth.UsersFile{}
	if err := uf.Add("demo", hash, "demo", all); err != nil {
		return "", err
	}
	return pw, uf.Save(path)
}

func printDemo(w io.Writer, cfg *config.Config, addr net.Addr, pw string) {
	_, port, _ := net.SplitHostPort(addr.String())
	root, _ := filepath.Abs(cfg.Path(cfg.Storage.Root))
	fmt.Fprintf(w, `cloudftpd %s is running with built-in defaults (no config file).
  listening on  %s
  files in      %s
  user          demo
  password      %s   (new on every start; run "cloudftpd init" for a real setup)
Try:
  curl -u demo:%s ftp://127.0.0.1:%s/
  lftp -u demo,%s -p %s 127.0.0.1
Stop with Ctrl-C.
`, version(), addr, filepath.Join(root, "demo"), pw, pw, port, pw, port)
}

// runCheckConfig validates a config and builds everything serve would
// build from it (server.Wire: users file, certificates, storage, passive
// addresses), without listening.
func runCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigFile, "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	w, err := server.Wire(ctx, cfg, server.Options{})
	defer w.Close()
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	users := "anonymous logins only"
	if w.Users != nil {
		users = fmt.Sprintf("%d user(s)", len(w.Users.Users()))
		if cfg.Auth.AnonymousPolicy() != config.PolicyOff {
			users += " and anonymous logins"
		}
	}
	fmt.Fprintf(stdout, "%s: OK (%d listener(s), %s, storage %s)\n", *cfgPath, len(cfg.Listeners), users, cfg.Storage.Backend)
	return 0
}

// buildVersion and buildCommit are set at build time, as packaging/mkpkg
// does: -ldflags "-X main.buildVersion=1.2.3 -X main.buildCommit=$(git rev-parse HEAD)".
var (
	buildVersion = ""
	buildCommit  = ""
)

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if c := commit(); c != "" {
		return "dev-" + c
	}
	return "dev"
}

// commit is the source revision the binary was built from, shortened to
// 12 hex digits: buildCommit, else what the go command recorded (absent
// with -buildvcs=false or outside a checkout), else "".
func commit() string {
	c := buildCommit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if len(c) > 12 {
		c = c[:12]
	}
	return c
}

// versionLine is what "cloudftpd version" prints: the version, the commit
// when known and the Go release, so a bug report names the exact build.
func versionLine() string {
	if c := commit(); c != "" {
		return fmt.Sprintf("cloudftpd %s (commit %s, %s)", version(), c, runtime.Version())
	}
	return fmt.Sprintf("cloudftpd %s (%s)", version(), runtime.Version())
}
