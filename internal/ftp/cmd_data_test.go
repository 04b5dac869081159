package ftp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
)

// failingSource is a passive address source that cannot answer.
type failingSource struct{}

func (failingSource) PassiveAddr(context.Context, netip.Addr) (netip.Addr, error) {
	return netip.Addr{}, errors.New("metadata service down")
}
func (failingSource) String() string { return "failing" }

func passiveRule(src netpolicy.AddressSource) func(*Config) {
	return func(c *Config) {
		c.Network.Rules = []netpolicy.Rule{{Clients: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}, Source: src}}
	}
}

// TestPassive covers PASV and EPSV (RFC 959, RFC 2428): the replies, a
// transfer over each, EPSV ALL, and the 425s when no port or address can
// be had.
func TestPassive(t *testing.T) {
	t.Parallel()
	files := map[string]string{"alice/f": "data"}
	runScripts(t, []scriptCase{
		{name: "PASV and EPSV replies", files: files, steps: []step{
			{"PASV", 227, "Entering Passive Mode (127,0,0,1,"},
			{"EPSV", 229, "Entering Extended Passive Mode (|||"},
			{"EPSV 1", 229, ""},
			{"EPSV 2", 522, "use (1)"},
			{"EPSV 3", 501, "EPSV takes 1, 2 or ALL."},
		}},
		{name: "EPSV ALL", files: files, steps: []step{
			{"EPSV ALL", 200, "only EPSV"},
			{"PASV", 501, "not allowed after EPSV ALL"},
			{"PORT 127,0,0,1,4,1", 501, "not allowed after EPSV ALL"},
			{"EPRT |1|127.0.0.1|1025|", 501, "not allowed after EPSV ALL"},
			{"EPSV", 229, ""},
		}},
		{name: "PASV to an IPv6 client", opts: harnessOpts{client: netip.MustParseAddr("::1")}, steps: []step{
			{"PASV", 425, "use EPSV"},
		}},
		{name: "passive address unknown", opts: harnessOpts{config: passiveRule(failingSource{})}, steps: []step{
			{"PASV", 425, "Cannot determine the passive address; use EPSV."},
			{"EPSV", 229, ""}, // EPSV carries no address
		}},
		{name: "passive address is IPv6", opts: harnessOpts{config: passiveRule(netpolicy.StaticAddress(netip.MustParseAddr("2001:db8::1")))}, steps: []step{
			{"PASV", 425, "not IPv4"},
		}},
		{name: "PASV advertises the rule's address", opts: harnessOpts{config: passiveRule(netpolicy.StaticAddress(netip.MustParseAddr("198.51.100.7")))}, steps: []step{
			{"PASV", 227, "(198,51,100,7,"},
		}},
		{name: "no data connection requested", files: files, steps: []step{
			{"RETR f", 425, "Use PASV, EPSV, PORT or EPRT before RETR."},
			{"LIST", 425, ""},
		}},
	})
}

// TestPassiveTransfers: a download works over PASV and EPSV, and each
// reservation carries one transfer.
func TestPassiveTransfers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.put("alice/f", "data")
	h.login()
	addr := h.pasv()
	if r := h.xferWith("RETR f", nil, func() net.Conn { return h.dial(addr) }); r.code != 226 || r.data != "data" {
		t.Errorf("RETR over PASV: %d %q, data %q", r.code, r.msg, r.data)
	}
	if got := h.retr("f"); got != "data" {
		t.Errorf("RETR over EPSV: %q", got)
	}
	h.expect(425, "RETR f") // the reservation was used up
}

// TestPassiveDataTimeout: a client that never opens the data connection
// gets 425 after DataTimeout, and the session goes on.
func TestPassiveDataTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{config: func(c *Config) { c.DataTimeout = 30 * time.Millisecond }})
	h.put("alice/f", "data")
	h.login()
	h.epsv()
	h.expect(150, "RETR f")
	if msg := h.expectReply(425); !strings.Contains(msg, "timed out") {
		t.Errorf("data timeout reply %q", msg)
	}
	h.expect(200, "NOOP")
}

// TestPassivePortsBusy: with every port of the range waiting for the same
// client address, PASV and EPSV answer 425.
func TestPassivePortsBusy(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	pool, err := netpolicy.NewPortPool(netip.MustParseAddr("127.0.0.1"), port, port, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	r, err := pool.Reserve(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", port, err)
	}
	defer r.Release()
	h := newHarness(t, harnessOpts{config: func(c *Config) { c.Network.Ports = pool }})
	h.login()
	h.script(
		step{"PASV", 425, "All passive ports are busy"},
		step{"EPSV", 425, "All passive ports are busy"},
	)
}

// TestActive covers PORT and EPRT: a transfer the server connects for,
// bounce protection (only the client's address, no privileged port), the
// syntax, and active mode switched off.
func TestActive(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "syntax", steps: []step{
			{"PORT 127,0,0,1,4", 501, "Bad PORT argument"},
			{"PORT 127,0,0,1,4,256", 501, "Bad PORT argument"},
			{"PORT 127,0,0,1,0,0", 501, "Bad PORT argument"},
			{"PORT a,b,c,d,e,f", 501, "Bad PORT argument"},
			{"EPRT |1|127.0.0.1|", 501, "Bad EPRT argument"},
			{"EPRT |1|::1|1025|", 501, "Bad EPRT argument"},
			{"EPRT |2|127.0.0.1|1025|", 501, "Bad EPRT argument"},
			{"EPRT |1|127.0.0.1|0|", 501, "Bad EPRT argument"},
			{"EPRT |1|127.0.0.1|70000|", 501, "Bad EPRT argument"},
			{"EPRT |1|fe80::1%eth0|1025|", 501, "Bad EPRT argument"},
			{"EPRT 127.0.0.1", 501, "Bad EPRT argument"},
			{"EPRT |3|127.0.0.1|1025|", 522, "use (1,2)"},
		}},
		{name: "bounce protection", steps: []step{
			{"PORT 198,51,100,1,4,1", 501, "may only go to your own address"},
			{"PORT 127,0,0,1,0,21", 501, "unprivileged port"},
			{"EPRT |1|198.51.100.1|1025|", 501, "may only go to your own address"},
			{"EPRT |2|::1|1025|", 501, ""},
			{"EPRT |1|127.0.0.1|1023|", 501, ""},
		}},
		{name: "active mode disabled", opts: harnessOpts{config: func(c *Config) { c.Network.ActiveAllowed = false }}, steps: []step{
			{"PORT 127,0,0,1,4,1", 502, "use passive mode"},
			{"EPRT |1|127.0.0.1|1025|", 502, "use passive mode"},
		}},
	})
}

// TestActiveTransfers: after PORT or EPRT the server connects back for
// the transfer; a port nobody listens on gives 425 after the 150.
func TestActiveTransfers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.put("alice/f", "data")
	h.login()
	port, accept := h.active()
	h.expect(200, fmt.Sprintf("PORT 127,0,0,1,%d,%d", port>>8, port&0xff))
	if r := h.xferWith("RETR f", nil, accept); r.code != 226 || r.data != "data" {
		t.Errorf("RETR after PORT: %d %q, data %q", r.code, r.msg, r.data)
	}
	port, accept = h.active()
	h.expect(200, fmt.Sprintf("EPRT |1|127.0.0.1|%d|", port))
	up := "uploaded"
	if r := h.xferWith("STOR g", &up, accept); r.code != 226 {
		t.Errorf("STOR after EPRT: %d %q", r.code, r.msg)
	}
	if got := h.file("alice/g"); got != up {
		t.Errorf("uploaded %q", got)
	}

	// Nobody listens on the port any more.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	h.expect(200, fmt.Sprintf("EPRT |1|127.0.0.1|%d|", dead))
	h.expect(150, "RETR f")
	if msg := h.expectReply(425); !strings.Contains(msg, "Cannot open data connection") {
		t.Errorf("failed active connection: %q", msg)
	}

	// PASV after PORT wins, and PORT after PASV gives the port back.
	port, _ = h.active()
	h.expect(200, fmt.Sprintf("PORT 127,0,0,1,%d,%d", port>>8, port&0xff))
	addr := h.pasv()
	if r := h.xferWith("RETR f", nil, func() net.Conn { return h.dial(addr) }); r.code != 226 {
		t.Errorf("RETR over PASV after PORT: %d %q", r.code, r.msg)
	}
}

// TestTransferParameters covers TYPE, STRU and MODE: what is supported
// gets 200, what RFC 959 defines but cloudftpd does not do 504, and
// anything else 501. They are allowed before login.
func TestTransferParameters(t *testing.T) {
	t.Parallel()
	runScripts(t, []scriptCase{
		{name: "TYPE", user: "-", steps: []step{
			{"TYPE I", 200, "Binary"},
			{"TYPE A", 200, "ASCII"},
			{"TYPE a n", 200, "ASCII"},
			{"TYPE L 8", 200, "Binary"},
			{"TYPE L8", 200, "Binary"},
			{"TYPE i", 200, "Binary"},
			{"TYPE A T", 504, "not supported"},
			{"TYPE A C", 504, ""},
			{"TYPE E", 504, ""},
			{"TYPE L 7", 504, ""},
			{"TYPE I X", 501, "Unknown TYPE"},
			{"TYPE X", 501, "Unknown TYPE"},
			{"TYPE  ", 501, ""},
		}},
		{name: "STRU", user: "-", steps: []step{
			{"STRU F", 200, "Structure set to F."},
			{"STRU f", 200, ""},
			{"STRU R", 504, "Only STRU F"},
			{"STRU P", 504, ""},
			{"STRU X", 501, "Unknown STRUcture."},
		}},
		{name: "MODE", user: "-", steps: []step{
			{"MODE S", 200, "Mode set to S."},
			{"MODE s", 200, ""},
			{"MODE B", 504, "Only MODE S"},
			{"MODE C", 504, ""},
			{"MODE Z", 504, ""},
			{"MODE X", 501, "Unknown MODE."},
		}},
	})
}
