package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/bytesize"
	"github.com/cloudftpd/cloudftpd/internal/state"
)

const userUsage = `Usage:
  cloudftpd user add NAME [--home DIR] [--perm PERMS] [--password-stdin] [LIMITS]
  cloudftpd user set NAME LIMITS
  cloudftpd user passwd NAME [--password-stdin]
  cloudftpd user del NAME
  cloudftpd user list               (with quota usage: see "cloudftpd quota help")

Flags (before or after NAME):
  --users FILE      the users file; default: auth.users_file of the config,
                    else users.toml in the working directory
  --config FILE     config whose user store to edit: its auth.users_file, or
                    its database with auth.store = "postgres" (default
                    cloudftpd.toml when it exists)
  --home DIR        home relative to storage.root (default: the user name)
  --perm PERMS      all, read, dropbox, or a comma-separated list of list,
                    download, upload, overwrite, delete, rename, mkdir, chmod
                    (default all)
  --password-stdin  read the password from the first line of standard input
                    instead of prompting on the terminal

LIMITS (README "Per-user access"; a flag not given leaves its key alone):
  --allowed-networks LIST  comma-separated networks (203.0.113.0/24) or
                           addresses the user may log in from; "" clears
  --denied-networks LIST   networks the user may not log in from; "" clears
  --expires DATE           2027-06-30 (refused from the start of that day,
                           server time), 2027-06-30T18:00:00Z, or never
  --max-sessions N         concurrent sessions; 0 is no limit
  --disable, --enable      refuse every login, or undo that
  --allowed-patterns LIST  file names the user may create, e.g. "*.csv,*.txt"
  --denied-patterns LIST   file names the user may not create, e.g. "*.exe"
  --retention AGE          delete files older than AGE (30d, 12h); 0 keeps
  --dir PATH               make --allowed-patterns, --denied-patterns and
                           --retention edit the [[user.dir]] rule of PATH
                           (created when missing, dropped when emptied)
  --remove-dir             with --dir: remove that directory's rule
  --quota-bytes SIZE       bytes stored at most (10GiB); 0 is no bound
  --quota-files N          files stored at most; 0 is no bound
  --max-file-size SIZE     largest upload (2GiB); 0 is no bound
  --upload-rate SIZE       upload bytes per second (5MiB); 0 is no bound
  --download-rate SIZE     download bytes per second; 0 is no bound

A running server reads the users file at start-up and on SIGHUP; with
auth.store = "postgres" every node sees an edit within seconds.
`

// usageError is a mistake in the command line: exit status 2 and the usage
// text, as opposed to a failure doing the work (status 1).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// userFlags are the flags of every user subcommand; each subcommand
// registers the ones it accepts.
type userFlags struct {
	users, config string
	home, perm    string
	passwordStdin bool
	limits        limitFlags
}

// userCommand is one `cloudftpd user` subcommand.
type userCommand struct {
	nargs int // positional arguments: 1 (NAME) or 0
	flags func(fs *flag.FlagSet, f *userFlags)
	run   func(c *userCtx, name string) error
}

// userCtx is what a subcommand works with.
type userCtx struct {
	flags          userFlags
	set            map[string]bool // the flags given
	store          userStore
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
}

func commonFlags(fs *flag.FlagSet, f *userFlags) {
	fs.StringVar(&f.users, "users", "", "users file")
	fs.StringVar(&f.config, "config", "", "config file naming the users file")
}

var userCommands = map[string]userCommand{
	"add": {
		nargs: 1,
		flags: func(fs *flag.FlagSet, f *userFlags) {
			commonFlags(fs, f)
			fs.StringVar(&f.home, "home", "", "home relative to storage.root")
			fs.StringVar(&f.perm, "perm", "all", "permissions")
			fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from standard input")
			registerLimitFlags(fs, &f.limits)
		},
		run: userAdd,
	},
	"set": {
		nargs: 1,
		flags: func(fs *flag.FlagSet, f *userFlags) {
			commonFlags(fs, f)
			registerLimitFlags(fs, &f.limits)
		},
		run: userSet,
	},
	"passwd": {
		nargs: 1,
		flags: func(fs *flag.FlagSet, f *userFlags) {
			commonFlags(fs, f)
			fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from standard input")
		},
		run: userPasswd,
	},
	"del":  {nargs: 1, flags: commonFlags, run: userDel},
	"list": {nargs: 0, flags: commonFlags, run: userList},
}

// runUser implements `cloudftpd user add|set|passwd|del|list`. args excludes "user".
func runUser(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return 2
	}
	sub := args[0]
	switch sub {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, userUsage)
		return 0
	}
	cmd, ok := userCommands[sub]
	if !ok {
		fmt.Fprintf(stderr, "cloudftpd user: unknown command %q\n\n%s", sub, userUsage)
		return 2
	}

	c := &userCtx{stdin: stdin, stdout: stdout, stderr: stderr, set: map[string]bool{}}
	set := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() { fmt.Fprint(stderr, userUsage) }
	cmd.flags(set, &c.flags)
	pos, err := parseInterspersed(set, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // the flag package has printed the error and the usage
	}
	set.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	if len(pos) != cmd.nargs {
		want := "NAME"
		if cmd.nargs == 0 {
			want = "no arguments"
		}
		fmt.Fprintf(stderr, "cloudftpd user %s: want %s, got %q\n\n%s", sub, want, pos, userUsage)
		return 2
	}
	name := ""
	if cmd.nargs == 1 {
		name = pos[0]
	}

	c.ctx = context.Background()
	c.store, err = openUserStore(c.flags.users, c.flags.config, stderr)
	if err == nil {
		err = cmd.run(c, name)
		c.store.Close()
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "cloudftpd user %s: %v\n\n%s", sub, err, userUsage)
		return 2
	default:
		fmt.Fprintf(stderr, "cloudftpd user %s: %v\n", sub, err)
		return 1
	}
}

// parseInterspersed parses flags anywhere among the positional arguments,
// so both `user add alice --home x` and `user add --home x alice` work; the
// flag package alone stops at the first positional. After "--" everything
// is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func userAdd(c *userCtx, name string) error {
	var list []string
	for _, s := range strings.Split(c.flags.perm, ",") {
		list = append(list, strings.TrimSpace(s))
	}
	perms, err := auth.ParsePermissions(list)
	if err != nil {
		return usageError{"--perm: " + err.Error()}
	}
	if perms == 0 {
		return usageError{"--perm: at least one permission is required"}
	}
	limits, err := limitEdit(&c.flags.limits, c.set)
	if err != nil {
		return err
	}
	// Check before asking for a password that would be thrown away.
	if ok, err := c.store.exists(c.ctx, name); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("user %q already exists in %s (use \"cloudftpd user passwd\" to change the password)", name, c.store.where())
	}
	hash, err := c.newPasswordHash()
	if err != nil {
		return err
	}
	e := auth.UserEntry{Name: name, PasswordHash: hash, Home: c.flags.home, Permissions: perms.Strings()}
	if limits != nil {
		limits(&e.LimitsEntry)
	}
	if err := c.store.add(c.ctx, e); err != nil {
		return err
	}
	home := c.flags.home
	if home == "" {
		home = name
	}
	fmt.Fprintf(c.stdout, "added user %s (home %s, permissions %s)\n", name, home, strings.Join(perms.Strings(), ","))
	if limits != nil {
		fmt.Fprintf(c.stdout, "user %s: %s\n", name, describeAccess(e.LimitsEntry, time.Now()))
	}
	return nil
}

// mustExist fails unless the store has a user called name.
func (c *userCtx) mustExist(name string) error {
	e, err := c.store.get(c.ctx, name)
	if err != nil {
		return err
	}
	if e == nil {
		return fmt.Errorf("no user %q in %s", name, c.store.where())
	}
	return nil
}

func userPasswd(c *userCtx, name string) error {
	if err := c.mustExist(name); err != nil {
		return err
	}
	hash, err := c.newPasswordHash()
	if err != nil {
		return err
	}
	if err := c.store.setPassword(c.ctx, name, hash); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "changed password of user %s\n", name)
	return nil
}

func userDel(c *userCtx, name string) error {
	if err := c.mustExist(name); err != nil {
		return err
	}
	if err := c.store.del(c.ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "deleted user %s\n", name)
	return nil
}

func userList(c *userCtx, _ string) error {
	users, err := c.store.list(c.ctx)
	if err != nil {
		return err
	}
	usage, err := storedUsage(c.ctx, c.flags.config)
	if err != nil {
		return fmt.Errorf("quota usage: %w", err)
	}
	// The quota columns appear once a user has a quota or usage is
	// recorded: a server without quotas lists as it always did.
	quotas := len(usage) > 0
	for _, e := range users {
		quotas = quotas || e.QuotaBytes > 0 || e.QuotaFiles > 0
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	now := time.Now()
	if quotas {
		fmt.Fprintln(tw, "NAME\tHOME\tPERMISSIONS\tSTATUS\tUSED\tFILES")
	} else {
		fmt.Fprintln(tw, "NAME\tHOME\tPERMISSIONS\tSTATUS")
	}
	for _, e := range users {
		home := e.Home
		if home == "" {
			home = e.Name
		}
		perms := strings.Join(e.Permissions, ",")
		// Show the canonical form, so equivalent spellings look alike.
		if p, err := auth.ParsePermissions(e.Permissions); err == nil {
			perms = strings.Join(p.Strings(), ",")
		}
		status := accessStatus(e.LimitsEntry, now)
		if quotas {
			bytes, files := usageColumns(usage, e)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, home, perms, status, bytes, files)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, home, perms, status)
	}
	return tw.Flush()
}

// usageColumns are the USED and FILES of a user: "1.2 GiB / 10 GiB" and
// "34 / 1000", "none" for no quota, "-" for usage never recorded (it is
// scanned at the user's first upload or deletion), "(stale)" when a
// crash left it to be scanned again.
func usageColumns(usage map[string]state.Usage, e auth.UserEntry) (string, string) {
	u, ok := usage[e.Name]
	used, files := "-", "-"
	if ok {
		used, files = bytesize.Human(u.Bytes), strconv.FormatInt(u.Files, 10)
		if u.Stale {
			used, files = used+" (stale)", files+" (stale)"
		}
	}
	return used + " / " + limitText(int64(e.QuotaBytes), true), files + " / " + limitText(e.QuotaFiles, false)
}

// newPasswordHash reads a new password and hashes it.
func (c *userCtx) newPasswordHash() (string, error) {
	pw, err := c.readPassword()
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	return auth.HashPassword(pw)
}

// readPassword reads a new password for a user: see readSecret.
func (c *userCtx) readPassword() (string, error) {
	return readSecret(c.stdin, c.stderr, c.flags.passwordStdin, true)
}

// readSecret takes the first line of stdin when fromStdin is set (for
// scripts: `echo "$PW" | cloudftpd user add bob --password-stdin`), or
// prompts without echo on a terminal, twice when confirm is set. It never
// falls back to reading a non-terminal stdin without the flag, which would
// hang or silently take whatever a pipe holds.
func readSecret(stdin io.Reader, stderr io.Writer, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && (!errors.Is(err, io.EOF) || line == "") {
			if errors.Is(err, io.EOF) {
				return "", errors.New("--password-stdin: standard input is empty")
			}
			return "", fmt.Errorf("--password-stdin: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		return strings.TrimSuffix(line, "\r"), nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("standard input is not a terminal: use --password-stdin to read the password from it")
	}
	fd := int(f.Fd())
	fmt.Fprint(stderr, "Password: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	if !confirm {
		return string(pw), nil
	}
	fmt.Fprint(stderr, "Repeat password: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("reading password: %w", err)
	}
	if string(pw) != string(again) {
		return "", errors.New("passwords do not match")
	}
	return string(pw), nil
}
