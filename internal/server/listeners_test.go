package server_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// TestSeveralListeners runs two listeners in one process, each with its own
// passive rules, port range and active-mode policy: the "two vsftpd
// configs" case in one server.
func TestSeveralListeners(t *testing.T) {
	partners, staff := clienttest.FreeRange(t, 3), ""
	for staff == "" || staff == partners {
		staff = clienttest.FreeRange(t, 3)
	}
	off := false
	ts := startServer(t, func(c *config.Config) {
		c.Listeners = []config.Listener{
			{ // "internet" listener: public address in PASV, passive only
				Address:      "127.0.0.1:0",
				PassivePorts: partners,
				ActiveMode:   &off,
				Passive:      []config.PassiveRule{{Clients: []string{"0.0.0.0/0"}, Address: "127.0.0.1"}},
			},
			{ // "VPN" listener: the control address, active mode allowed
				Address:      "127.0.0.1:0",
				PassivePorts: staff,
				Passive:      []config.PassiveRule{{Clients: []string{"10.0.0.0/8"}, Address: "198.51.100.10"}},
			},
		}
	})
	addrs := ts.srv.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("%d listeners open, want 2", len(addrs))
	}
	inRange := func(port uint16, r string) bool {
		lo, hi, _ := config.ParsePortRange(r)
		return port >= lo && port <= hi
	}
	ts.write("alice/f", []byte("both"))
	for i, tc := range []struct {
		portRange string
		active    int
	}{{partners, 502}, {staff, 200}} {
		rc := dialRaw(t, addrs[i].String())
		rc.login("alice", "alice-secret")
		msg := rc.must(227, "PASV")
		ap := parse227(t, msg)
		if ap.Addr() != netip.MustParseAddr("127.0.0.1") || !inRange(ap.Port(), tc.portRange) {
			t.Errorf("listener %d: PASV %v, want 127.0.0.1 in %s", i, ap, tc.portRange)
		}
		code, text := rc.cmd("PORT 127,0,0,1,200,1")
		if code != tc.active {
			t.Errorf("listener %d: PORT got %d %q, want %d", i, code, text, tc.active)
		}
		if code == 502 && !strings.Contains(text, "PASV") {
			t.Errorf("disabled active mode does not point to passive mode: %q", text)
		}
		code, _ = rc.cmd("EPRT |1|127.0.0.1|51201|")
		if code != tc.active {
			t.Errorf("listener %d: EPRT got %d, want %d", i, code, tc.active)
		}
		dc := rc.epsv()
		rc.must(150, "RETR f")
		if got := string(readAll(t, dc)); got != "both" {
			t.Errorf("listener %d: RETR %q", i, got)
		}
		rc.expect(226)
	}
}
