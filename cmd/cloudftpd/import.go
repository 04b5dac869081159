package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cloudftpd/cloudftpd/internal/vsftpdconf"
	"github.com/cloudftpd/cloudftpd/internal/vsftpdimport"
)

const importUsage = `Usage: cloudftpd import vsftpd [--merge] [--discover] [--root DIR] [--force] --out DIR FILE...

Writes DIR/cloudftpd.toml and DIR/users.toml from one or more vsftpd.conf
files (one per vsftpd process) and prints what became of each option. Several
files that differ in listen_address and pasv_address become one process: one
listener per file, or with --merge one listener with passive rules by client
network. --discover writes "aws" (the Elastic IP from EC2 metadata) instead of
a literal pasv_address. --root reads the files the configs name
(user_config_dir, userlist_file, /etc/passwd) below DIR. Nothing is written
when a config has an error (an unknown option, a bad value).
`

func runImport(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "vsftpd" {
		fmt.Fprint(stderr, importUsage)
		return 2
	}
	fs := flag.NewFlagSet("import vsftpd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, importUsage) }
	var opt vsftpdimport.Options
	fs.BoolVar(&opt.Merge, "merge", false, "one listener with passive rules by client network")
	fs.BoolVar(&opt.Discover, "discover", false, "\"aws\" instead of a literal Elastic IP")
	fs.StringVar(&opt.Root, "root", "/", "read the files the configs name below this directory")
	out := fs.String("out", "", "directory to write cloudftpd.toml and users.toml into (required)")
	force := fs.Bool("force", false, "overwrite existing files")
	files, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *out == "" || len(files) == 0 {
		fmt.Fprint(stderr, importUsage)
		return 2
	}
	var parsed []*vsftpdconf.File
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
		parsed = append(parsed, vsftpdconf.Parse(name, data))
	}
	res, err := vsftpdimport.Import(parsed, opt)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	if err := res.Report.Write(stdout, ""); err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	if n := res.Report.Errors(); n > 0 {
		fmt.Fprintf(stderr, "cloudftpd: %d error(s) in the vsftpd config (vsftpd would refuse them too); nothing written\n", n)
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	cfgPath := filepath.Join(*out, "cloudftpd.toml")
	for _, f := range []struct {
		path string
		body []byte
		mode os.FileMode
	}{
		{cfgPath, res.Config, 0o644},
		{filepath.Join(*out, "users.toml"), res.Users, 0o600},
	} {
		if err := writeNew(f.path, f.body, f.mode, *force); err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
		fmt.Fprintln(stdout, "wrote", f.path)
	}
	fmt.Fprintf(stdout, "Next: set each user's password (cloudftpd user passwd NAME --config %s) and remove its \"disabled = true\",\nthen cloudftpd check-config --config %s and cloudftpd firewall --config %s --format aws-cli\n", cfgPath, cfgPath, cfgPath)
	return 0
}

// writeNew writes a file that must not exist yet, unless force.
func writeNew(path string, body []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	fh, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; use --force to overwrite", path)
	}
	if err != nil {
		return err
	}
	_, err = fh.Write(body)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}
