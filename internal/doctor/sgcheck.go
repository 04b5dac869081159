package doctor

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/diag"
	"github.com/cloudftpd/cloudftpd/internal/firewall"
)

// onEC2 reports whether the config says it runs on EC2: a passive rule
// discovers its address from the instance metadata. Only then does the
// doctor ask the metadata service (elsewhere it would wait for a timeout).
func onEC2(cfg *config.Config) bool {
	for i := range cfg.Listeners {
		for j := range cfg.Listeners[i].Passive {
			if cfg.Listeners[i].Passive[j].Kind() == config.AddressAWS {
				return true
			}
		}
	}
	return false
}

// checkSecurityGroups compares the rules the config needs (cloudftpd
// firewall) with the security groups of this instance's interfaces, read
// from the instance metadata, through DescribeSecurityGroups with the
// instance role. A failure to ask is a warning: the role may lack
// ec2:DescribeSecurityGroups, which serving does not need.
func checkSecurityGroups(ctx context.Context, cfg *config.Config) diag.Check {
	c := diag.Check{Step: "security groups"}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	md := imds.New(imds.Options{})
	get := func(path string) (string, error) {
		out, err := md.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
		if err != nil {
			return "", err
		}
		defer out.Content.Close()
		b, err := io.ReadAll(io.LimitReader(out.Content, 64<<10))
		return strings.TrimSpace(string(b)), err
	}
	macs, err := get("network/interfaces/macs/")
	if err != nil {
		c.Status, c.Detail = diag.Warn, "instance metadata: "+err.Error()
		c.Fix = "the config uses address = \"aws\", but the metadata service does not answer: is this an EC2 instance with IMDS enabled?"
		return c
	}
	var ids []string
	for _, mac := range strings.Fields(macs) {
		sgs, err := get("network/interfaces/macs/" + mac + "security-group-ids")
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(sgs) {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		c.Status, c.Detail = diag.Warn, "the instance metadata names no security group"
		return c
	}
	region, _ := get("placement/region")
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		c.Status, c.Detail = diag.Warn, "AWS configuration: "+err.Error()
		return c
	}
	findings, err := firewall.CheckGroups(ctx, ec2.NewFromConfig(awsCfg), ids, firewall.FromConfig(cfg))
	if err != nil {
		c.Status, c.Detail = diag.Warn, err.Error()
		c.Fix = "the instance role needs ec2:DescribeSecurityGroups for this check (serving does not); or run \"cloudftpd firewall --check --security-group " + strings.Join(ids, ",") + "\" with other credentials"
		return c
	}
	var missing, wide []string
	for _, f := range findings {
		if f.Missing {
			missing = append(missing, f.Text)
		} else {
			wide = append(wide, f.Text)
		}
	}
	switch {
	case len(missing) > 0:
		c.Status = diag.Fail
		c.Detail = strings.Join(append(missing, wide...), "\n")
		c.Fix = fmt.Sprintf("partners will log in and then hang on every listing and transfer: add the missing rules to %s (\"cloudftpd firewall --format aws-cli\" prints them)", strings.Join(ids, ", "))
	case len(wide) > 0:
		c.Status, c.Detail = diag.Warn, strings.Join(wide, "\n")
		c.Fix = "the groups open ports to the internet that cloudftpd does not use: narrow them to what \"cloudftpd firewall\" prints"
	default:
		c.Status, c.Detail = diag.OK, strings.Join(ids, ", ")+": allow what the config needs, and no more from the internet"
	}
	return c
}
