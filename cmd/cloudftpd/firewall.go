package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/firewall"
)

// runFirewall prints the rules the config needs in a firewall's format;
// warnings (a kernel-chosen passive range, more rules than a security
// group holds) go to standard error, so the output can be piped.
func runFirewall(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("firewall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", defaultConfigFile, "config file")
	format := fs.String("format", "", "output format: "+strings.Join(firewall.Formats, ", "))
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *format == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "Usage: cloudftpd firewall [--config FILE] --format %s\n", strings.Join(firewall.Formats, "|"))
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	set := firewall.FromConfig(cfg)
	if err := set.Write(stdout, *format); err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 2
	}
	for _, w := range set.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	return 0
}
