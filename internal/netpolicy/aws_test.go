package netpolicy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/netpolicy/imdstest"
)

// Addresses of the fake instance: two interfaces, each with one private
// address NATed to its own Elastic IP, and a third without any.
const (
	eniA, eniB, eniC = "0e:49:61:0f:c3:11", "0e:49:61:0f:c3:22", "0e:49:61:0f:c3:33"
	privA, privB     = "10.0.0.5", "10.0.1.7"
	eipA, eipB       = "203.0.113.10", "198.51.100.20"
)

func twoEIPMeta() map[string]string {
	return imdstest.Meta(eipA,
		imdstest.ENI{MAC: eniA, Associations: map[string]string{eipA: privA}},
		imdstest.ENI{MAC: eniB, Associations: map[string]string{eipB: privB}},
		imdstest.ENI{MAC: eniC},
	)
}

func newTestAWS(t testing.TB, endpoint string, opts AWSOptions) (*AWSAddress, error) {
	t.Helper()
	opts.Endpoint = endpoint
	return NewAWSAddress(context.Background(), opts)
}

func awsPassive(t testing.TB, a *AWSAddress, local string) netip.Addr {
	t.Helper()
	got, err := a.PassiveAddr(context.Background(), netip.MustParseAddr(local))
	if err != nil {
		t.Fatalf("PassiveAddr(%s): %v", local, err)
	}
	return got
}

func TestAWSAddressPerPrivateAddress(t *testing.T) {
	srv := imdstest.NewServer(t, twoEIPMeta())
	a, err := newTestAWS(t, srv.URL, AWSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ local, want string }{
		{privA, eipA},
		{privB, eipB},
		{"::ffff:" + privB, eipB}, // control connection on a dual-stack socket
		{"10.0.2.9", eipA},        // no association: public-ipv4
	} {
		if got := awsPassive(t, a, tc.local); got != netip.MustParseAddr(tc.want) {
			t.Errorf("PassiveAddr(%s) = %v, want %s", tc.local, got, tc.want)
		}
	}
	if a.String() != "aws" {
		t.Errorf("String() = %q, want aws", a.String())
	}
	// PassiveAddr answers from memory.
	n := srv.Requests()
	awsPassive(t, a, privA)
	if srv.Requests() != n {
		t.Error("PassiveAddr queried the metadata service")
	}
}

func TestAWSAddressThroughPolicy(t *testing.T) {
	srv := imdstest.NewServer(t, twoEIPMeta())
	a, err := newTestAWS(t, srv.URL, AWSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Rules: []Rule{
		{Clients: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Clients: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, Source: a},
	}}
	internet := netip.MustParseAddr("192.0.2.50")
	got, err := p.PassiveAddr(context.Background(), internet, netip.MustParseAddr(privB))
	if err != nil || got != netip.MustParseAddr(eipB) {
		t.Errorf("internet client via %s: %v, %v; want %s", privB, got, err, eipB)
	}
	vpn := netip.MustParseAddr("10.8.0.2")
	got, err = p.PassiveAddr(context.Background(), vpn, netip.MustParseAddr(privB))
	if err != nil || got != netip.MustParseAddr(privB) {
		t.Errorf("VPN client via %s: %v, %v; want %s", privB, got, err, privB)
	}
}

func TestAWSAddressNoPublicAddress(t *testing.T) {
	logs, logger := newDiscLog()
	srv := imdstest.NewServer(t, imdstest.Meta("", imdstest.ENI{MAC: eniA}))
	a, err := newTestAWS(t, srv.URL, AWSOptions{Logger: logger})
	if err != nil {
		t.Fatalf("an instance without a public address must still start (an EIP may come later): %v", err)
	}
	if logs.count("level=WARN", "no public IPv4") != 1 {
		t.Errorf("missing public address not logged at start:\n%s", logs)
	}
	_, err = a.PassiveAddr(context.Background(), netip.MustParseAddr(privA))
	want := "EC2 metadata lists no public IPv4 address for 10.0.0.5 and no public-ipv4: associate an Elastic IP or use a literal address"
	if err == nil || err.Error() != want {
		t.Errorf("PassiveAddr error = %v, want %q", err, want)
	}
}

func TestAWSAddressUsesIMDSv2Token(t *testing.T) {
	srv := imdstest.NewServer(t, twoEIPMeta())

	// The fake refuses metadata requests without a token, as an instance
	// with http-tokens=required does...
	resp, err := http.Get(srv.URL + "/latest/meta-data/public-ipv4")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || srv.Refused() != 1 {
		t.Fatalf("GET without token: status %d, refused %d; want 401, 1", resp.StatusCode, srv.Refused())
	}

	// ...and discovery works because the SDK asks for a token first.
	a, err := newTestAWS(t, srv.URL, AWSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := awsPassive(t, a, privB); got != netip.MustParseAddr(eipB) {
		t.Errorf("PassiveAddr(%s) = %v, want %s", privB, got, eipB)
	}
	if srv.TokenRequests() < 1 {
		t.Error("the fake handed out no token")
	}
	if srv.Refused() != 1 {
		t.Errorf("%d requests refused for a missing token, want only the test's own", srv.Refused())
	}
	if srv.Requests() == 0 {
		t.Error("no metadata request carried the token")
	}
}

func TestAWSAddressUnreachable(t *testing.T) {
	const timeout = time.Second
	const slack = time.Second

	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + ln.Addr().String()
		ln.Close()
		return url
	}
	// hanging accepts connections and never answers, like an IMDS whose
	// token response is dropped by the hop limit.
	hanging := func(t *testing.T) string {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) }) // runs before srv.Close
		return srv.URL
	}

	for _, tc := range []struct {
		name     string
		endpoint func(*testing.T) string
		timeout  time.Duration
	}{
		{"closed port", closedPort, timeout},
		{"hanging server", hanging, timeout},
		{"hanging server, short timeout", hanging, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.endpoint(t)
			start := time.Now()
			a, err := newTestAWS(t, url, AWSOptions{Timeout: tc.timeout})
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("NewAWSAddress succeeded: %v", a)
			}
			if elapsed > tc.timeout+slack {
				t.Errorf("NewAWSAddress took %v, want at most %v", elapsed, tc.timeout+slack)
			}
			for _, w := range []string{"hop limit", "--http-put-response-hop-limit 2", "not running on EC2", url} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
		})
	}
}

func TestAWSAddressStartErrors(t *testing.T) {
	t.Run("service answers an error", func(t *testing.T) {
		srv := imdstest.NewServer(t, twoEIPMeta())
		srv.Fail(http.StatusInternalServerError)
		_, err := newTestAWS(t, srv.URL, AWSOptions{})
		if err == nil || !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "network/interfaces/macs/") {
			t.Errorf("error = %v, want one naming the status and the path", err)
		}
	})
	t.Run("malformed association", func(t *testing.T) {
		meta := twoEIPMeta()
		meta["network/interfaces/macs/"+eniA+"/ipv4-associations/"+eipA] = "not-an-address"
		srv := imdstest.NewServer(t, meta)
		_, err := newTestAWS(t, srv.URL, AWSOptions{})
		if err == nil || !strings.Contains(err.Error(), "ipv4-associations/"+eipA) {
			t.Errorf("error = %v, want one naming the path", err)
		}
	})
}

func TestAWSAddressEndpointFromEnvironment(t *testing.T) {
	srv := imdstest.NewServer(t, twoEIPMeta())
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	// Meant for the SDK's credential chain; an explicit "aws" in the
	// configuration wins over it.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	a, err := newTestAWS(t, "", AWSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := awsPassive(t, a, privA); got != netip.MustParseAddr(eipA) {
		t.Errorf("PassiveAddr(%s) = %v, want %s", privA, got, eipA)
	}
}

func TestAWSAddressRefresh(t *testing.T) {
	logs, logger := newDiscLog()
	srv := imdstest.NewServer(t, twoEIPMeta())
	a, err := newTestAWS(t, srv.URL, AWSOptions{Refresh: 2 * time.Millisecond, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	discRun(t, a.Run)

	// EIP B is re-associated from 10.0.1.7 to 10.0.0.5; 10.0.1.7 falls
	// back to public-ipv4, which now is EIP B as well.
	srv.SetMeta(imdstest.Meta(eipB,
		imdstest.ENI{MAC: eniA, Associations: map[string]string{eipB: privA}},
		imdstest.ENI{MAC: eniB},
	))
	discWait(t, "the re-associated EIP", func() bool { return awsPassive(t, a, privA) == netip.MustParseAddr(eipB) })
	if got := awsPassive(t, a, privB); got != netip.MustParseAddr(eipB) {
		t.Errorf("PassiveAddr(%s) = %v after re-association, want public-ipv4 %s", privB, got, eipB)
	}
	discWait(t, "change logged", func() bool {
		return logs.count("level=INFO", "passive addresses changed", "10.0.0.5=203.0.113.10", "10.0.0.5=198.51.100.20") == 1
	})

	// A failing service keeps the last good data and warns once.
	srv.Fail(http.StatusInternalServerError)
	n := srv.Requests()
	discWait(t, "failed refreshes", func() bool { return srv.Requests() >= n+5 })
	if got := awsPassive(t, a, privA); got != netip.MustParseAddr(eipB) {
		t.Errorf("PassiveAddr(%s) during failure = %v, want last good %s", privA, got, eipB)
	}
	if c := logs.count("level=WARN", "source=aws"); c != 1 {
		t.Errorf("%d warnings for one failure streak, want 1:\n%s", c, logs)
	}
	srv.Fail(0)
	discWait(t, "recovery logged", func() bool { return logs.count("level=INFO", "recovered", "source=aws") == 1 })
	if c := logs.count("passive addresses changed"); c != 1 {
		t.Errorf("%d changes logged, want 1 (recovery with the same data is no change):\n%s", c, logs)
	}
}
