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
	"runtime/debug"
	"syscall"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// defaultConfigFile is read by serve and check-config when it exists and
// no --config is given.
const defaultConfigFile = "cloudftpd.toml"

// loadConfig returns the config named by path, or cloudftpd.toml in the
// working directory, or nil (meaning the built-in demo) when neither exists.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		if _, err := os.Stat(defaultConfigFile); err != nil {
			return nil, nil
		}
		path = defaultConfigFile
	}
	return config.Load(path)
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runServe serves until ctx ends (SIGINT/SIGTERM in main), then shuts
// down gracefully.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: ./cloudftpd.toml if present, else built-in demo defaults)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	var opts server.Options
	demoPassword := ""
	if cfg == nil {
		cfg = config.Default()
		demoPassword, opts.Auth, err = demoAuth()
		if err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
	}
	logger := newLogger(cfg, stderr)
	opts.Logger = logger
	srv, err := server.New(cfg, opts)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	if err := srv.Start(); err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	if demoPassword != "" {
		printDemo(stdout, cfg, srv.Addrs()[0], demoPassword)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := srv.ReloadUsers(); err != nil {
				logger.Error("SIGHUP: users file not reloaded; keeping the old users", "err", err)
			}
			if err := srv.ReloadCertificates(); err != nil {
				logger.Error("SIGHUP: certificate not reloaded; keeping the old one", "err", err)
			}
		}
	}()
	<-ctx.Done()
	logger.Info("shutting down", "grace", cfg.Server.ShutdownGrace.D())
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace.D())
	defer cancel()
	if err := srv.Shutdown(graceCtx); err != nil {
		logger.Warn("transfers cut short by shutdown", "err", err)
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

// demoAuth makes the built-in "demo" user with a random password.
func demoAuth() (string, auth.Authenticator, error) {
	pw := rand.Text()[:16]
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return "", nil, err
	}
	all, err := auth.ParsePermissions([]string{"all"})
	if err != nil {
		return "", nil, err
	}
	uf := &auth.UsersFile{}
	if err := uf.Add("demo", hash, "demo", all); err != nil {
		return "", nil, err
	}
	return pw, auth.NewFileAuthenticator(uf, auth.Options{}), nil
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

func runCheckConfig(args []string, stdout, stderr io.Writer) int {
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
	for i, l := range cfg.Listeners {
		if l.TLS == config.TLSOff {
			continue
		}
		if _, err := certs.Load(cfg.Path(l.TLSCert), cfg.Path(l.TLSKey)); err != nil {
			fmt.Fprintf(stderr, "cloudftpd: listener[%d]: %v\n", i, err)
			return 1
		}
	}
	users := 0
	if cfg.Auth.UsersFile != "" {
		uf, err := auth.LoadUsersFile(cfg.Path(cfg.Auth.UsersFile))
		if err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
		users = len(uf.Users())
	} else if !cfg.Auth.Anonymous {
		fmt.Fprintln(stderr, "cloudftpd: config: auth.users_file: required unless auth.anonymous = true")
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK (%d listener(s), %d user(s), storage %s)\n", *cfgPath, len(cfg.Listeners), users, cfg.Storage.Backend)
	return 0
}

// buildVersion is set with -ldflags "-X main.buildVersion=v1.2.3".
var buildVersion = ""

func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
