package firewall

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/firewall/ec2test"
)

// TestCheckGroups runs the check through the real EC2 client against the
// stand-in: a group that matches the config exactly passes; one missing
// the passive range, or opening everything to the internet, is named.
func TestCheckGroups(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[[listener]]
address = "0.0.0.0:21"
passive_ports = "50000-50099"
[storage]
root = "/srv/ftp"
[auth]
anonymous = true
`))
	if err != nil {
		t.Fatal(err)
	}
	set := FromConfig(cfg)
	standIn := ec2test.NewServer(t, map[string]string{
		"sg-exact":   ec2test.TCP(21, 21, "0.0.0.0/0") + ec2test.TCP(50000, 50099, "0.0.0.0/0"),
		"sg-control": ec2test.TCP(21, 21, "0.0.0.0/0"),
		"sg-passive": ec2test.TCP(50000, 50099, "0.0.0.0/0"),
		"sg-wide":    ec2test.TCP(0, 65535, "0.0.0.0/0"),
		"sg-narrow":  ec2test.TCP(21, 21, "203.0.113.0/24") + ec2test.TCP(50000, 50099, "0.0.0.0/0"),
		// The listener is IPv4 only (0.0.0.0): IPv6 rules open nothing
		// it serves.
		"sg-ipv6": ec2test.TCP(21, 21, "0.0.0.0/0", "::/0") + ec2test.TCP(50000, 50099, "0.0.0.0/0"),
	})
	api := ec2.New(ec2.Options{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "secret", ""),
		BaseEndpoint: aws.String(standIn.URL),
	})
	for _, tc := range []struct {
		ids  []string
		want []string // substrings of the findings, in any order; none: no findings
	}{
		{[]string{"sg-exact"}, nil},
		{[]string{"sg-control", "sg-passive"}, nil}, // an instance's groups add up
		{[]string{"sg-control"}, []string{"missing: tcp 50000-50099 from 0.0.0.0/0 (listener[0] passive ports)"}},
		{[]string{"sg-wide"}, []string{"too wide: sg-wide allows tcp 0-65535 from 0.0.0.0/0, which the config does not use (ports 0-20, 22-49999, 50100-65535)"}},
		{[]string{"sg-narrow"}, []string{"missing: tcp 21 from 0.0.0.0/0 (listener[0] control"}},
		{[]string{"sg-ipv6"}, []string{"too wide: sg-ipv6 allows tcp 21 from ::/0, which the config does not use (ports 21)"}},
	} {
		findings, err := CheckGroups(context.Background(), api, tc.ids, set)
		if err != nil {
			t.Fatalf("%v: %v", tc.ids, err)
		}
		var texts []string
		for _, f := range findings {
			texts = append(texts, f.Text)
		}
		if len(texts) != len(tc.want) {
			t.Errorf("%v: findings %q, want %d like %q", tc.ids, texts, len(tc.want), tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(strings.Join(texts, "\n"), w) {
				t.Errorf("%v: findings %q lack %q", tc.ids, texts, w)
			}
		}
	}
	if _, err := CheckGroups(context.Background(), api, []string{"sg-nope"}, set); err == nil || !strings.Contains(err.Error(), "InvalidGroup.NotFound") {
		t.Errorf("unknown group: %v, want the API's InvalidGroup.NotFound", err)
	}
	if got := standIn.Asked()[1]; len(got) != 2 || got[0] != "sg-control" || got[1] != "sg-passive" {
		t.Errorf("the second request asked for %v, want both groups", got)
	}
}
