package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/control"
)

const sessionsUsage = `Usage:
  cloudftpd sessions [--kill ID]
  cloudftpd reload

"sessions" lists a running server's FTP sessions (user, client, listener,
TLS, last command, idle time, bytes moved, the transfer in progress);
--kill ID ends one at once, aborting its transfer. "reload" makes the
server re-read its config file, as SIGHUP does, and says whether it took.

Flags:
  --config FILE    the server's config, to find its control socket
                   (default ./cloudftpd.toml when it exists)
  --socket PATH    the control socket itself (default: [control] socket
                   of the config, else ` + control.DefaultSocket + `)

Both talk to the server through its control socket, whose file
permissions are the access control; the same calls are in the HTTP
operations API (README "Operations API").
`

// sessionRow is what "sessions" reads of GET /v1/sessions
// (internal/api's Session schema).
type sessionRow struct {
	ID              string    `json:"id"`
	User            string    `json:"user"`
	Client          string    `json:"client"`
	Listener        string    `json:"listener"`
	TLS             bool      `json:"tls"`
	Command         string    `json:"command"`
	Started         time.Time `json:"started"`
	IdleSeconds     float64   `json:"idle_seconds"`
	BytesUploaded   int64     `json:"bytes_uploaded"`
	BytesDownloaded int64     `json:"bytes_downloaded"`
	Transfer        *struct {
		Direction string   `json:"direction"`
		Path      string   `json:"path"`
		Bytes     int64    `json:"bytes"`
		Size      *int64   `json:"size"`
		Rate      float64  `json:"rate_bytes_per_second"`
		ETA       *float64 `json:"eta_seconds"`
	} `json:"transfer"`
}

// runSessions is "cloudftpd sessions" and, with reload set, "cloudftpd
// reload".
func runSessions(args []string, reload bool, stdout, stderr io.Writer) int {
	name := "sessions"
	if reload {
		name = "reload"
	}
	var f banFlags
	var kill string
	set := flag.NewFlagSet(name, flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() { fmt.Fprint(stderr, sessionsUsage) }
	set.StringVar(&f.socket, "socket", "", "control socket")
	set.StringVar(&f.config, "config", "", "config file")
	if !reload {
		set.StringVar(&kill, "kill", "", "session id to end")
	}
	if err := set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if set.NArg() > 0 {
		fmt.Fprintf(stderr, "cloudftpd %s: unexpected argument %q\n\n%s", name, set.Arg(0), sessionsUsage)
		return 2
	}
	socket, err := f.socketPath()
	if err != nil {
		fmt.Fprintf(stderr, "cloudftpd %s: %v\n", name, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), banTimeout)
	defer cancel()
	c := &control.Client{SocketPath: socket}
	switch {
	case reload:
		err = reloadServer(ctx, c, stdout)
	case kill != "":
		err = killSession(ctx, c, kill, stdout)
	default:
		err = listSessions(ctx, c, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cloudftpd %s: %v\n", name, err)
		return 1
	}
	return 0
}

func listSessions(ctx context.Context, c *control.Client, stdout io.Writer) error {
	var out struct {
		Sessions []sessionRow `json:"sessions"`
	}
	if err := c.Call(ctx, http.MethodGet, "/v1/sessions", nil, http.StatusOK, &out); err != nil {
		return err
	}
	if len(out.Sessions) == 0 {
		fmt.Fprintln(stdout, "no sessions")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tCLIENT\tLISTENER\tTLS\tCOMMAND\tIDLE\tUP\tDOWN\tTRANSFER")
	for _, s := range out.Sessions {
		user := s.User
		if user == "" {
			user = "-"
		}
		tls := "no"
		if s.TLS {
			tls = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, user, s.Client, s.Listener, tls, s.Command,
			(time.Duration(s.IdleSeconds) * time.Second).String(), s.BytesUploaded, s.BytesDownloaded, transferText(s))
	}
	return tw.Flush()
}

// transferText is a session's running transfer in one column.
func transferText(s sessionRow) string {
	x := s.Transfer
	if x == nil {
		return "-"
	}
	t := fmt.Sprintf("%s %s %d", x.Direction, x.Path, x.Bytes)
	if x.Size != nil {
		t += fmt.Sprintf("/%d", *x.Size)
	}
	t += fmt.Sprintf(" bytes, %.0f B/s", x.Rate)
	if x.ETA != nil {
		t += fmt.Sprintf(", %s left", (time.Duration(*x.ETA) * time.Second).String())
	}
	return t
}

func killSession(ctx context.Context, c *control.Client, id string, stdout io.Writer) error {
	var s sessionRow
	if err := c.Call(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, http.StatusOK, &s); err != nil {
		return err
	}
	user := s.User
	if user == "" {
		user = "(not logged in)"
	}
	fmt.Fprintf(stdout, "session %s of %s from %s ended\n", s.ID, user, s.Client)
	return nil
}

func reloadServer(ctx context.Context, c *control.Client, stdout io.Writer) error {
	var out struct {
		File string `json:"file"`
	}
	if err := c.Call(ctx, http.MethodPost, "/v1/reload", nil, http.StatusOK, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reloaded %s\n", out.File)
	return nil
}
