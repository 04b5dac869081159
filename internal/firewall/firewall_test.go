package firewall

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// testConfig has what the rules come from: two listeners whose passive
// ranges touch (merged into one rule), an implicit FTPS listener on IPv6
// and IPv4, a listener on loopback (no rule), metrics on a private
// address (private networks only), and active mode on one listener.
const testConfig = `
[[listener]]
address = "0.0.0.0:21"
passive_ports = "50000-50100"
active_mode = false

[[listener]]
address = "10.0.2.10:2121"
passive_ports = "50101-50200"
active_mode = true

[[listener]]
address = "[::]:990"
passive_ports = "51000-51009"
active_mode = false
tls = "implicit"
tls_cert = "cert.pem"
tls_key = "key.pem"

[[listener]]
address = "127.0.0.1:2100"

[metrics]
address = "10.0.0.5:9121"

[storage]
root = "data"

[auth]
anonymous = true
`

func loadSet(t *testing.T, text string) *Set {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return FromConfig(cfg)
}

type flat struct {
	ports, src string
	out        bool
}

func flatten(rs []Rule) []flat {
	var out []flat
	for _, r := range rs {
		for _, s := range r.Sources {
			out = append(out, flat{r.Ports(), s, r.Outbound})
		}
	}
	return out
}

var wantRules = []flat{
	{"21", "0.0.0.0/0", false},
	{"990", "0.0.0.0/0", false},
	{"990", "::/0", false},
	{"2121", "0.0.0.0/0", false},
	{"50000-50200", "0.0.0.0/0", false},
	{"51000-51009", "0.0.0.0/0", false},
	{"51000-51009", "::/0", false},
	{"9121", "10.0.0.0/8", false},
	{"9121", "172.16.0.0/12", false},
	{"9121", "192.168.0.0/16", false},
	{"1024-65535", "0.0.0.0/0", true},
}

func TestFromConfig(t *testing.T) {
	s := loadSet(t, testConfig)
	got := flatten(s.Rules)
	sortFlat := func(f []flat) {
		slices.SortFunc(f, func(a, b flat) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	}
	want := slices.Clone(wantRules)
	sortFlat(got)
	sortFlat(want)
	if !slices.Equal(got, want) {
		t.Errorf("rules\n got %v\nwant %v", got, want)
	}
	if !slices.ContainsFunc(s.Warnings, func(w string) bool { return strings.Contains(w, "127.0.0.1:2100") }) {
		t.Errorf("no warning for the loopback listener: %q", s.Warnings)
	}
	merged := slices.IndexFunc(s.Rules, func(r Rule) bool { return r.Ports() == "50000-50200" })
	if merged < 0 || len(s.Rules[merged].Why) != 2 {
		t.Errorf("adjacent passive ranges not merged with both reasons: %+v", s.Rules)
	}
}

func TestWarnings(t *testing.T) {
	s := loadSet(t, "[[listener]]\naddress = \"0.0.0.0:21\"\n[storage]\nroot = \"d\"\n[auth]\nanonymous = true\n")
	if !slices.ContainsFunc(s.Warnings, func(w string) bool { return strings.Contains(w, "no passive_ports") }) || flatten(s.Rules)[1].ports != KernelPorts {
		t.Errorf("kernel-chosen passive ports: %q %v", s.Warnings, s.Rules)
	}
	// 31 listeners with separate ports and ranges: 62 IPv4 rules.
	var b strings.Builder
	for i := range 31 {
		fmt.Fprintf(&b, "[[listener]]\naddress = \"0.0.0.0:%d\"\npassive_ports = \"%d-%d\"\n", 2000+2*i, 40000+100*i, 40010+100*i)
	}
	b.WriteString("[storage]\nroot = \"d\"\n[auth]\nanonymous = true\n")
	s = loadSet(t, b.String())
	if !slices.ContainsFunc(s.Warnings, func(w string) bool {
		return strings.Contains(w, "62 inbound IPv4 rules") && strings.Contains(w, "quota of 60")
	}) {
		t.Errorf("no quota warning: %q", s.Warnings)
	}
}

func TestMerge(t *testing.T) {
	e := []string{"0.0.0.0/0"}
	got := Merge([]Rule{
		{Lo: 21, Hi: 21, Sources: e, Why: []string{"a"}},
		{Lo: 21, Hi: 21, Sources: e, Why: []string{"b"}},
		{Lo: 22, Hi: 22, Sources: e, Why: []string{"c"}},
		{Lo: 100, Hi: 200, Sources: e},
		{Lo: 150, Hi: 300, Sources: e},
		{Lo: 302, Hi: 310, Sources: e},
		{Lo: 100, Hi: 200, Sources: []string{"10.0.0.0/8"}},
	})
	var ports []string
	for _, r := range got {
		ports = append(ports, r.Ports()+" "+r.Sources[0])
	}
	want := []string{"21-22 0.0.0.0/0", "100-300 0.0.0.0/0", "302-310 0.0.0.0/0", "100-200 10.0.0.0/8"}
	if !slices.Equal(ports, want) {
		t.Errorf("got %q, want %q", ports, want)
	}
	if !slices.Equal(got[0].Why, []string{"a", "b", "c"}) {
		t.Errorf("reasons %q", got[0].Why)
	}
}

func render(t *testing.T, s *Set, format string) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Write(&b, format); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// needRoot skips (or fails in CI) where a tool needs root.
func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		clienttest.Unavailable(t, "needs root (CAP_NET_ADMIN)")
	}
}

func runTool(t *testing.T, stdin string, prog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestFormatsParse has each format read by the program or library that
// reads it in real life, and checks the rules it read.
func TestFormatsParse(t *testing.T) {
	s := loadSet(t, testConfig)
	dir := t.TempDir()

	t.Run("aws-cli", func(t *testing.T) {
		sh := clienttest.Need(t, "sh")
		// A stand-in aws records its arguments; the shell parses the script.
		bin := filepath.Join(dir, "bin")
		os.MkdirAll(bin, 0o755)
		log := filepath.Join(dir, "aws.args")
		os.WriteFile(filepath.Join(bin, "aws"), []byte("#!/bin/sh\nprintf '%s\\0' \"$@\" >> "+log+"\nprintf '\\n\\0' >> "+log+"\n"), 0o755)
		script := filepath.Join(dir, "rules.sh")
		os.WriteFile(script, []byte(render(t, s, "aws-cli")), 0o644)
		cmd := exec.Command(sh, script)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "SG_ID=sg-0123456789abcdef0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		data, _ := os.ReadFile(log)
		var got []flat
		for _, call := range strings.Split(string(data), "\n\x00") {
			args := strings.Split(strings.TrimSuffix(call, "\x00"), "\x00")
			if len(args) < 6 {
				continue
			}
			out := args[1] == "authorize-security-group-egress"
			if args[0] != "ec2" || args[2] != "--group-id" || args[3] != "sg-0123456789abcdef0" || args[4] != "--ip-permissions" {
				t.Fatalf("aws called with %q", args)
			}
			var perms []ipPermission
			if err := json.Unmarshal([]byte(args[5]), &perms); err != nil {
				t.Fatalf("--ip-permissions: %v\n%s", err, args[5])
			}
			for _, p := range perms {
				ports := fmt.Sprint(p.FromPort)
				if p.ToPort != p.FromPort {
					ports += fmt.Sprintf("-%d", p.ToPort)
				}
				for _, r := range p.IPRanges {
					got = append(got, flat{ports, r.CidrIP, out})
				}
				for _, r := range p.IPv6Ranges {
					got = append(got, flat{ports, r.CidrIPv6, out})
				}
			}
		}
		checkFlat(t, got)
	})

	t.Run("cloudformation", func(t *testing.T) {
		var tmpl struct {
			Resources map[string]struct {
				Type       string `yaml:"Type"`
				Properties struct {
					GroupID             yaml.Node `yaml:"GroupId"`
					IPProtocol          string    `yaml:"IpProtocol"`
					FromPort            int       `yaml:"FromPort"`
					ToPort              int       `yaml:"ToPort"`
					CidrIP              string    `yaml:"CidrIp"`
					CidrIPv6            string    `yaml:"CidrIpv6"`
					DestinationCidrIP   string    `yaml:"DestinationCidrIp"`
					DestinationCidrIPv6 string    `yaml:"DestinationCidrIpv6"`
				} `yaml:"Properties"`
			} `yaml:"Resources"`
		}
		text := render(t, s, "cloudformation")
		if err := yaml.Unmarshal([]byte(text), &tmpl); err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		var got []flat
		for name, r := range tmpl.Resources {
			p := r.Properties
			if g := p.GroupID; g.Tag != "!Ref" || g.Value != "SecurityGroupId" || p.IPProtocol != "tcp" {
				t.Errorf("%s: GroupId %s %q, protocol %q", name, g.Tag, g.Value, p.IPProtocol)
			}
			ports := fmt.Sprint(p.FromPort)
			if p.ToPort != p.FromPort {
				ports += fmt.Sprintf("-%d", p.ToPort)
			}
			src := p.CidrIP + p.CidrIPv6 + p.DestinationCidrIP + p.DestinationCidrIPv6
			got = append(got, flat{ports, src, r.Type == "AWS::EC2::SecurityGroupEgress"})
		}
		checkFlat(t, got)
	})

	t.Run("terraform", func(t *testing.T) {
		text := render(t, s, "terraform")
		f, diags := hclparse.NewParser().ParseHCL([]byte(text), "cloudftpd.tf")
		if diags.HasErrors() {
			t.Fatalf("%v\n%s", diags, text)
		}
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
			"var": cty.ObjectVal(map[string]cty.Value{"security_group_id": cty.StringVal("sg-1")}),
		}}
		var got []flat
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			if b.Type != "resource" {
				continue
			}
			attr := func(name string) cty.Value {
				a, ok := b.Body.Attributes[name]
				if !ok {
					return cty.NullVal(cty.String)
				}
				v, diags := a.Expr.Value(ctx)
				if diags.HasErrors() {
					t.Fatalf("%s.%s: %v", b.Labels[1], name, diags)
				}
				return v
			}
			if attr("security_group_id").AsString() != "sg-1" || attr("ip_protocol").AsString() != "tcp" {
				t.Errorf("%s: group or protocol", b.Labels[1])
			}
			from, _ := attr("from_port").AsBigFloat().Int64()
			to, _ := attr("to_port").AsBigFloat().Int64()
			ports := fmt.Sprint(from)
			if to != from {
				ports += fmt.Sprintf("-%d", to)
			}
			src := attr("cidr_ipv4")
			if src.IsNull() {
				src = attr("cidr_ipv6")
			}
			got = append(got, flat{ports, src.AsString(), b.Labels[0] == "aws_vpc_security_group_egress_rule"})
		}
		checkFlat(t, got)
	})

	t.Run("nftables", func(t *testing.T) {
		nft := clienttest.Need(t, "nft")
		needRoot(t)
		p := filepath.Join(dir, "cloudftpd.nft")
		text := render(t, s, "nftables")
		os.WriteFile(p, []byte(text), 0o644)
		runTool(t, "", nft, "-c", "-f", p)
		for _, want := range []string{"tcp dport 50000-50200 accept", "ip saddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 } tcp dport 9121 accept", "meta nfproto ipv6 tcp dport 990 accept"} {
			if !strings.Contains(text, want) {
				t.Errorf("no %q in\n%s", want, text)
			}
		}
	})

	t.Run("iptables", func(t *testing.T) {
		ipt := clienttest.Need(t, "iptables-restore")
		needRoot(t)
		text := render(t, s, "iptables")
		runTool(t, text, ipt, "--test")
		for _, want := range []string{"--dport 50000:50200", "-s 10.0.0.0/8 -p tcp --dport 9121", "-A OUTPUT -p tcp --dport 1024:65535"} {
			if !strings.Contains(text, want) {
				t.Errorf("no %q in\n%s", want, text)
			}
		}
	})

	t.Run("ufw", func(t *testing.T) {
		ufw := clienttest.Need(t, "ufw")
		needRoot(t)
		// Each command as ufw --dry-run: parsed and turned into iptables
		// rules by ufw, written nowhere.
		text := strings.ReplaceAll(render(t, s, "ufw"), "\nufw allow ", "\n"+ufw+" --dry-run allow ")
		out := runTool(t, text, clienttest.Need(t, "sh"))
		for _, want := range []string{
			"-A ufw-user-input -p tcp --dport 21 -j ACCEPT",
			"-A ufw-user-input -p tcp -m multiport --dports 50000:50200 -j ACCEPT",
			"-A ufw-user-input -p tcp --dport 9121 -s 10.0.0.0/8 -j ACCEPT",
			"-A ufw-user-input -p tcp --dport 990 -j ACCEPT",
			"-A ufw6-user-input -p tcp --dport 990 -j ACCEPT",
			"-A ufw-user-output -p tcp -m multiport --dports 1024:65535 -j ACCEPT",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("ufw --dry-run: no %q in\n%s", want, out)
			}
		}
		// An IPv4 listener's port is not opened for IPv6.
		for _, bad := range []string{"-A ufw6-user-input -p tcp --dport 21 ", "-A ufw6-user-output"} {
			if strings.Contains(out, bad) {
				t.Errorf("ufw --dry-run: %q opened for IPv6", bad)
			}
		}
	})

	t.Run("firewalld", func(t *testing.T) {
		offline := clienttest.Need(t, "firewall-offline-cmd")
		unshare := clienttest.Need(t, "unshare")
		needRoot(t)
		// The commands run offline against a private copy of
		// /etc/firewalld (a tmpfs in a mount namespace of their own), so
		// the machine's firewall is not touched.
		script := strings.ReplaceAll(render(t, s, "firewalld"), "firewall-cmd --permanent ", offline+" ")
		script = strings.ReplaceAll(script, "firewall-cmd --reload\n", offline+" --list-all\n")
		conf := filepath.Join(dir, "firewalld.conf")
		wrapped := fmt.Sprintf("cp /etc/firewalld/firewalld.conf %s 2>/dev/null || :\nmount -t tmpfs none /etc/firewalld\ncp %s /etc/firewalld/ 2>/dev/null || :\n%s", conf, conf, script)
		out := runTool(t, wrapped, unshare, "-m", "sh")
		for _, want := range []string{"21/tcp", "2121/tcp", "990/tcp", "50000-50200/tcp", "51000-51009/tcp",
			`rule family="ipv4" source address="10.0.0.0/8" port port="9121" protocol="tcp" accept`} {
			if !strings.Contains(out, want) {
				t.Errorf("firewall-offline-cmd --list-all: no %q in\n%s", want, out)
			}
		}
	})
}

// checkFlat compares what a parser read with the rules the config needs.
func checkFlat(t *testing.T, got []flat) {
	t.Helper()
	key := func(f flat) string { return fmt.Sprint(f) }
	g := slices.Clone(got)
	w := slices.Clone(wantRules)
	slices.SortFunc(g, func(a, b flat) int { return strings.Compare(key(a), key(b)) })
	slices.SortFunc(w, func(a, b flat) int { return strings.Compare(key(a), key(b)) })
	if !slices.Equal(g, w) {
		t.Errorf("parsed rules\n got %v\nwant %v", g, w)
	}
}

// TestMappedPassivePortsWarn: a passive rule whose clients reach other
// ports than the bound ones (ports = ...) is named with the range to open
// where the mapping happens.
func TestMappedPassivePortsWarn(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[[listener]]
address = "0.0.0.0:2121"
public_port = 21
passive_ports = "50000-50009"
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "198.51.100.10"
  ports = "30000-30009"
[storage]
root = "/srv/ftp"
[auth]
anonymous = true
`))
	if err != nil {
		t.Fatal(err)
	}
	s := FromConfig(cfg)
	found := false
	for _, w := range s.Warnings {
		if strings.Contains(w, "listener[0].passive[0] tells its clients ports 30000-30009") && strings.Contains(w, "open 30000-30009 where the mapping happens") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning about the mapped range: %q", s.Warnings)
	}
	if !strings.Contains(strings.Join(s.Warnings, "\n"), "listener[0] is reached on port 21 (public_port), mapped onto 2121") {
		t.Errorf("no warning about the mapped control port: %q", s.Warnings)
	}
}
