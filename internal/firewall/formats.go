package firewall

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Formats lists the output formats, in the order help shows them.
var Formats = []string{"aws-cli", "cloudformation", "terraform", "nftables", "iptables", "ufw", "firewalld"}

// Write prints the rules in a format.
func (s *Set) Write(w io.Writer, format string) error {
	var b strings.Builder
	switch format {
	case "aws-cli":
		s.awsCLI(&b)
	case "cloudformation":
		s.cloudFormation(&b)
	case "terraform":
		s.terraform(&b)
	case "nftables":
		s.nftables(&b)
	case "iptables":
		s.iptables(&b)
	case "ufw":
		s.ufw(&b)
	case "firewalld":
		s.firewalld(&b)
	default:
		return fmt.Errorf("firewall: unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (s *Set) header(b *strings.Builder, comment string) {
	fmt.Fprintf(b, "%s Rules cloudftpd's config needs (cloudftpd firewall). TCP only.\n", comment)
	for _, w := range s.Warnings {
		fmt.Fprintf(b, "%s warning: %s\n", comment, w)
	}
}

// ipPermission is one entry of aws ec2's --ip-permissions JSON.
type ipPermission struct {
	IPProtocol string      `json:"IpProtocol"`
	FromPort   int         `json:"FromPort"`
	ToPort     int         `json:"ToPort"`
	IPRanges   []cidrRange `json:"IpRanges,omitempty"`
	IPv6Ranges []cidrRange `json:"Ipv6Ranges,omitempty"`
}

type cidrRange struct {
	CidrIP   string `json:"CidrIp,omitempty"`
	CidrIPv6 string `json:"CidrIpv6,omitempty"`
	Desc     string `json:"Description"`
}

func permissions(rules []Rule) []ipPermission {
	var out []ipPermission
	for _, r := range rules {
		p := ipPermission{IPProtocol: "tcp", FromPort: int(r.Lo), ToPort: int(r.Hi)}
		// Descriptions may hold at most 255 characters of a limited set.
		desc := sgDescription(r.Description())
		for _, src := range r.Sources {
			if strings.Contains(src, ":") {
				p.IPv6Ranges = append(p.IPv6Ranges, cidrRange{CidrIPv6: src, Desc: desc})
			} else {
				p.IPRanges = append(p.IPRanges, cidrRange{CidrIP: src, Desc: desc})
			}
		}
		out = append(out, p)
	}
	return out
}

// sgDescription keeps the characters a security group rule description
// allows (a-z A-Z 0-9 spaces ._-:/()#,@[]+=&;{}!$*), at most 255.
func sgDescription(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" ._-:/()#,@[]+=&;{}!$*", r)) {
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 255 {
		out = out[:255]
	}
	return out
}

func (s *Set) awsCLI(b *strings.Builder) {
	b.WriteString("#!/bin/sh\n")
	s.header(b, "#")
	b.WriteString("# Set SG_ID to the instance's security group, e.g. SG_ID=sg-0123456789abcdef0 sh rules.sh\nset -e\n")
	for _, dir := range []struct {
		cmd   string
		rules []Rule
	}{{"authorize-security-group-ingress", s.Inbound()}, {"authorize-security-group-egress", s.Outbound()}} {
		if len(dir.rules) == 0 {
			continue
		}
		if dir.cmd == "authorize-security-group-egress" {
			b.WriteString("# Outbound: a security group allows all outbound traffic unless its egress rules were narrowed; then this is needed.\n")
		}
		js, _ := json.MarshalIndent(permissions(dir.rules), "", "  ")
		fmt.Fprintf(b, "aws ec2 %s --group-id \"${SG_ID:?set SG_ID to the security group id}\" --ip-permissions '%s'\n", dir.cmd, strings.ReplaceAll(string(js), "'", ""))
	}
}

func (s *Set) cloudFormation(b *strings.Builder) {
	s.header(b, "#")
	b.WriteString("AWSTemplateFormatVersion: \"2010-09-09\"\nDescription: Security group rules for cloudftpd\nParameters:\n  SecurityGroupId:\n    Type: AWS::EC2::SecurityGroup::Id\n    Description: The security group of the cloudftpd instance\nResources:\n")
	n := 0
	for _, r := range s.Rules {
		for _, src := range r.Sources {
			typ := "AWS::EC2::SecurityGroupIngress"
			if r.Outbound {
				typ = "AWS::EC2::SecurityGroupEgress"
			}
			fmt.Fprintf(b, "  Cloudftpd%s%d:\n    Type: %s\n    Properties:\n      GroupId: !Ref SecurityGroupId\n      IpProtocol: tcp\n      FromPort: %d\n      ToPort: %d\n", direction(r), n, typ, r.Lo, r.Hi)
			key := "CidrIp"
			if r.Outbound {
				key = "DestinationCidrIp"
			}
			if strings.Contains(src, ":") {
				key = "CidrIpv6"
				if r.Outbound {
					key = "DestinationCidrIpv6"
				}
			}
			fmt.Fprintf(b, "      %s: %s\n      Description: %s\n", key, yamlString(src), yamlString(sgDescription(r.Description())))
			n++
		}
	}
}

func direction(r Rule) string {
	if r.Outbound {
		return "Egress"
	}
	return "Ingress"
}

// yamlString is a double-quoted YAML scalar (JSON's escapes are YAML's).
func yamlString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

func (s *Set) terraform(b *strings.Builder) {
	s.header(b, "#")
	b.WriteString("variable \"security_group_id\" {\n  type        = string\n  description = \"The security group of the cloudftpd instance\"\n}\n")
	names := map[string]int{}
	for _, r := range s.Rules {
		for _, src := range r.Sources {
			res := "aws_vpc_security_group_ingress_rule"
			if r.Outbound {
				res = "aws_vpc_security_group_egress_rule"
			}
			fam, key := "ipv4", "cidr_ipv4"
			if strings.Contains(src, ":") {
				fam, key = "ipv6", "cidr_ipv6"
			}
			name := fmt.Sprintf("cloudftpd_%s_%s_%s", strings.ToLower(direction(r)), strings.ReplaceAll(r.Ports(), "-", "_"), fam)
			if names[name]++; names[name] > 1 {
				name += fmt.Sprintf("_%d", names[name])
			}
			fmt.Fprintf(b, "\nresource %q %q {\n  security_group_id = var.security_group_id\n  description       = %s\n  ip_protocol       = \"tcp\"\n  from_port         = %d\n  to_port           = %d\n  %-17s = %q\n}\n",
				res, name, hclString(sgDescription(r.Description())), r.Lo, r.Hi, key, src)
		}
	}
}

// hclString quotes s for HCL, where "${" and "%{" start templates.
func hclString(s string) string {
	q := fmt.Sprintf("%q", s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

// nftComment keeps a comment nft accepts: printable, no quotes, at most
// 128 bytes.
func nftComment(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
	if len(s) > 127 {
		s = s[:127]
	}
	return s
}

func (s *Set) nftables(b *strings.Builder) {
	b.WriteString("#!/usr/sbin/nft -f\n")
	s.header(b, "#")
	b.WriteString(`# A complete host firewall for cloudftpd: load it with nft -f FILE. It
# replaces only its own table (inet cloudftpd); inbound traffic that no rule
# here accepts is dropped. SSH is accepted so that loading it does not lock
# you out: narrow or remove that rule as your access allows.
table inet cloudftpd
delete table inet cloudftpd

table inet cloudftpd {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		iif "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
		tcp dport 22 accept comment "ssh"
`)
	for _, r := range s.Inbound() {
		b.WriteString(nftRule(r, "saddr", "dport"))
	}
	b.WriteString("\t}\n")
	if out := s.Outbound(); len(out) > 0 {
		b.WriteString("\n\t# Outbound is accepted by this policy; the rule documents what active mode needs\n\t# if your own output chain drops.\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n")
		for _, r := range out {
			b.WriteString(nftRule(r, "daddr", "dport"))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
}

func nftRule(r Rule, addrKey, portKey string) string {
	ports := fmt.Sprint(r.Lo)
	if r.Lo != r.Hi {
		ports = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
	}
	comment := nftComment(r.Description())
	var v4, v6 []string
	for _, src := range r.Sources {
		if strings.Contains(src, ":") {
			v6 = append(v6, src)
		} else {
			v4 = append(v4, src)
		}
	}
	var out strings.Builder
	for _, fam := range []struct {
		key  string
		list []string
		all  string
	}{{"ip", v4, "0.0.0.0/0"}, {"ip6", v6, "::/0"}} {
		if len(fam.list) == 0 {
			continue
		}
		match := ""
		if !slices.Contains(fam.list, fam.all) {
			match = fmt.Sprintf("%s %s { %s } ", fam.key, addrKey, strings.Join(fam.list, ", "))
		} else {
			match = fmt.Sprintf("meta nfproto %s ", map[string]string{"ip": "ipv4", "ip6": "ipv6"}[fam.key])
		}
		fmt.Fprintf(&out, "\t\t%stcp %s %s accept comment \"%s\"\n", match, portKey, ports, comment)
	}
	return out.String()
}

func (s *Set) iptables(b *strings.Builder) {
	s.header(b, "#")
	b.WriteString(`# For iptables-restore (IPv4; the IPv6 rules are the same ports for ip6tables,
# see --format nftables for both). This replaces the filter table: inbound
# traffic that no rule accepts is dropped, SSH is accepted.
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -i lo -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -p tcp --dport 22 -m comment --comment "ssh" -j ACCEPT
`)
	for _, r := range s.Rules {
		chain, flag := "INPUT", "-s"
		if r.Outbound {
			chain, flag = "OUTPUT", "-d"
		}
		for _, src := range r.Sources {
			if strings.Contains(src, ":") {
				continue
			}
			m := ""
			if src != "0.0.0.0/0" {
				m = fmt.Sprintf(" %s %s", flag, src)
			}
			fmt.Fprintf(b, "-A %s%s -p tcp --dport %s -m comment --comment \"%s\" -j ACCEPT\n", chain, m, strings.ReplaceAll(r.Ports(), "-", ":"), nftComment(r.Description()))
		}
	}
	b.WriteString("COMMIT\n")
}

// shellQuote is s in single quotes for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (s *Set) ufw(b *strings.Builder) {
	b.WriteString("#!/bin/sh\n")
	s.header(b, "#")
	b.WriteString("# Run as root; then ufw enable (ufw allows SSH only if a rule says so: ufw allow OpenSSH).\nset -e\n")
	for _, r := range s.Rules {
		srcs := r.Sources
		if slices.Contains(srcs, "0.0.0.0/0") && slices.Contains(srcs, "::/0") {
			// "any" is both families in ufw.
			srcs = append([]string{"any"}, slices.DeleteFunc(slices.Clone(srcs), func(x string) bool { return x == "0.0.0.0/0" || x == "::/0" })...)
		}
		for _, src := range srcs {
			dir, peer := "in", fmt.Sprintf("from %s to any", src)
			if r.Outbound {
				dir, peer = "out", fmt.Sprintf("from any to %s", src)
			}
			fmt.Fprintf(b, "ufw allow %s proto tcp %s port %s comment %s\n", dir, peer, strings.ReplaceAll(r.Ports(), "-", ":"), shellQuote(nftComment(r.Description())))
		}
	}
}

func (s *Set) firewalld(b *strings.Builder) {
	b.WriteString("#!/bin/sh\n")
	s.header(b, "#")
	b.WriteString("# Run as root; the rules go to the default zone, permanently, then are loaded.\nset -e\n")
	for _, r := range s.Inbound() {
		if slices.Contains(r.Sources, "0.0.0.0/0") || slices.Contains(r.Sources, "::/0") {
			fmt.Fprintf(b, "firewall-cmd --permanent --add-port=%s/tcp  # %s\n", r.Ports(), nftComment(r.Description()))
			continue
		}
		for _, src := range r.Sources {
			fam := "ipv4"
			if strings.Contains(src, ":") {
				fam = "ipv6"
			}
			rule := fmt.Sprintf(`rule family="%s" source address="%s" port port="%s" protocol="tcp" accept`, fam, src, r.Ports())
			fmt.Fprintf(b, "firewall-cmd --permanent --add-rich-rule=%s  # %s\n", shellQuote(rule), nftComment(r.Description()))
		}
	}
	if len(s.Outbound()) > 0 {
		b.WriteString("# Outbound: firewalld accepts outbound connections by default; active mode needs TCP to clients' ports 1024-65535.\n")
	}
	b.WriteString("firewall-cmd --reload\n")
}
