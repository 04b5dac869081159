// Command cloudftpd is an FTP server for machines behind NAT, with local or
// S3 storage. Run "cloudftpd help" for its commands.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `cloudftpd - FTP server for clouds and NAT

Usage:
  cloudftpd serve [--config FILE]      run the server (built-in demo defaults without a config)
  cloudftpd init [--dir DIR] [--force] [--system]
                                       write a commented config and an empty users file
  cloudftpd user add|set|passwd|del|list
                                       manage users and their limits (see "cloudftpd user help")
  cloudftpd db migrate [--config FILE] create or migrate the PostgreSQL schema of auth.store = "postgres"
  cloudftpd cert self-signed --host NAME [--host NAME2] [--cert FILE] [--key FILE] [--days N]
  cloudftpd check-config [--config FILE]
  cloudftpd doctor [--config FILE]     check the config against this machine (storage, ports, certificates, PASV addresses)
  cloudftpd probe [--user NAME] [--tls MODE] HOST[:PORT]|URL
                                       diagnose a server from a client's side (PASV behind NAT, firewalls, TLS)
  cloudftpd ban list|add|remove        a running server's bans (see "cloudftpd ban help")
  cloudftpd sessions [--kill ID]       a running server's sessions, or end one (see "cloudftpd sessions --help")
  cloudftpd reload                     make a running server re-read its config, as SIGHUP does
  cloudftpd api token add|list|del    tokens of the operations API (see "cloudftpd api help")
  cloudftpd admin add|passwd|del|list console accounts of the operations API (see "cloudftpd admin help")
  cloudftpd quota scan USER [--config FILE]  recompute a user's quota usage (see "cloudftpd quota help")
  cloudftpd import vsftpd [--merge] [--discover] --out DIR FILE...
                                       write cloudftpd.toml and users.toml from vsftpd.conf files, with a report
  cloudftpd firewall [--config FILE] --format aws-cli|cloudformation|terraform|nftables|iptables|ufw|firewalld
                                       print the inbound rules the config needs
  cloudftpd version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		ctx, stop := signalContext()
		defer stop()
		return runServe(ctx, args[1:], stdout, stderr)
	case "init":
		return runInit(args[1:], stdout, stderr)
	case "user":
		return runUser(args[1:], stdin, stdout, stderr)
	case "db":
		ctx, stop := signalContext()
		defer stop()
		return runDB(ctx, args[1:], stdout, stderr)
	case "cert":
		return runCert(args[1:], stdout, stderr)
	case "ban":
		return runBan(args[1:], stdout, stderr)
	case "sessions":
		return runSessions(args[1:], false, stdout, stderr)
	case "reload":
		return runSessions(args[1:], true, stdout, stderr)
	case "api":
		return runAPI(args[1:], stdout, stderr)
	case "admin":
		return runAdmin(args[1:], stdin, stdout, stderr)
	case "quota":
		ctx, stop := signalContext()
		defer stop()
		return runQuota(ctx, args[1:], stdout, stderr)
	case "import":
		return runImport(args[1:], stdout, stderr)
	case "firewall":
		return runFirewall(args[1:], stdout, stderr)
	case "check-config":
		ctx, stop := signalContext()
		defer stop()
		return runCheckConfig(ctx, args[1:], stdout, stderr)
	case "doctor":
		ctx, stop := signalContext()
		defer stop()
		return runDoctor(ctx, args[1:], stdout, stderr)
	case "probe":
		ctx, stop := signalContext()
		defer stop()
		return runProbe(ctx, args[1:], stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cloudftpd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
