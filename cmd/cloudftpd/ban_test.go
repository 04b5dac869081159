package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/control"
	"github.com/cloudftpd/cloudftpd/internal/defender"
)

// banService is a fake control.Service: bans in a map, calls recorded.
type banService struct {
	mu    sync.Mutex
	bans  map[netip.Prefix]defender.Ban
	calls []string
}

func (s *banService) Bans(context.Context) ([]defender.Ban, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []defender.Ban
	for _, b := range s.bans {
		out = append(out, b)
	}
	return out, nil
}

func (s *banService) Ban(_ context.Context, p netip.Prefix, d time.Duration, reason string) (defender.Ban, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf("ban %s %v %q", p, d, reason))
	if d == 0 {
		d = 15 * time.Minute
	}
	now := time.Now()
	b := defender.Ban{Prefix: p, Reason: reason, Since: now, Until: now.Add(d), Strikes: 1, Manual: true}
	if d == defender.Forever {
		b.Until = time.Time{}
	}
	s.bans[p] = b
	return b, nil
}

func (s *banService) Unban(_ context.Context, p netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, fmt.Sprintf("unban %s", p))
	if _, ok := s.bans[p]; !ok {
		return fmt.Errorf("defender: %s: %w", p, defender.ErrNotBanned)
	}
	delete(s.bans, p)
	return nil
}

func TestBanCommand(t *testing.T) {
	svc := &banService{bans: map[netip.Prefix]defender.Ban{}}
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.ServeListener(ctx, l, control.NewHandler(svc, nil)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	// Steps run in order against the same server.
	for _, tc := range []struct {
		args           string
		code           int
		stdout, stderr string // substrings; stdout "" means empty
		call           string // the Service call; "" for none
	}{
		{"list", 0, "no bans", "", ""},
		{"add 203.0.113.7 --for 1h --reason scanner", 0, "banned 203.0.113.7/32 for 1h0m0s (until ", "", `ban 203.0.113.7/32 1h0m0s "scanner"`},
		{"add --for forever 198.51.100.0/24", 0, "banned 198.51.100.0/24 until unbanned", "", `ban 198.51.100.0/24 -1ns ""`},
		{"add 2001:db8::5", 0, "banned 2001:db8::/64 (IPv6 addresses are banned by their /64) for 15m0s", "", `ban 2001:db8::/64 0s ""`},
		{"list", 0, "PREFIX", "", ""},
		{"remove 203.0.113.7", 0, "unbanned 203.0.113.7/32", "", "unban 203.0.113.7/32"},
		{"remove 203.0.113.7", 1, "", "cloudftpd ban remove: defender: 203.0.113.7/32: not banned", "unban 203.0.113.7/32"},
		{"add 203.0.113.7/24", 2, "", "has host bits set (the network is 203.0.113.0/24)", ""},
		{"add example.com", 2, "", `"example.com" is not an address or a CIDR prefix`, ""},
		{"add 203.0.113.7 --for soon", 2, "", `--for: duration "soon"`, ""},
		{"add", 2, "", "want one ADDR or CIDR", ""},
		{"list extra", 2, "", "want no arguments", ""},
		{"remove 1.2.3.4 --for 1h", 2, "", "flag provided but not defined: -for", ""},
		{"frobnicate", 2, "", `unknown command "frobnicate"`, ""},
		{"help", 0, "cloudftpd ban add ADDR|CIDR", "", ""},
	} {
		args := append(strings.Fields(tc.args), "--socket", sock)
		svc.mu.Lock()
		svc.calls = nil
		svc.mu.Unlock()
		var stdout, stderr bytes.Buffer
		code := runBan(args, &stdout, &stderr)
		if code != tc.code ||
			(tc.stdout == "") != (stdout.Len() == 0) || !strings.Contains(stdout.String(), tc.stdout) ||
			!strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("ban %s: exit %d\nstdout: %s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
		if calls := strings.Join(svc.calls, "; "); calls != tc.call {
			t.Errorf("ban %s: calls %q, want %q", tc.args, calls, tc.call)
		}
		if tc.args == "list" && tc.stdout == "PREFIX" {
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(lines) != 4 || !strings.Contains(stdout.String(), "forever") || !strings.Contains(stdout.String(), "scanner") {
				t.Errorf("list:\n%s", stdout.String())
			}
		}
	}
}

// TestBanListNodes: bans shared by several nodes are listed with the
// node that made them.
func TestBanListNodes(t *testing.T) {
	now := time.Now()
	svc := &banService{bans: map[netip.Prefix]defender.Ban{
		netip.MustParsePrefix("203.0.113.7/32"): {Prefix: netip.MustParsePrefix("203.0.113.7/32"), Since: now, Until: now.Add(time.Hour),
			Strikes: 1, Node: "ip-10-0-1-5", Reason: "10 points in 5m0s on 2 nodes"},
	}}
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := control.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go control.ServeListener(ctx, l, control.NewHandler(svc, nil))
	var stdout, stderr bytes.Buffer
	if code := runBan([]string{"list", "--socket", sock}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "NODE") || !strings.Contains(lines[1], "ip-10-0-1-5") || !strings.Contains(lines[1], "on 2 nodes") {
		t.Errorf("list:\n%s", stdout.String())
	}
}

func TestBanCommandNoServer(t *testing.T) {
	var stdout, stderr bytes.Buffer
	sock := filepath.Join(t.TempDir(), "control.sock")
	if code := run([]string{"ban", "list", "--socket", sock}, nil, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "cannot reach the server at "+sock+": is the server running?") {
		t.Errorf("exit %d, stderr: %s", code, stderr.String())
	}
}
