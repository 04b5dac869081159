package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cloudftpd/cloudftpd/internal/config"
)

// fileFromFlagOrConfig is the file a command works on: file (given with
// --FLAG) when set, else the one the config names (--config or
// ./cloudftpd.toml), under key, read with fromConfig. "admin" and "api
// token" find their files this way, so they say the same when neither is
// there.
func fileFromFlagOrConfig(file, cfgFlag, flagName, key string, fromConfig func(*config.Config) string) (string, error) {
	if file != "" {
		return file, nil
	}
	path := configPath(cfgFlag)
	if path == "" {
		return "", fmt.Errorf("no config (./cloudftpd.toml or --config) to find %s in; or give --%s", key, flagName)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return "", err
	}
	return fromConfig(cfg), nil
}

// entryFile is a file of named entries: api.AdminsFile, api.TokensFile.
type entryFile interface {
	Delete(name string) error
	Save(path string) error
}

// deleteEntry removes name from the file at path (which must exist) and
// says so on w as `KIND "NAME" deleted`.
func deleteEntry[F entryFile](w io.Writer, kind string, load func(string) (F, error), path, name string) error {
	f, err := load(path)
	if err != nil {
		return err
	}
	if err := f.Delete(name); err != nil {
		return err
	}
	if err := f.Save(path); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s %q deleted\n", kind, name)
	return nil
}

// printEntries writes rows as a table under header, or "no KINDS in PATH"
// when there are none.
func printEntries(w io.Writer, kinds, path string, header []string, rows [][]string) {
	if len(rows) == 0 {
		fmt.Fprintf(w, "no %s in %s\n", kinds, path)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}
