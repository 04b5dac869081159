// Package hatest holds the end-to-end test of several cloudftpd nodes
// behind a load balancer: the setup docs/ha.md describes, rebuilt out of
// Linux network namespaces on one machine.
//
//	cli  203.0.113.20 (partner), 203.0.113.66 (attacker)
//	 |
//	rtr  203.0.113.1; DNAT 198.51.100.10 -> lb, 198.51.100.1N -> node N
//	 |   (the balancer's and each node's "Elastic IP", as on EC2)
//	 |   bridge 10.88.0.1/24, with relays to PostgreSQL and versitygw
//	 +-- lb   10.88.0.10  HAProxy: control port 21, PROXY v2 to the nodes,
//	 |                    health check GET /healthz on each node's :9121
//	 +-- n1   10.88.0.11  cloudftpd, PASV address 198.51.100.11
//	 +-- n2   10.88.0.12  cloudftpd, PASV address 198.51.100.12
//	 +-- n3   10.88.0.13  cloudftpd, PASV address 198.51.100.13
//
// The control connection goes through the balancer; the data connection
// goes straight to the node that holds it, at the address in its PASV
// reply. All nodes share one S3 bucket (versitygw, internal/s3test) and
// one PostgreSQL database (internal/pgtest) holding the users
// (auth.store = "postgres"). PostgreSQL and versitygw run in the test's
// own network namespace on loopback; the test process relays their ports
// into the rtr namespace (10.88.0.1), where the nodes reach them as they
// would reach RDS and an S3 VPC endpoint.
//
// The nodes are real cloudftpd processes built by the test, so that they
// can be stopped with SIGTERM (a drain) or killed with SIGKILL (a crash);
// the clients are curl and jlaffaye/ftp, the latter dialing from inside
// the cli namespace (setns on a locked thread, see netns_test.go).
//
// The test needs root, ip (iproute2), iptables, haproxy, curl, versitygw
// and PostgreSQL. When something is missing it is skipped, except with
// CI=true, where it fails with the reason.
package hatest
