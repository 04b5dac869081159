package ftp

import (
	"fmt"
	"sort"
	"strings"
)

func (s *Session) cmdSYST(string) { s.reply(215, "UNIX Type: L8") }

func (s *Session) cmdNOOP(string) { s.reply(200, "NOOP ok.") }

func (s *Session) cmdALLO(string) {
	s.reply(202, "ALLO not needed; space is allocated as data arrives.")
}

// features is the FEAT list (RFC 2389): every extension a client may use.
var features = []string{
	"EPRT",
	"EPSV",
	"HASH", // with the algorithms: hashFeat
	"MDTM",
	"MFMT",
	"MLST " + allFacts.feat(),
	"PASV",
	"REST STREAM",
	"SIZE",
	"TVFS",
	"UTF8",
}

func (s *Session) cmdFEAT(string) {
	lines := make([]string, 0, len(features)+6)
	lines = append(lines, "Features:")
	if s.cfg.TLS.Config != nil {
		lines = append(lines, "AUTH TLS", "AUTH SSL", "PBSZ", "PROT")
		if s.cfg.TLS.AllowCCC {
			lines = append(lines, "CCC")
		}
	}
	for _, f := range features {
		switch {
		case strings.HasPrefix(f, "MLST "):
			f = "MLST " + s.mlstFacts.featMarked()
		case f == "HASH":
			f = s.hashFeat()
		}
		lines = append(lines, f)
	}
	lines = append(lines, "End")
	s.writeReply(Reply{Code: 211, Lines: lines})
}

func (s *Session) cmdOPTS(arg string) {
	name, val, _ := strings.Cut(arg, " ")
	switch strings.ToUpper(name) {
	case "UTF8", "UTF-8":
		// Paths are UTF-8 always (RFC 2640); accept the switch so that
		// clients which insist on sending it proceed.
		switch strings.ToUpper(strings.TrimSpace(val)) {
		case "ON", "":
			s.reply(200, "UTF8 mode enabled.")
		case "OFF":
			s.reply(200, "UTF8 mode disabled; paths are still exchanged as sent.")
		default:
			s.reply(501, "OPTS UTF8 takes ON or OFF.")
		}
	case "MLST":
		s.mlstFacts = parseFacts(val)
		s.reply(200, "MLST OPTS "+s.mlstFacts.String())
	case "HASH":
		s.optsHash(val)
	default:
		s.reply(501, "Unknown option.")
	}
}

func (s *Session) cmdHELP(arg string) {
	if arg != "" {
		if c, ok := commands[strings.ToUpper(arg)]; ok {
			s.reply(214, "Syntax: "+c.help)
			return
		}
		s.reply(502, "Unknown command "+truncate(arg, 16)+".")
		return
	}
	verbs := make([]string, 0, len(commands))
	for v := range commands {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	lines := []string{"The following commands are recognized:"}
	for i := 0; i < len(verbs); i += 10 {
		j := min(i+10, len(verbs))
		lines = append(lines, strings.Join(verbs[i:j], " "))
	}
	lines = append(lines, "Help OK.")
	s.writeReply(Reply{Code: 214, Lines: lines})
}

// cmdSTAT without an argument reports the session's state (also during a
// transfer); with a path it lists that path over the control connection.
func (s *Session) cmdSTAT(arg string) {
	if arg == "" {
		lines := []string{"cloudftpd status:", "Connected from " + s.client.String()}
		if s.user != nil {
			lines = append(lines, "Logged in as "+s.user.Name)
		} else {
			lines = append(lines, "Not logged in")
		}
		typ := "ASCII"
		switch {
		case s.binary:
			typ = "BINARY"
		case s.binaryOnly():
			typ = "ASCII (files are transferred unchanged: binary-only)"
		}
		lines = append(lines, "TYPE: "+typ+", STRUcture: File, MODE: Stream")
		if s.pasvSent.IsValid() {
			// Written unlike a 227 reply on purpose: a firewall's FTP
			// helper (an ALG) that rewrites PASV replies leaves this
			// line alone, so a client (cloudftpd probe) can compare what
			// the server sent with what reached it.
			lines = append(lines, fmt.Sprintf("Last PASV reply sent: address %s port %d", s.pasvSent.Addr(), s.pasvSent.Port()))
		}
		if x := s.currentTransfer(); x != nil {
			lines = append(lines, fmt.Sprintf("Transfer in progress: %s %s, %d bytes so far", x.verb, x.path, x.bytes.Load()))
		} else {
			lines = append(lines, "No data connection")
		}
		lines = append(lines, "End of status")
		s.writeReply(Reply{Code: 211, Lines: lines})
		return
	}
	if s.user == nil {
		s.reply(530, "Please log in with USER and PASS first.")
		return
	}
	if s.transferRunning() {
		s.reply(450, "A transfer is running; STAT <path> must wait for it.")
		return
	}
	s.statPath(arg)
}

func (s *Session) cmdTYPE(arg string) {
	f := strings.Fields(strings.ToUpper(arg))
	switch {
	case len(f) == 0:
		s.reply(501, "TYPE needs an argument.")
	case f[0] == "I" && len(f) == 1:
		s.binary = true
		s.reply(200, "Switching to Binary mode.")
	case f[0] == "A" && (len(f) == 1 || (len(f) == 2 && f[1] == "N")):
		s.binary = false
		if s.binaryOnly() {
			s.reply(200, "TYPE A accepted, but this server transfers files unchanged (binary only).")
			break
		}
		s.reply(200, "Switching to ASCII mode.")
	case f[0] == "L8" || (f[0] == "L" && len(f) == 2 && f[1] == "8"):
		s.binary = true
		s.reply(200, "Switching to Binary mode (L 8).")
	case f[0] == "A" || f[0] == "E" || f[0] == "L":
		s.reply(504, "TYPE "+truncate(arg, 8)+" is not supported; use A or I.")
	default:
		s.reply(501, "Unknown TYPE "+truncate(arg, 8)+".")
	}
}

func (s *Session) cmdMODE(arg string) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "S":
		s.reply(200, "Mode set to S.")
	case "B", "C", "Z":
		s.reply(504, "Only MODE S (stream) is supported.")
	default:
		s.reply(501, "Unknown MODE.")
	}
}

func (s *Session) cmdSTRU(arg string) {
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "F":
		s.reply(200, "Structure set to F.")
	case "R", "P":
		s.reply(504, "Only STRU F (file) is supported.")
	default:
		s.reply(501, "Unknown STRUcture.")
	}
}
