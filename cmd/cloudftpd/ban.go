package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/defender"
)

const banUsage = `Usage:
  cloudftpd ban list
  cloudftpd ban add ADDR|CIDR [--for DURATION] [--reason TEXT]
  cloudftpd ban remove ADDR|CIDR

Flags (before or after the address):
  --config FILE    the server's config, to find its control socket
                   (default ./cloudftpd.toml when it exists)
  --socket PATH    the control socket itself (default: [control] socket
                   of the config, else ` + control.DefaultSocket + `)
  --db             no server: the bans the nodes share in the config's
                   database (auth.store = "postgres"), as a node would
                   change them; the nodes follow within a second
  --for DURATION   how long: 90m, 24h, forever; default: the server's
                   ban_time, doubled for each recent ban of the same address
  --reason TEXT    kept with the ban and shown by "ban list"

An IPv6 address is banned by its /64, as the server's own bans are.
"remove" also forgets the address's earlier bans, so its next ban is a
first one again. Scripts can read the JSON API on the same socket:
  curl --unix-socket ` + control.DefaultSocket + ` http://cloudftpd/v1/bans
`

// banTimeout bounds one call to the server: a hung server must not hang
// the command.
const banTimeout = 10 * time.Second

type banFlags struct {
	config, socket, dur, reason string
	db                          bool
}

// socketPath is --socket, else the control socket of --config (or of
// ./cloudftpd.toml), else the package default.
func (f banFlags) socketPath() (string, error) {
	if f.socket != "" {
		return f.socket, nil
	}
	if path := configPath(f.config); path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			return "", err
		}
		if p := cfg.ControlSocket(); p != "" {
			return p, nil
		}
		return "", fmt.Errorf("%s has no control socket ([control] socket = \"off\")", cfg.File)
	}
	return control.DefaultSocket, nil
}

// client is what the flags name: the database with --db, else the
// control socket.
func (f banFlags) client() (banClient, error) {
	if f.db {
		if f.socket != "" {
			return nil, usageError{errDBAndSocket.Error()}
		}
		return openDBBans(f.config)
	}
	socket, err := f.socketPath()
	if err != nil {
		return nil, err
	}
	return &control.Client{SocketPath: socket}, nil
}

// runBan implements `cloudftpd ban list|add|remove`. args excludes "ban".
func runBan(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, banUsage)
		return 2
	}
	sub := args[0]
	nargs := 1
	switch sub {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, banUsage)
		return 0
	case "list":
		nargs = 0
	case "add", "remove":
	default:
		fmt.Fprintf(stderr, "cloudftpd ban: unknown command %q\n\n%s", sub, banUsage)
		return 2
	}

	var f banFlags
	set := flag.NewFlagSet("ban "+sub, flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() { fmt.Fprint(stderr, banUsage) }
	set.StringVar(&f.socket, "socket", "", "control socket")
	set.StringVar(&f.config, "config", "", "config file")
	set.BoolVar(&f.db, "db", false, "the shared bans in the database")
	if sub == "add" {
		set.StringVar(&f.dur, "for", "", "duration")
		set.StringVar(&f.reason, "reason", "", "reason")
	}
	pos, err := parseInterspersed(set, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // the flag package has printed the error and the usage
	}
	if len(pos) != nargs {
		want := "one ADDR or CIDR"
		if nargs == 0 {
			want = "no arguments"
		}
		fmt.Fprintf(stderr, "cloudftpd ban %s: want %s, got %q\n\n%s", sub, want, pos, banUsage)
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), banTimeout)
	defer cancel()
	c, err := f.client()
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "cloudftpd ban %s: %v\n\n%s", sub, err, banUsage)
			return 2
		}
		fmt.Fprintln(stderr, "cloudftpd ban:", err)
		return 1
	}
	if db, ok := c.(*dbBans); ok {
		defer db.close()
	}
	switch sub {
	case "list":
		err = banList(ctx, c, stdout)
	case "add":
		err = banAdd(ctx, c, f, pos[0], stdout)
	case "remove":
		err = banRemove(ctx, c, pos[0], stdout)
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "cloudftpd ban %s: %v\n\n%s", sub, err, banUsage)
		return 2
	default:
		fmt.Fprintf(stderr, "cloudftpd ban %s: %v\n", sub, err)
		return 1
	}
}

// parseTarget reads ADDR|CIDR here, so a typo is a usage error without a
// round trip to the server.
func parseTarget(s string) (netip.Prefix, error) {
	p, err := defender.ParsePrefix(s)
	if err != nil {
		return p, usageError{strings.TrimPrefix(err.Error(), "defender: ")}
	}
	return p, nil
}

func banList(ctx context.Context, c banClient, stdout io.Writer) error {
	bans, err := c.ListBans(ctx)
	if err != nil {
		return err
	}
	if len(bans) == 0 {
		fmt.Fprintln(stdout, "no bans")
		return nil
	}
	now := time.Now()
	// Bans shared by several nodes (PostgreSQL) say which node made them.
	nodes := slices.ContainsFunc(bans, func(b defender.Ban) bool { return b.Node != "" })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if nodes {
		fmt.Fprintln(tw, "PREFIX\tUNTIL\tLEFT\tSTRIKES\tBY\tNODE\tREASON")
	} else {
		fmt.Fprintln(tw, "PREFIX\tUNTIL\tLEFT\tSTRIKES\tBY\tREASON")
	}
	for _, b := range bans {
		until, left := "-", "forever"
		if !b.Until.IsZero() {
			until = b.Until.UTC().Format(time.RFC3339)
			left = b.Until.Sub(now).Round(time.Second).String()
		}
		by := "defender"
		if b.Manual {
			by = "hand"
		}
		if nodes {
			node := b.Node
			if node == "" {
				node = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", b.Prefix, until, left, b.Strikes, by, node, b.Reason)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", b.Prefix, until, left, b.Strikes, by, b.Reason)
	}
	return tw.Flush()
}

func banAdd(ctx context.Context, c banClient, f banFlags, target string, stdout io.Writer) error {
	p, err := parseTarget(target)
	if err != nil {
		return err
	}
	d, err := control.ParseDuration(f.dur)
	if err != nil {
		return usageError{"--for: " + strings.TrimPrefix(err.Error(), "control: ")}
	}
	b, err := c.Ban(ctx, p, d, f.reason)
	if err != nil {
		return err
	}
	how := "until unbanned"
	if !b.Until.IsZero() {
		how = fmt.Sprintf("for %v (until %s)", b.Until.Sub(b.Since).Round(time.Second), b.Until.UTC().Format(time.RFC3339))
	}
	note := ""
	if p.Addr().Is6() && !strings.Contains(target, "/") {
		note = " (IPv6 addresses are banned by their /64)"
	}
	fmt.Fprintf(stdout, "banned %s%s %s\n", b.Prefix, note, how)
	return nil
}

func banRemove(ctx context.Context, c banClient, target string, stdout io.Writer) error {
	p, err := parseTarget(target)
	if err != nil {
		return err
	}
	if err := c.Unban(ctx, p); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "unbanned %s\n", p)
	return nil
}
