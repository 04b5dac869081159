// Package ec2test is a stand-in for the EC2 API's DescribeSecurityGroups
// (the Query protocol: a form-encoded POST, an XML answer) for tests of
// the security-group checks, driven through the real aws-sdk-go-v2 client.
package ec2test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Server holds security groups, each as the XML items of its
// ipPermissions (see TCP), and records the group ids each request named.
type Server struct {
	URL string

	mu     sync.Mutex
	groups map[string]string
	asked  [][]string
}

// NewServer starts a stand-in holding groups; it stops with the test. It
// also sets the environment of a client with static credentials and no
// shared config, so that tests never reach AWS or the instance metadata.
func NewServer(t testing.TB, groups map[string]string) *Server {
	t.Helper()
	s := &Server{groups: groups}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSTANDIN")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "standin-secret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	return s
}

// SetGroup replaces (or adds) a group's permissions.
func (s *Server) SetGroup(id, perms string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = perms
}

// Asked returns the group ids of each request so far.
func (s *Server) Asked() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.asked...)
}

// TCP is one ipPermissions item: tcp lo-hi from cidrs (IPv4 and IPv6).
func TCP(lo, hi int, cidrs ...string) string {
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

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "DescribeSecurityGroups" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		fail(w, "InvalidRequest", "the stand-in answers signed DescribeSecurityGroups requests only")
		return
	}
	var ids []string
	for i := 1; form.Get(fmt.Sprintf("GroupId.%d", i)) != ""; i++ {
		ids = append(ids, form.Get(fmt.Sprintf("GroupId.%d", i)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, ids)
	var items strings.Builder
	for _, id := range ids {
		perms, ok := s.groups[id]
		if !ok {
			fail(w, "InvalidGroup.NotFound", fmt.Sprintf("The security group '%s' does not exist", id))
			return
		}
		fmt.Fprintf(&items, `<item><ownerId>123456789012</ownerId><groupId>%s</groupId><groupName>ftp</groupName><groupDescription>ftp</groupDescription><ipPermissions>%s</ipPermissions><ipPermissionsEgress/><vpcId>vpc-1</vpcId></item>`, id, perms)
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-1</requestId><securityGroupInfo>%s</securityGroupInfo></DescribeSecurityGroupsResponse>`, items.String())
}

func fail(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>r-1</RequestID></Response>`, code, msg)
}
