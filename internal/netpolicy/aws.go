package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// DefaultAWSTimeout bounds one discovery from EC2 instance metadata when
// AWSOptions.Timeout is zero. The service answers in milliseconds on EC2;
// anywhere else waiting longer only delays the error.
const DefaultAWSTimeout = 3 * time.Second

// imdsEndpointEnv is the AWS SDK's variable that overrides the metadata
// endpoint; imds.New reads it itself when Options.Endpoint is empty. It is
// only read here to name the endpoint in errors.
const imdsEndpointEnv = "AWS_EC2_METADATA_SERVICE_ENDPOINT"

const imdsDefaultEndpoint = "http://169.254.169.254"

// AWSOptions configures an AWSAddress. The zero value is usable on EC2.
type AWSOptions struct {
	// Endpoint is the metadata service's URL. When empty the SDK's
	// AWS_EC2_METADATA_SERVICE_ENDPOINT is used if set, else
	// http://169.254.169.254. Tests point it at an imdstest.Server.
	Endpoint string
	// Refresh is the period at which Run reads the metadata again;
	// DefaultRefresh when zero.
	Refresh time.Duration
	// Timeout bounds one discovery (all its requests together);
	// DefaultAWSTimeout when zero.
	Timeout time.Duration
	// Logger receives refresh failures and address changes; nothing is
	// logged when nil.
	Logger *slog.Logger
}

// AWSAddress is an AddressSource that advertises the instance's public
// addresses as EC2 instance metadata lists them (address = "aws").
//
// EC2 NATs each public address (the automatic public IPv4 or an Elastic
// IP) 1:1 to one private address, and the instance only ever sees the
// private one. AWSAddress reads which public address belongs to which
// private address on every network interface, and PassiveAddr answers
// with the public address of the private address the client connected
// to. So an instance with two private addresses and two Elastic IPs
// advertises the right one on each without per-address configuration,
// which vsftpd needs two processes for. An address without an association
// falls back to the instance's public-ipv4.
//
// It uses IMDSv2 only (a session token obtained with PUT), never the
// IMDSv1 fallback: IMDSv2 is what AWS recommends and new instances
// require, and falling back would only hide a misconfigured hop limit on
// the few instances that still allow IMDSv1. Requests bypass any HTTP
// proxy from the environment: the service is link-local, and a proxy that
// answered would answer with its own instance's addresses.
type AWSAddress struct {
	client   *imds.Client
	endpoint string // for messages
	refresh  time.Duration
	timeout  time.Duration
	logger   *slog.Logger
	state    atomic.Pointer[awsState] // never nil after NewAWSAddress
}

// awsState is the result of one discovery.
type awsState struct {
	public     map[netip.Addr]netip.Addr // private address -> its public one
	publicIPv4 netip.Addr                // public-ipv4; invalid when absent
}

// NewAWSAddress reads the instance's addresses from EC2 instance metadata,
// within ctx and opts.Timeout. It never retries: when the service cannot
// be reached it returns at once with an error that lists the likely
// causes, so the server refuses to start with a clear message.
func NewAWSAddress(ctx context.Context, opts AWSOptions) (*AWSAddress, error) {
	a := &AWSAddress{
		endpoint: opts.Endpoint,
		refresh:  opts.Refresh,
		timeout:  opts.Timeout,
		logger:   orDiscard(opts.Logger),
	}
	if a.refresh <= 0 {
		a.refresh = DefaultRefresh
	}
	if a.timeout <= 0 {
		a.timeout = DefaultAWSTimeout
	}
	if a.endpoint == "" {
		a.endpoint = os.Getenv(imdsEndpointEnv)
	}
	if a.endpoint == "" {
		a.endpoint = imdsDefaultEndpoint
	}
	a.client = imds.New(imds.Options{
		Endpoint: opts.Endpoint, // "" lets the SDK apply its env variable
		// The SDK adds its short dial (250 ms) and response header
		// (500 ms) timeouts to a BuildableClient; only the proxy goes.
		HTTPClient: awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.Proxy = nil
		}),
		// One attempt per request: discovery is bounded by Timeout, and
		// Run tries again later anyway.
		Retryer: aws.NopRetryer{},
		// The configuration asked for "aws" explicitly, so
		// AWS_EC2_METADATA_DISABLED (meant for the SDK's credential
		// chain) does not turn the source off.
		ClientEnableState: imds.ClientEnabled,
		EnableFallback:    aws.FalseTernary,
	})
	st, err := a.discover(ctx)
	if err != nil {
		var status interface{ HTTPStatusCode() int }
		if errors.As(err, &status) {
			return nil, fmt.Errorf("netpolicy: address \"aws\": EC2 instance metadata at %s: %w", a.endpoint, err)
		}
		return nil, fmt.Errorf("netpolicy: address \"aws\": cannot read EC2 instance metadata at %s: %w; "+
			"likely causes: the server is not running on EC2; the instance metadata service is disabled "+
			"(aws ec2 modify-instance-metadata-options --instance-id ... --http-endpoint enabled); "+
			"or it runs in a container (Docker) where the IMDSv2 hop limit of 1 drops the token response "+
			"(aws ec2 modify-instance-metadata-options --instance-id ... --http-put-response-hop-limit 2)",
			a.endpoint, err)
	}
	if len(st.public) == 0 && !st.publicIPv4.IsValid() {
		// Not fatal: an Elastic IP associated later is found by Run.
		a.logger.Warn("EC2 metadata lists no public IPv4 address; PASV replies from this source fail until one is associated",
			"source", a.String())
	}
	a.state.Store(st)
	return a, nil
}

// discover reads every interface's public address associations and
// public-ipv4, within a.timeout.
func (a *AWSAddress) discover(ctx context.Context) (*awsState, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	st := &awsState{public: make(map[netip.Addr]netip.Addr)}
	macs, err := a.get(ctx, "network/interfaces/macs/")
	if err != nil {
		return nil, err
	}
	for _, mac := range lines(macs) {
		mac = strings.TrimSuffix(mac, "/")
		dir := "network/interfaces/macs/" + mac + "/ipv4-associations/"
		pubs, err := a.get(ctx, dir)
		if isNotFound(err) {
			continue // no public address on this interface
		}
		if err != nil {
			return nil, err
		}
		for _, p := range lines(pubs) {
			pub, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("metadata %s lists %q: %w", dir, p, err)
			}
			body, err := a.get(ctx, dir+p)
			if err != nil {
				return nil, err
			}
			priv, err := netip.ParseAddr(body)
			if err != nil {
				return nil, fmt.Errorf("metadata %s%s: %w", dir, p, err)
			}
			st.public[priv.Unmap()] = pub.Unmap()
		}
	}
	body, err := a.get(ctx, "public-ipv4")
	switch {
	case isNotFound(err):
	case err != nil:
		return nil, err
	default:
		pub, err := netip.ParseAddr(body)
		if err != nil {
			return nil, fmt.Errorf("metadata public-ipv4: %w", err)
		}
		st.publicIPv4 = pub.Unmap()
	}
	return st, nil
}

// get reads one metadata path and returns its body without surrounding
// white space.
func (a *AWSAddress) get(ctx context.Context, path string) (string, error) {
	out, err := a.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", fmt.Errorf("metadata %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	if err != nil {
		return "", fmt.Errorf("metadata %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func isNotFound(err error) bool {
	var status interface{ HTTPStatusCode() int }
	return errors.As(err, &status) && status.HTTPStatusCode() == http.StatusNotFound
}

// lines splits a metadata listing into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Run reads the metadata again every Refresh until ctx ends, so that an
// Elastic IP associated or moved after start-up is advertised; the owner
// starts it with go. A failed refresh keeps the last good addresses.
func (a *AWSAddress) Run(ctx context.Context) {
	refreshLoop(ctx, a.refresh, a.logger, a.String(), a.refreshOnce)
}

func (a *AWSAddress) refreshOnce(ctx context.Context) error {
	st, err := a.discover(ctx)
	if err != nil {
		return err
	}
	old := a.state.Swap(st)
	if o, n := old.String(), st.String(); o != n {
		a.logger.Info("passive addresses changed", "source", a.String(), "old", o, "new", n)
	}
	return nil
}

// PassiveAddr implements AddressSource from memory: the public address
// associated with local, else the instance's public-ipv4.
func (a *AWSAddress) PassiveAddr(_ context.Context, local netip.Addr) (netip.Addr, error) {
	local = local.Unmap()
	st := a.state.Load()
	if pub, ok := st.public[local]; ok {
		return pub, nil
	}
	if st.publicIPv4.IsValid() {
		return st.publicIPv4, nil
	}
	return netip.Addr{}, fmt.Errorf("EC2 metadata lists no public IPv4 address for %s and no public-ipv4: associate an Elastic IP or use a literal address", local)
}

func (a *AWSAddress) String() string { return "aws" }

// String describes the state for logs, in a stable order:
// "10.0.0.5=203.0.113.10 10.0.1.7=203.0.113.20 public-ipv4=203.0.113.10".
func (s *awsState) String() string {
	privs := make([]netip.Addr, 0, len(s.public))
	for p := range s.public {
		privs = append(privs, p)
	}
	slices.SortFunc(privs, netip.Addr.Compare)
	var b strings.Builder
	for _, p := range privs {
		fmt.Fprintf(&b, "%s=%s ", p, s.public[p])
	}
	if s.publicIPv4.IsValid() {
		fmt.Fprintf(&b, "public-ipv4=%s", s.publicIPv4)
	} else {
		b.WriteString("public-ipv4=none")
	}
	return b.String()
}
