package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// SecurityGroups is the part of the EC2 API the check needs; *ec2.Client
// has it.
type SecurityGroups interface {
	DescribeSecurityGroups(ctx context.Context, in *ec2.DescribeSecurityGroupsInput, opts ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
}

// Finding is one difference between what the config needs and what the
// security groups allow.
type Finding struct {
	// Missing is true for a needed rule no group allows; false for a
	// group's rule that opens more to the internet than the config needs.
	Missing bool
	Text    string
}

// CheckGroups compares the inbound rules set needs with what the
// security groups ids allow together (an instance's groups add up): each
// needed port range and source must be inside one group rule, and no
// group rule may open ports to the internet (0.0.0.0/0, ::/0) that the
// config does not use. Outbound rules are not checked: security groups
// allow all outbound traffic by default.
func CheckGroups(ctx context.Context, api SecurityGroups, ids []string, set *Set) ([]Finding, error) {
	if len(ids) == 0 {
		return nil, errors.New("firewall: no security group to check")
	}
	out, err := api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: ids})
	if err != nil {
		return nil, fmt.Errorf("firewall: DescribeSecurityGroups %s: %w", strings.Join(ids, ", "), err)
	}
	var perms []permission
	for _, g := range out.SecurityGroups {
		for _, p := range g.IpPermissions {
			perms = append(perms, permissionsOf(aws.ToString(g.GroupId), p)...)
		}
	}
	var findings []Finding
	for _, r := range set.Rules {
		if r.Outbound {
			continue
		}
		for _, src := range r.Sources {
			want, err := netip.ParsePrefix(src)
			if err != nil {
				continue
			}
			if !coveredBy(perms, r.Lo, r.Hi, want) {
				findings = append(findings, Finding{Missing: true, Text: fmt.Sprintf("missing: tcp %s from %s (%s)", r.Ports(), src, strings.Join(r.Why, ", "))})
			}
		}
	}
	for _, p := range perms {
		if p.from.Bits() != 0 {
			continue // only rules open to the whole internet are judged
		}
		if extra := uncovered(p, set); extra != "" {
			findings = append(findings, Finding{Text: fmt.Sprintf("too wide: %s allows %s from %s, which the config does not use (%s)", p.group, p.describe(), p.from, extra)})
		}
	}
	return findings, nil
}

// permission is one group rule for one source range.
type permission struct {
	group  string
	all    bool // protocol -1: every protocol and port
	lo, hi uint16
	from   netip.Prefix
}

func (p permission) describe() string {
	if p.all {
		return "all traffic"
	}
	if p.lo == p.hi {
		return fmt.Sprintf("tcp %d", p.lo)
	}
	return fmt.Sprintf("tcp %d-%d", p.lo, p.hi)
}

// permissionsOf flattens a group rule into one permission per address
// range. Rules for other protocols (udp, icmp) and rules naming other
// groups or prefix lists say nothing about FTP's TCP ports from clients.
func permissionsOf(group string, p ec2types.IpPermission) []permission {
	proto := aws.ToString(p.IpProtocol)
	base := permission{group: group}
	switch proto {
	case "-1", "all":
		base.all, base.lo, base.hi = true, 0, 65535
	case "tcp", "6":
		lo, hi := aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort)
		if lo < 0 || hi > 65535 || lo > hi {
			return nil
		}
		base.lo, base.hi = uint16(lo), uint16(hi)
	default:
		return nil
	}
	var out []permission
	add := func(cidr string) {
		if pre, err := netip.ParsePrefix(cidr); err == nil {
			q := base
			q.from = pre.Masked()
			out = append(out, q)
		}
	}
	for _, r := range p.IpRanges {
		add(aws.ToString(r.CidrIp))
	}
	for _, r := range p.Ipv6Ranges {
		add(aws.ToString(r.CidrIpv6))
	}
	return out
}

// coveredBy reports whether one permission allows tcp lo-hi from every
// address of want.
func coveredBy(perms []permission, lo, hi uint16, want netip.Prefix) bool {
	for _, p := range perms {
		if p.lo <= lo && hi <= p.hi && p.from.Addr().Is4() == want.Addr().Is4() &&
			p.from.Bits() <= want.Bits() && p.from.Contains(want.Addr()) {
			return true
		}
	}
	return false
}

// uncovered describes the ports of p that no needed rule from the same
// whole-internet source uses, or "" when every port of p is needed.
func uncovered(p permission, set *Set) string {
	if p.all {
		return "every protocol and port"
	}
	var needed [][2]uint16
	for _, r := range set.Rules {
		if r.Outbound {
			continue
		}
		for _, src := range r.Sources {
			if pre, err := netip.ParsePrefix(src); err == nil && pre.Bits() == 0 && pre.Addr().Is4() == p.from.Addr().Is4() {
				needed = append(needed, [2]uint16{r.Lo, r.Hi})
			}
		}
	}
	var extra []string
	start := int(p.lo)
	for start <= int(p.hi) {
		// Skip what a needed range covers.
		moved := false
		for _, n := range needed {
			if int(n[0]) <= start && start <= int(n[1]) {
				start = int(n[1]) + 1
				moved = true
			}
		}
		if moved {
			continue
		}
		end := int(p.hi)
		for _, n := range needed {
			if int(n[0]) > start && int(n[0])-1 < end {
				end = int(n[0]) - 1
			}
		}
		if start == end {
			extra = append(extra, fmt.Sprint(start))
		} else {
			extra = append(extra, fmt.Sprintf("%d-%d", start, end))
		}
		start = end + 1
	}
	if len(extra) == 0 {
		return ""
	}
	return "ports " + strings.Join(extra, ", ")
}
