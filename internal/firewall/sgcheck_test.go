package firewall

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/cloudftpd/cloudftpd/internal/config"
)

// ec2StandIn answers DescribeSecurityGroups in the EC2 Query protocol
// (form-encoded POST, XML answer) for the groups it holds, and records
// the group ids each request asked for.
type ec2StandIn struct {
	mu     sync.Mutex
	groups map[string]string // id -> <ipPermissions> XML items
	asked  [][]string
}

func (s *ec2StandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "DescribeSecurityGroups" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		http.Error(w, "<Response><Errors><Error><Code>InvalidRequest</Code><Message>stand-in</Message></Error></Errors></Response>", 400)
		return
	}
	var ids []string
	for i := 1; form.Get(fmt.Sprintf("GroupId.%d", i)) != ""; i++ {
		ids = append(ids, form.Get(fmt.Sprintf("GroupId.%d", i)))
	}
	s.mu.Lock()
	s.asked = append(s.asked, ids)
	s.mu.Unlock()
	var items strings.Builder
	for _, id := range ids {
		perms, ok := s.groups[id]
		if !ok {
			w.WriteHeader(400)
			fmt.Fprintf(w, `<Response><Errors><Error><Code>InvalidGroup.NotFound</Code><Message>The security group '%s' does not exist</Message></Error></Errors><RequestID>x</RequestID></Response>`, id)
			return
		}
		fmt.Fprintf(&items, `<item><ownerId>123456789012</ownerId><groupId>%s</groupId><groupName>ftp</groupName><groupDescription>ftp</groupDescription><ipPermissions>%s</ipPermissions><ipPermissionsEgress/><vpcId>vpc-1</vpcId></item>`, id, perms)
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId><securityGroupInfo>%s</securityGroupInfo></DescribeSecurityGroupsResponse>`, items.String())
}

func tcp(lo, hi int, cidrs ...string) string {
	var v4, v6 strings.Builder
	for _, c := range cidrs {
		if strings.Contains(c, ":") {
			fmt.Fprintf(&v6, "<item><cidrIpv6>%s</cidrIpv6></item>", c)
		} else {
			fmt.Fprintf(&v4, "<item><cidrIp>%s</cidrIp></item>", c)
		}
	}
	return fmt.Sprintf("<item><ipProtocol>tcp</ipProtocol><fromPort>%d</fromPort><toPort>%d</toPort><ipRanges>%s</ipRanges><ipv6Ranges>%s</ipv6Ranges></item>", lo, hi, v4.String(), v6.String())
}

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
	standIn := &ec2StandIn{groups: map[string]string{
		"sg-exact":   tcp(21, 21, "0.0.0.0/0") + tcp(50000, 50099, "0.0.0.0/0"),
		"sg-control": tcp(21, 21, "0.0.0.0/0"),
		"sg-passive": tcp(50000, 50099, "0.0.0.0/0"),
		"sg-wide":    tcp(0, 65535, "0.0.0.0/0"),
		"sg-narrow":  tcp(21, 21, "203.0.113.0/24") + tcp(50000, 50099, "0.0.0.0/0"),
		// The listener is IPv4 only (0.0.0.0): IPv6 rules open nothing
		// it serves.
		"sg-ipv6": tcp(21, 21, "0.0.0.0/0", "::/0") + tcp(50000, 50099, "0.0.0.0/0"),
	}}
	srv := httptest.NewServer(standIn)
	defer srv.Close()
	api := ec2.New(ec2.Options{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSTANDIN", "secret", ""),
		BaseEndpoint: aws.String(srv.URL),
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
	if got := standIn.asked[1]; len(got) != 2 || got[0] != "sg-control" || got[1] != "sg-passive" {
		t.Errorf("the second request asked for %v, want both groups", got)
	}
}
