package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/doctor"
)

// runDoctor checks a config against this machine: what check-config
// validates, and what only shows once clients come (storage permissions,
// ports, certificates, the addresses PASV replies will carry).
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigFile, "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cloudftpd doctor: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd doctor:", err)
		return 1
	}
	checks := doctor.Diagnose(ctx, cfg, doctor.Options{})
	diag.Write(stdout, "doctor "+*cfgPath, checks)
	if diag.Failed(checks) {
		return 1
	}
	return 0
}
