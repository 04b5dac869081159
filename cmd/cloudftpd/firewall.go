package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

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
	check := fs.Bool("check", false, "compare the rules with EC2 security groups (--security-group)")
	groups := fs.String("security-group", "", "with --check: security group ids, comma-separated (an instance's groups add up)")
	region := fs.String("region", "", "with --check: the AWS region (default: the AWS configuration)")
	endpoint := fs.String("endpoint", "", "with --check: another EC2 endpoint (a VPC endpoint)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *check {
		if *groups == "" || fs.NArg() > 0 {
			fmt.Fprintln(stderr, "Usage: cloudftpd firewall --check --security-group sg-...[,sg-...] [--config FILE] [--region R]")
			return 2
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, "cloudftpd:", err)
			return 1
		}
		return checkSecurityGroups(firewall.FromConfig(cfg), strings.Split(*groups, ","), *region, *endpoint, stdout, stderr)
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

// checkSecurityGroups prints what the security groups lack, or open to
// the internet beyond what the config needs; exit 1 when a needed rule is
// missing. Credentials and region come from the standard AWS chain (on
// EC2 the instance role, which needs ec2:DescribeSecurityGroups).
func checkSecurityGroups(set *firewall.Set, ids []string, region, endpoint string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var load []func(*awsconfig.LoadOptions) error
	if region != "" {
		load = append(load, awsconfig.WithRegion(region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd: AWS configuration:", err)
		return 1
	}
	api := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	findings, err := firewall.CheckGroups(ctx, api, ids, set)
	if err != nil {
		fmt.Fprintln(stderr, "cloudftpd:", err)
		return 1
	}
	missing := 0
	for _, f := range findings {
		fmt.Fprintln(stdout, f.Text)
		if f.Missing {
			missing++
		}
	}
	if len(findings) == 0 {
		fmt.Fprintf(stdout, "ok: %s allow exactly what the config needs\n", strings.Join(ids, ", "))
	}
	if missing > 0 {
		return 1
	}
	return 0
}
