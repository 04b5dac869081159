package server_test

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy/imdstest"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// TestPassiveAddressFromEC2Metadata runs the "aws" address source end to
// end against a fake instance metadata service on loopback: the PASV reply
// carries the Elastic IP associated with the private address the client
// connected to.
func TestPassiveAddressFromEC2Metadata(t *testing.T) {
	imds := imdstest.NewServer(t, imdstest.Meta("203.0.113.99", imdstest.ENI{
		MAC:          "0a:00:00:00:00:01",
		Associations: map[string]string{"198.51.100.10": "127.0.0.1"},
	}))
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)
	ts := startServer(t, func(c *config.Config) {
		c.Listeners[0].Passive = []config.PassiveRule{{Clients: []string{"0.0.0.0/0"}, Address: "aws"}}
	})
	rc := dialRaw(t, ts.Addr)
	rc.login("alice", "alice-secret")
	msg := rc.must(227, "PASV")
	if got := parse227(t, msg).Addr(); got != netip.MustParseAddr("198.51.100.10") {
		t.Errorf("PASV advertised %v, want the Elastic IP 198.51.100.10", got)
	}
	if imds.TokenRequests() == 0 {
		t.Error("metadata read without the IMDSv2 token flow")
	}
}

// TestEC2MetadataUnreachable checks that a server configured with "aws"
// refuses to start, with the likely cause, when metadata cannot be read.
func TestEC2MetadataUnreachable(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
	cfg, err := config.Parse([]byte(`
[[listener]]
address = "127.0.0.1:0"
  [[listener.passive]]
  clients = ["0.0.0.0/0"]
  address = "aws"
[storage]
root = "` + t.TempDir() + `"
[auth]
users_file = "unused.toml"
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = server.New(t.Context(), cfg, server.Options{Logger: slog.New(slog.DiscardHandler), Auth: stubAuth{}})
	if err == nil || !strings.Contains(err.Error(), "hop limit") || !strings.Contains(err.Error(), "listener[0].passive[0]") {
		t.Fatalf("server.New with unreachable metadata: %v", err)
	}
}

// stubAuth refuses everyone; for tests that never log in.
type stubAuth struct{}

func (stubAuth) Authenticate(context.Context, string, string) (*auth.User, error) {
	return nil, auth.ErrBadCredentials
}
