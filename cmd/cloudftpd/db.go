package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
)

const dbUsage = `Usage:
  cloudftpd db migrate [--config FILE]

Creates or migrates the schema of the PostgreSQL database of the config's
[auth.postgres] (auth.store = "postgres") to this version of cloudftpd.
Safe to run from several nodes at once: one migrates, the others wait for
it and find nothing left to do. Running it again changes nothing.
`

// runDB implements `cloudftpd db migrate`. args excludes "db".
func runDB(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dbUsage)
		return 2
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, dbUsage)
		return 0
	case "migrate":
	default:
		fmt.Fprintf(stderr, "cloudftpd db: unknown command %q\n\n%s", args[0], dbUsage)
		return 2
	}
	set := flag.NewFlagSet("db migrate", flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() { fmt.Fprint(stderr, dbUsage) }
	configFlag := set.String("config", "", "config file")
	if err := set.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if set.NArg() > 0 {
		fmt.Fprintf(stderr, "cloudftpd db migrate: unexpected arguments %q\n\n%s", set.Args(), dbUsage)
		return 2
	}
	if err := dbMigrate(ctx, *configFlag, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "cloudftpd db migrate: %v\n", err)
		return 1
	}
	return 0
}

func dbMigrate(ctx context.Context, configFlag string, stdout, stderr io.Writer) error {
	path := configPath(configFlag)
	if path == "" {
		return errors.New("no config (give --config FILE): the database is the config's [auth.postgres]")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if cfg.Auth.Store != config.StorePostgres {
		return fmt.Errorf("%s does not set auth.store = \"postgres\": there is no database to migrate", path)
	}
	pool, err := pgdb.Open(pgdb.OptionsFrom(cfg))
	if err != nil {
		return err
	}
	defer pool.Close()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	applied, err := pgdb.Migrate(ctx, pool, logger)
	if err != nil {
		return err
	}
	for _, m := range applied {
		fmt.Fprintf(stdout, "applied %s\n", m)
	}
	cur, _, err := pgdb.SchemaVersion(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(stdout, "schema up to date (version %d)\n", cur)
	} else {
		fmt.Fprintf(stdout, "schema at version %d\n", cur)
	}
	return nil
}
