package ftp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
)

// reservePassive reserves a passive port for this client, replying 425
// when none is free.
func (s *Session) reservePassive() (*netpolicy.Reservation, bool) {
	s.active = netip.AddrPort{}
	s.releasePassive() // never hold two reservations
	r, err := s.cfg.Network.Ports.Reserve(s.client)
	if err != nil {
		if errors.Is(err, netpolicy.ErrNoPorts) {
			s.cfg.metrics().PassivePortsExhausted()
			s.reply(425, "All passive ports are busy for your address; try again shortly.")
		} else {
			s.log.Error("passive socket", "err", err)
			s.reply(425, "Cannot open a passive port.")
		}
		return nil, false
	}
	return r, true
}

func (s *Session) cmdPASV(string) {
	if s.epsvAll {
		s.reply(501, "PASV not allowed after EPSV ALL.")
		return
	}
	if !s.client.Is4() {
		s.reply(425, "PASV cannot carry an IPv6 address; use EPSV.")
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	addr, err := s.cfg.Network.PassiveAddr(ctx, s.client, s.local)
	cancel()
	if err != nil {
		s.log.Error("passive address", "err", err)
		s.reply(425, "Cannot determine the passive address; use EPSV.")
		return
	}
	if !addr.Is4() {
		s.reply(425, "The passive address is not IPv4; use EPSV.")
		return
	}
	if netpolicy.NeedsWarning(s.client, addr) {
		s.cfg.metrics().PrivatePASVAddress()
		if !s.warnedNAT { // the log says it once per session, the counter every time
			s.warnedNAT = true
			s.log.Warn("PASV reply carries a private address to a public client: the client will not reach it. "+
				"Add a [[listener.passive]] rule with the public address (address = \"<elastic IP>\" or \"aws\") for clients = [\"0.0.0.0/0\"]",
				"advertised", addr.String())
		}
	}
	r, ok := s.reservePassive()
	if !ok {
		return
	}
	s.setPassive(r)
	a := addr.As4()
	p := s.cfg.Network.AdvertisedPort(s.client, r.Port())
	s.pasvSent = netip.AddrPortFrom(addr, p)
	s.reply(227, fmt.Sprintf("Entering Passive Mode (%d,%d,%d,%d,%d,%d).", a[0], a[1], a[2], a[3], p>>8, p&0xff))
}

func (s *Session) cmdEPSV(arg string) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "":
	case "ALL":
		s.epsvAll = true
		s.reply(200, "EPSV ALL ok: only EPSV will be accepted from now on.")
		return
	case "1":
		if !s.local.Is4() {
			s.reply(522, "Network protocol not supported, use (2)")
			return
		}
	case "2":
		if !s.local.Is6() {
			s.reply(522, "Network protocol not supported, use (1)")
			return
		}
	default:
		s.reply(501, "EPSV takes 1, 2 or ALL.")
		return
	}
	r, ok := s.reservePassive()
	if !ok {
		return
	}
	s.setPassive(r)
	s.reply(229, fmt.Sprintf("Entering Extended Passive Mode (|||%d|)", s.cfg.Network.AdvertisedPort(s.client, r.Port())))
}

// setActive validates an active-mode target and records it.
func (s *Session) setActive(target netip.AddrPort, verb string) {
	if !s.cfg.Network.ActiveAllowed {
		s.reply(502, "Active mode is disabled on this server; use passive mode (PASV or EPSV).")
		return
	}
	if s.epsvAll {
		s.reply(501, verb+" not allowed after EPSV ALL.")
		return
	}
	if err := netpolicy.CheckActiveTarget(s.client, target); err != nil {
		s.log.Warn("active-mode target refused", "target", target.String(), "err", err)
		s.reply(501, verb+" refused: data connections may only go to your own address and an unprivileged port.")
		return
	}
	s.releasePassive()
	s.active = target
	s.reply(200, verb+" command successful. Consider using PASV or EPSV.")
}

func (s *Session) cmdPORT(arg string) {
	target, err := parsePORT(arg)
	if err != nil {
		s.reply(501, "Bad PORT argument; want h1,h2,h3,h4,p1,p2.")
		return
	}
	s.setActive(target, "PORT")
}

func (s *Session) cmdEPRT(arg string) {
	target, err := parseEPRT(arg)
	if errors.Is(err, errEPRTProto) {
		s.reply(522, "Network protocol not supported, use (1,2)")
		return
	}
	if err != nil {
		s.reply(501, "Bad EPRT argument; want |1|a.b.c.d|port| or |2|ipv6|port|.")
		return
	}
	s.setActive(target, "EPRT")
}

// parsePORT parses "h1,h2,h3,h4,p1,p2".
func parsePORT(arg string) (netip.AddrPort, error) {
	parts := strings.Split(strings.TrimSpace(arg), ",")
	if len(parts) != 6 {
		return netip.AddrPort{}, errors.New("want six numbers")
	}
	var n [6]byte
	for i, p := range parts {
		v, err := strconv.ParseUint(strings.TrimSpace(p), 10, 8)
		if err != nil {
			return netip.AddrPort{}, err
		}
		n[i] = byte(v)
	}
	port := uint16(n[4])<<8 | uint16(n[5])
	if port == 0 {
		return netip.AddrPort{}, errors.New("port 0")
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(n[:4])), port), nil
}

var errEPRTProto = errors.New("unsupported EPRT network protocol")

// parseEPRT parses RFC 2428 "<d><proto><d><addr><d><port><d>".
func parseEPRT(arg string) (netip.AddrPort, error) {
	arg = strings.TrimSpace(arg)
	if len(arg) < 7 {
		return netip.AddrPort{}, errors.New("too short")
	}
	d := arg[0]
	if d < 33 || d > 126 {
		return netip.AddrPort{}, errors.New("bad delimiter")
	}
	f := strings.Split(arg, string(d))
	if len(f) != 5 || f[0] != "" || f[4] != "" {
		return netip.AddrPort{}, errors.New("want four delimiters")
	}
	if f[1] != "1" && f[1] != "2" {
		return netip.AddrPort{}, errEPRTProto
	}
	addr, err := netip.ParseAddr(f[2])
	if err != nil || addr.Zone() != "" {
		return netip.AddrPort{}, errors.New("bad address")
	}
	switch f[1] {
	case "1":
		if !addr.Is4() {
			return netip.AddrPort{}, errors.New("protocol 1 needs an IPv4 address")
		}
	case "2":
		if !addr.Is6() {
			return netip.AddrPort{}, errors.New("protocol 2 needs an IPv6 address")
		}
	}
	port, err := strconv.ParseUint(f[3], 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, errors.New("bad port")
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
