// Package nattest holds end-to-end network tests that rebuild the problem
// cloudftpd exists to solve: an FTP server behind 1:1 NAT, as on an EC2
// instance with an Elastic IP, reached both from the internet and over a VPN.
//
// The tests (in the _test.go files; the package has no other code) build
// the network out of Linux network namespaces, veth pairs and iptables,
// never touching the host's own interfaces, routes or firewall:
//
//	inet 203.0.113.20 --- rtr: 203.0.113.1, owns the "Elastic IP" 198.51.100.10,
//	                      |    DNAT 198.51.100.10 -> 10.77.0.10, SNAT back,
//	                      |    drops unNATed internet traffic to 10.77.0.0/16
//	vpn  10.77.1.20 ----- rtr: 10.77.1.1, routes to srv without NAT
//	                      |
//	srv  10.77.0.10 ----- rtr: 10.77.0.1 (srv's default route)
//
// They build the real cloudftpd binary, run it in the srv namespace, and
// drive it from the inet and vpn namespaces with real clients (Python's
// ftplib, inetutils-ftp, curl, lftp), each told to use the address in the
// PASV reply rather than guessing. They check that passive-address rules
// give each side an address it can reach, that a server without rules
// fails the way classic servers fail on EC2 ("login works, ls hangs") and
// says so in its log, that EPSV works either way, and that active mode
// keeps its bounce protection.
//
// They need root, ip (iproute2), iptables and the client programs. When
// something is missing they are skipped, except with CI=true, where they
// fail with the reason.
package nattest
