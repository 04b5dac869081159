package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/cloudftpd/cloudftpd/internal/probe"
)

const probeUsage = `Usage: cloudftpd probe [flags] HOST[:PORT] | ftp://[USER@]HOST[:PORT] | ftpes://... | ftps://...

Connects to an FTP server as a client would, from where you run it, and
explains what fails: the control connection, the greeting, TLS, the login,
and a listing over PASV (using the address in the reply, as many clients
do) and over EPSV; with --upload, an upload too. ftpes:// is explicit FTPS,
ftps:// implicit FTPS (port 990). Exit code 0 when every check passed, 1
when one failed.

Flags:
`

func runProbe(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, probeUsage)
		fs.PrintDefaults()
	}
	user := fs.String("user", "", "log in as this user (default: from the URL, else anonymous)")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin (default: prompt)")
	tlsFlag := fs.String("tls", "", "off, explicit or implicit (default: from the URL scheme, else off)")
	insecure := fs.Bool("insecure", false, "do not verify the server's certificate")
	caFile := fs.String("ca", "", "PEM file of certificates to trust (a self-signed server certificate, a private CA)")
	timeout := fs.Duration("timeout", probe.DefaultStepTimeout, "limit for each step (dial, reply, listing)")
	upload := fs.Bool("upload", false, "also upload a 1 KiB file (.cloudftpd-probe-*) and delete it again")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(rest) != 1 {
		fs.Usage()
		return 2
	}
	opts, urlPassword, err := probeTarget(rest[0])
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd probe:", err)
		return 2
	}
	if *tlsFlag != "" {
		if opts.TLS, err = parseTLSMode(*tlsFlag); err != nil {
			fmt.Fprintln(stderr, "cloudftpd probe:", err)
			return 2
		}
	}
	if *user != "" {
		opts.User = *user
	}
	opts.StepTimeout = *timeout
	opts.Upload = *upload
	switch {
	case urlPassword != nil:
		opts.Password = *urlPassword
	case opts.User != "" && opts.User != "anonymous" && opts.User != "ftp":
		if opts.Password, err = readSecret(stdin, stderr, *passwordStdin, false); err != nil {
			fmt.Fprintln(stderr, "cloudftpd probe:", err)
			return 1
		}
	}
	if opts.TLS != probe.TLSOff {
		conf := &tls.Config{InsecureSkipVerify: *insecure}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				fmt.Fprintln(stderr, "cloudftpd probe:", err)
				return 1
			}
			conf.RootCAs = x509.NewCertPool()
			if !conf.RootCAs.AppendCertsFromPEM(pem) {
				fmt.Fprintf(stderr, "cloudftpd probe: %s: no PEM certificate in it\n", *caFile)
				return 1
			}
		}
		opts.TLSConfig = conf
	}
	report := probe.Run(ctx, opts)
	report.WriteTo(stdout)
	if report.Failed() {
		return 1
	}
	return 0
}

// probeTarget reads HOST[:PORT] or an ftp, ftpes or ftps URL. A password
// in the URL is returned apart, so that an empty one ("ftp://u:@h") still
// counts as given.
func probeTarget(arg string) (probe.Options, *string, error) {
	if !strings.Contains(arg, "://") {
		return probe.Options{Addr: arg}, nil, nil
	}
	u, err := url.Parse(arg)
	if err != nil {
		return probe.Options{}, nil, err
	}
	var opts probe.Options
	switch u.Scheme {
	case "ftp":
	case "ftpes":
		opts.TLS = probe.TLSExplicit
	case "ftps":
		opts.TLS = probe.TLSImplicit
	default:
		return probe.Options{}, nil, fmt.Errorf("%s: the scheme must be ftp, ftpes (explicit FTPS) or ftps (implicit FTPS)", arg)
	}
	if u.Host == "" {
		return probe.Options{}, nil, errors.New(arg + ": no host")
	}
	opts.Addr = u.Host
	var pw *string
	if u.User != nil {
		opts.User = u.User.Username()
		if p, ok := u.User.Password(); ok {
			pw = &p
		}
	}
	return opts, pw, nil
}

func parseTLSMode(s string) (probe.TLSMode, error) {
	switch s {
	case "off":
		return probe.TLSOff, nil
	case "explicit":
		return probe.TLSExplicit, nil
	case "implicit":
		return probe.TLSImplicit, nil
	}
	return probe.TLSOff, fmt.Errorf("--tls %q: want off, explicit or implicit", s)
}
