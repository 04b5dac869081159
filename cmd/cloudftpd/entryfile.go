package main

import (
	"flag"
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

// entryCommand is the front "admin" and "api token" share: flags after
// the verb (--config and --FILE, to find the file, and the command's own),
// the verb's number of names, and the file.
type entryCommand struct {
	name       string         // "admin", "api token": the flag set's name
	prefix     string         // "cloudftpd admin:": what failures start with
	usage      string         // printed (exit 2) on a bad verb or count of names
	verbs      map[string]int // the verbs and how many names each takes
	fileFlag   string         // "admins-file"
	key        string         // "api.admins_file", for the message without a config
	fromConfig func(*config.Config) string
}

// parse reads args (after the verb); define adds the command's own flags.
// On a mistake it has said so on stderr and code is the exit code (2 for
// usage, 1 for no file); else code is -1.
func (c entryCommand) parse(verb string, args []string, stderr io.Writer, define func(*flag.FlagSet)) (pos []string, path string, code int) {
	fs := flag.NewFlagSet(c.name+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFlag := fs.String("config", "", "config file")
	fileFlag := fs.String(c.fileFlag, "", strings.TrimSuffix(c.fileFlag, "-file")+" file")
	if define != nil {
		define(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, "", 2
	}
	if want, known := c.verbs[verb]; !known || want != len(pos) {
		fmt.Fprint(stderr, c.usage)
		return nil, "", 2
	}
	path, err = fileFromFlagOrConfig(*fileFlag, *cfgFlag, c.fileFlag, c.key, c.fromConfig)
	if err != nil {
		return nil, "", c.fail(stderr, err)
	}
	return pos, path, -1
}

// fail reports err on stderr and is the exit code, 1.
func (c entryCommand) fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, c.prefix, err)
	return 1
}
