package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/certs"
)

// hostList collects repeated --host flags.
type hostList []string

func (h *hostList) String() string     { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error { *h = append(*h, v); return nil }

// runCert implements `cloudftpd cert self-signed`: a certificate for trying
// FTPS. Partners' clients will warn about it; use a real certificate (see
// README "FTPS") for production.
func runCert(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "self-signed" {
		fmt.Fprintln(stderr, "usage: cloudftpd cert self-signed --host NAME [--host NAME2] [--cert cert.pem] [--key key.pem] [--days 365]")
		return 2
	}
	fs := flag.NewFlagSet("cert self-signed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var hosts hostList
	fs.Var(&hosts, "host", "DNS name or IP address the certificate is for (repeatable)")
	certFile := fs.String("cert", "cert.pem", "certificate file to write")
	keyFile := fs.String("key", "key.pem", "private key file to write (mode 0600)")
	days := fs.Int("days", 365, "validity in days")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if len(hosts) == 0 || *days <= 0 {
		fmt.Fprintln(stderr, "cloudftpd: cert self-signed needs --host and a positive --days")
		return 2
	}
	if err := certs.SelfSigned(hosts, time.Duration(*days)*24*time.Hour, *certFile, *keyFile); err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s for %s, valid %d days\nIn the config: tls = \"explicit\", tls_cert = %q, tls_key = %q\n",
		*certFile, *keyFile, hosts.String(), *days, *certFile, *keyFile)
	return 0
}
