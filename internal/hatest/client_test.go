package hatest

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/jlaffaye/ftp"
)

// balancerAddr is where partners connect: the balancer's public address.
var balancerAddr = net.JoinHostPort(lbPublic, ftpPort)

// nodeDirect is node i's control port at its own public address, reached
// without the balancer (and so without PROXY protocol).
func nodeDirect(i int) string { return net.JoinHostPort(nodePublic(i), ftpPort) }

// loginResult is the outcome of one login attempt.
type loginResult struct {
	node string // "n1".."n3", from the 220 greeting; "" if none came
	code int    // the reply to PASS (230, 530, 421, ...); 0 if none came
}

// tryLogin connects from the cli namespace (from source) to addr, reads
// the greeting and sends USER and PASS. It is a small hand-made client so
// that it can tell which node greeted it.
func tryLogin(ns, source, addr, user, pass string) (loginResult, error) {
	var res loginResult
	c, err := dialer{ns: ns, source: source}.Dial("tcp", addr)
	if err != nil {
		return res, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := textproto.NewReader(bufio.NewReader(c))
	_, msg, err := r.ReadResponse(220)
	if err != nil {
		return res, fmt.Errorf("greeting: %w", err)
	}
	res.node = greetingNode(msg)
	send := func(line string) (int, error) {
		if _, err := fmt.Fprintf(c, "%s\r\n", line); err != nil {
			return 0, err
		}
		code, _, err := r.ReadResponse(0)
		if _, ok := err.(*textproto.Error); ok {
			err = nil
		}
		return code, err
	}
	code, err := send("USER " + user)
	if err != nil {
		return res, fmt.Errorf("USER: %w", err)
	}
	if code != 331 {
		res.code = code
		return res, nil
	}
	if res.code, err = send("PASS " + pass); err != nil {
		return res, fmt.Errorf("PASS: %w", err)
	}
	send("QUIT")
	return res, nil
}

// greetingNode finds the node name in a greeting ("cloudftpd ha node n2").
func greetingNode(msg string) string {
	_, after, ok := strings.Cut(msg, "ha node ")
	if !ok {
		return ""
	}
	return strings.Fields(after)[0]
}

// client is a jlaffaye/ftp session from the cli namespace, through the
// balancer, in passive mode with the PASV reply's address (EPSV would
// send the data connection to the balancer, which does not carry the
// passive ports).
type client struct {
	*ftp.ServerConn
	mu       sync.Mutex
	dataAddr string // the last data connection's address: the node's
}

func (c *cluster) dial(addr, user, pass string) (*client, error) {
	cl := &client{}
	d := dialer{ns: c.tp.cli, source: cliAddr}
	first := true
	conn, err := ftp.Dial(addr,
		ftp.DialWithTimeout(5*time.Second),
		ftp.DialWithDisabledEPSV(true),
		ftp.DialWithTrustPasvIP(true),
		ftp.DialWithDialFunc(func(network, a string) (net.Conn, error) {
			if !first {
				cl.mu.Lock()
				cl.dataAddr = a
				cl.mu.Unlock()
			}
			first = false
			return d.Dial(network, a)
		}))
	if err != nil {
		return nil, err
	}
	if err := conn.Login(user, pass); err != nil {
		conn.Quit()
		return nil, err
	}
	cl.ServerConn = conn
	return cl, nil
}

// node returns the node of the last data connection ("n2"), from its
// public address.
func (cl *client) node() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	host, _, _ := net.SplitHostPort(cl.dataAddr)
	for i := 1; i <= nodeCount; i++ {
		if host == nodePublic(i) {
			return fmt.Sprintf("n%d", i)
		}
	}
	return ""
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
