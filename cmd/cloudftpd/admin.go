package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

const adminUsage = `Usage:
  cloudftpd admin add NAME [--password-stdin]
  cloudftpd admin passwd NAME [--password-stdin]
  cloudftpd admin del NAME
  cloudftpd admin list

Console accounts of the operations API (README "Operations API"): they log
in to the web console with their password (argon2id-hashed) and have the
admin scope. A running server sees the change at the next request;
deleting an account ends its console sessions.

Flags (before or after NAME):
  --config FILE        the server's config, to find api.admins_file
                       (default ./cloudftpd.toml when it exists)
  --admins-file FILE   the admins file itself
  --password-stdin     read the password from the first line of standard
                       input instead of prompting on the terminal
`

// runAdmin is "cloudftpd admin".
func runAdmin(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	verb := args[0]
	var fromStdin bool
	cmd := entryCommand{name: "admin", prefix: "cloudftpd admin:", usage: adminUsage,
		verbs:    map[string]int{"add": 1, "passwd": 1, "del": 1, "list": 0},
		fileFlag: "admins-file", key: "api.admins_file", fromConfig: (*config.Config).APIAdminsFile}
	pos, path, code := cmd.parse(verb, args[1:], stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&fromStdin, "password-stdin", false, "read the password from standard input")
	})
	if code >= 0 {
		return code
	}
	fail := func(err error) int { return cmd.fail(stderr, err) }
	var err error
	switch verb {
	case "add", "passwd":
		var f *api.AdminsFile
		if verb == "add" {
			f, err = api.LoadAdminsOrEmpty(path)
		} else {
			f, err = api.LoadAdmins(path)
		}
		if err != nil {
			return fail(err)
		}
		if verb == "passwd" && f.Find(pos[0]) == nil {
			return fail(fmt.Errorf("no admin %q in %s", pos[0], path))
		}
		if verb == "add" && f.Find(pos[0]) != nil {
			return fail(fmt.Errorf("admin %q exists in %s (use passwd to change the password)", pos[0], path))
		}
		pw, err := readSecret(stdin, stderr, fromStdin, true)
		if err != nil {
			return fail(err)
		}
		if verb == "add" {
			err = f.Add(pos[0], pw, time.Now())
		} else {
			err = f.SetPassword(pos[0], pw)
		}
		if err != nil {
			return fail(err)
		}
		if err := f.Save(path); err != nil {
			return fail(err)
		}
		what := "added to"
		if verb == "passwd" {
			what = "has a new password in"
		}
		fmt.Fprintf(stdout, "admin %q %s %s\n", pos[0], what, path)
		return 0
	case "del":
		if err := deleteEntry(stdout, "admin", api.LoadAdmins, path, pos[0]); err != nil {
			return fail(err)
		}
		return 0
	default: // list
		f, err := api.LoadAdminsOrEmpty(path)
		if err != nil {
			return fail(err)
		}
		var rows [][]string
		for _, a := range f.Admins {
			rows = append(rows, []string{a.Name, a.Created.Format(time.RFC3339)})
		}
		printEntries(stdout, "admins", path, []string{"NAME", "CREATED"}, rows)
		return 0
	}
}
