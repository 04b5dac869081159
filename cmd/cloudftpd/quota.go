package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/cloudftpd/cloudftpd/internal/bytesize"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgquota"
	"github.com/cloudftpd/cloudftpd/internal/server"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

const quotaUsage = `Usage:
  cloudftpd quota scan USER [--config FILE] [--socket PATH]

Walks USER's home (local disk or S3) and makes what it holds (bytes and
files) the user's quota usage.

With the server running, the server does the scan and uses the result at
once (through its control socket). With the server stopped, this command
scans and writes the result to the state store (server.state_dir), where
the next start finds it. With auth.store = "postgres" the result goes to
the database, where every node uses it at once.

Flags (before or after USER):
  --config FILE   the server's config (default ./cloudftpd.toml)
  --socket PATH   the control socket (default: [control] socket of the config)

"cloudftpd user list" shows every user's usage.
`

// runQuota implements `cloudftpd quota scan`. args excludes "quota".
func runQuota(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, quotaUsage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, quotaUsage)
		return 0
	case "scan":
	default:
		fmt.Fprintf(stderr, "cloudftpd quota: unknown command %q\n\n%s", args[0], quotaUsage)
		return 2
	}
	var cfgFlag, socketFlag string
	set := flag.NewFlagSet("quota scan", flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() { fmt.Fprint(stderr, quotaUsage) }
	set.StringVar(&cfgFlag, "config", "", "config file")
	set.StringVar(&socketFlag, "socket", "", "control socket")
	pos, err := parseInterspersed(set, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "cloudftpd quota scan: want one USER, got %q\n\n%s", pos, quotaUsage)
		return 2
	}
	if err := quotaScan(ctx, cfgFlag, socketFlag, pos[0], stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "cloudftpd quota scan:", err)
		return 1
	}
	return 0
}

func quotaScan(ctx context.Context, cfgFlag, socketFlag, user string, stdout, stderr io.Writer) error {
	path := configPath(cfgFlag)
	if path == "" {
		return errors.New("no config: give the server's config with --config (the scan needs its storage and state directory)")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	socket := socketFlag
	if socket == "" {
		socket = cfg.ControlSocket()
	}
	if socket != "" {
		c := &control.Client{SocketPath: socket}
		u, err := c.ScanQuota(ctx, user)
		if err == nil {
			fmt.Fprintf(stdout, "%s; the running server uses it now\n", describeUsage(u))
			return nil
		}
		if !serverDown(err) {
			return err
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	u, err := server.ScanQuotaOffline(ctx, cfg, user, logger)
	if err != nil {
		return err
	}
	if cfg.Auth.Store == config.StorePostgres {
		fmt.Fprintf(stdout, "%s; written to the database, for every node (no server answered on %s)\n",
			describeUsage(u), socketOrNone(socket))
		return nil
	}
	fmt.Fprintf(stdout, "%s; written to %s for the next start (no server answered on %s)\n",
		describeUsage(u), filepath.Join(cfg.Events.StateDir, state.FileName), socketOrNone(socket))
	return nil
}

// serverDown reports whether a control call failed because no server
// listens (no socket file, or nobody accepting on it), as opposed to a
// server refusing or failing: only then may the command write the state
// store itself.
func serverDown(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

func socketOrNone(s string) string {
	if s == "" {
		return "a control socket ([control] socket = \"off\")"
	}
	return s
}

func describeUsage(u control.QuotaUsage) string {
	return fmt.Sprintf("%s: %s in %d files (quota: %s, %s)", u.User, bytesize.Human(u.Bytes), u.Files,
		limitText(u.QuotaBytes, true), limitText(u.QuotaFiles, false)+" files")
}

func limitText(n int64, bytes bool) string {
	switch {
	case n <= 0:
		return "none"
	case bytes:
		return bytesize.Human(n)
	}
	return strconv.FormatInt(n, 10)
}

// storedUsage reads the quota usage recorded in the state store of the
// config (cfgFlag, or ./cloudftpd.toml), by user; nil when there is no
// config or no store yet. The figures are those the server last wrote
// (about a second behind a running server). With auth.store =
// "postgres" they are the database's, which every node keeps current.
func storedUsage(ctx context.Context, cfgFlag string) (map[string]state.Usage, error) {
	path := configPath(cfgFlag)
	if path == "" {
		return nil, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	var rows []state.Usage
	if cfg.Auth.Store == config.StorePostgres {
		if rows, err = databaseUsage(ctx, cfg); err != nil {
			return nil, err
		}
		return byUser(rows), nil
	}
	dir := cfg.Events.StateDir
	if dir == "" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(dir, state.FileName)); err != nil {
		return nil, nil // no server has run yet: nothing recorded
	}
	st, err := state.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if rows, err = st.AllUsage(ctx); err != nil {
		return nil, err
	}
	return byUser(rows), nil
}

func byUser(rows []state.Usage) map[string]state.Usage {
	out := make(map[string]state.Usage, len(rows))
	for _, r := range rows {
		out[r.User] = r
	}
	return out
}

// databaseUsage reads the usage of auth.store = "postgres".
func databaseUsage(ctx context.Context, cfg *config.Config) ([]state.Usage, error) {
	pool, err := pgdb.Open(pgdb.OptionsFrom(cfg))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return pgquota.New(pool, pgquota.Options{}).AllUsage(ctx)
}
