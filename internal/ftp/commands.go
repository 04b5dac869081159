package ftp

// argPolicy says whether a command takes an argument.
type argPolicy uint8

const (
	argOptional argPolicy = iota
	argRequired
	argNone
)

// command is one row of the command table.
type command struct {
	handler func(s *Session, arg string)
	// beforeLogin commands may run before USER/PASS succeed.
	beforeLogin bool
	// duringTransfer commands run while a transfer is in progress instead
	// of waiting for it to finish.
	duringTransfer bool
	argument       argPolicy
	help           string
}

// commands is the command table, grouped as in RFC 959 section 4.1 and the
// extensions that followed. It is never modified after init.
var commands map[string]*command

func init() {
	commands = map[string]*command{
		// Access control (RFC 959 4.1.1).
		"USER": {handler: (*Session).cmdUSER, beforeLogin: true, argument: argRequired, help: "USER <name>"},
		"PASS": {handler: (*Session).cmdPASS, beforeLogin: true, help: "PASS <password>"},
		"ACCT": {handler: (*Session).cmdACCT, beforeLogin: true, help: "ACCT <account> (not needed)"},
		"CWD":  {handler: (*Session).cmdCWD, argument: argRequired, help: "CWD <path>"},
		"XCWD": {handler: (*Session).cmdCWD, argument: argRequired, help: "XCWD <path>"},
		"CDUP": {handler: (*Session).cmdCDUP, argument: argNone, help: "CDUP"},
		"XCUP": {handler: (*Session).cmdCDUP, argument: argNone, help: "XCUP"},
		"REIN": {handler: (*Session).cmdREIN, beforeLogin: true, argument: argNone, help: "REIN"},
		"QUIT": {handler: (*Session).cmdQUIT, beforeLogin: true, duringTransfer: true, help: "QUIT"},

		// Transfer parameters (4.1.2, RFC 2428).
		"PORT": {handler: (*Session).cmdPORT, argument: argRequired, help: "PORT h1,h2,h3,h4,p1,p2"},
		"EPRT": {handler: (*Session).cmdEPRT, argument: argRequired, help: "EPRT |proto|addr|port|"},
		"PASV": {handler: (*Session).cmdPASV, argument: argNone, help: "PASV"},
		"EPSV": {handler: (*Session).cmdEPSV, help: "EPSV [1|2|ALL]"},
		"TYPE": {handler: (*Session).cmdTYPE, beforeLogin: true, argument: argRequired, help: "TYPE A|I|L 8"},
		"STRU": {handler: (*Session).cmdSTRU, beforeLogin: true, argument: argRequired, help: "STRU F"},
		"MODE": {handler: (*Session).cmdMODE, beforeLogin: true, argument: argRequired, help: "MODE S"},

		// Service commands (4.1.3).
		"RETR": {handler: (*Session).cmdRETR, argument: argRequired, help: "RETR <file>"},
		"STOR": {handler: (*Session).cmdSTOR, argument: argRequired, help: "STOR <file>"},
		"STOU": {handler: (*Session).cmdSTOU, help: "STOU [<name>]"},
		"APPE": {handler: (*Session).cmdAPPE, argument: argRequired, help: "APPE <file>"},
		"ALLO": {handler: (*Session).cmdALLO, help: "ALLO <bytes>"},
		"REST": {handler: (*Session).cmdREST, argument: argRequired, help: "REST <offset>"},
		"RNFR": {handler: (*Session).cmdRNFR, argument: argRequired, help: "RNFR <path>"},
		"RNTO": {handler: (*Session).cmdRNTO, argument: argRequired, help: "RNTO <path>"},
		"ABOR": {handler: (*Session).cmdABOR, duringTransfer: true, argument: argNone, help: "ABOR"},
		"DELE": {handler: (*Session).cmdDELE, argument: argRequired, help: "DELE <file>"},
		"RMD":  {handler: (*Session).cmdRMD, argument: argRequired, help: "RMD <dir>"},
		"XRMD": {handler: (*Session).cmdRMD, argument: argRequired, help: "XRMD <dir>"},
		"MKD":  {handler: (*Session).cmdMKD, argument: argRequired, help: "MKD <dir>"},
		"XMKD": {handler: (*Session).cmdMKD, argument: argRequired, help: "XMKD <dir>"},
		"PWD":  {handler: (*Session).cmdPWD, argument: argNone, help: "PWD"},
		"XPWD": {handler: (*Session).cmdPWD, argument: argNone, help: "XPWD"},
		"LIST": {handler: (*Session).cmdLIST, help: "LIST [<path>]"},
		"NLST": {handler: (*Session).cmdNLST, help: "NLST [<path>]"},
		"SITE": {handler: (*Session).cmdSITE, argument: argRequired, help: "SITE HELP|CHMOD <mode> <path>"},
		"SYST": {handler: (*Session).cmdSYST, beforeLogin: true, argument: argNone, help: "SYST"},
		"STAT": {handler: (*Session).cmdSTAT, beforeLogin: true, duringTransfer: true, help: "STAT [<path>]"},
		"HELP": {handler: (*Session).cmdHELP, beforeLogin: true, help: "HELP [<command>]"},
		"NOOP": {handler: (*Session).cmdNOOP, beforeLogin: true, duringTransfer: true, help: "NOOP"},

		// Security extensions: RFC 2228, RFC 4217 (FTPS).
		"AUTH": {handler: (*Session).cmdAUTH, beforeLogin: true, argument: argRequired, help: "AUTH TLS"},
		"PBSZ": {handler: (*Session).cmdPBSZ, beforeLogin: true, argument: argRequired, help: "PBSZ 0"},
		"PROT": {handler: (*Session).cmdPROT, beforeLogin: true, argument: argRequired, help: "PROT P|C"},
		"CCC":  {handler: (*Session).cmdCCC, argument: argNone, help: "CCC"},

		// Extensions: RFC 2389 (FEAT, OPTS), RFC 3659 (SIZE, MDTM, MLST,
		// MLSD, REST STREAM), draft-somers-ftp-mfxx (MFMT).
		"FEAT": {handler: (*Session).cmdFEAT, beforeLogin: true, argument: argNone, help: "FEAT"},
		"OPTS": {handler: (*Session).cmdOPTS, beforeLogin: true, argument: argRequired, help: "OPTS UTF8 ON|MLST <facts>|HASH [<algorithm>]"},
		"SIZE": {handler: (*Session).cmdSIZE, argument: argRequired, help: "SIZE <file>"},
		"MDTM": {handler: (*Session).cmdMDTM, argument: argRequired, help: "MDTM [<YYYYMMDDHHMMSS>] <file>"},
		"MFMT": {handler: (*Session).cmdMFMT, argument: argRequired, help: "MFMT <YYYYMMDDHHMMSS> <path>"},
		"MLST": {handler: (*Session).cmdMLST, help: "MLST [<path>]"},
		"MLSD": {handler: (*Session).cmdMLSD, help: "MLSD [<dir>]"},

		// Checksums: draft-bryan-ftpext-hash-02 (HASH, OPTS HASH), and
		// the X commands of ProFTPD's mod_digest and Serv-U.
		"HASH":    {handler: (*Session).cmdHASH, argument: argRequired, help: "HASH <file> (algorithm: OPTS HASH)"},
		"XSHA256": {handler: (*Session).cmdXSHA256, argument: argRequired, help: "XSHA256 <file>"},
		"XSHA1":   {handler: (*Session).cmdXSHA1, argument: argRequired, help: "XSHA1 <file>"},
		"XMD5":    {handler: (*Session).cmdXMD5, argument: argRequired, help: "XMD5 <file>"},
		"XCRC":    {handler: (*Session).cmdXCRC, argument: argRequired, help: "XCRC <file>"},
	}
}
