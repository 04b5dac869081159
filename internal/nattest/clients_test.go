package nattest

// Runners for the real FTP clients. Each is told to use the address of the
// PASV reply, not to guess one: curl and lftp by default (and ftplib when
// asked) replace it with the control connection's address, which would
// hide exactly the failure these tests look for.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// ftplibScript drives Python's ftplib from a JSON description of steps
// (argv[1]). It prints ftplib's debug trace ("*cmd* 'PASV'", "*resp*
// '227 ...'") and, last, one line "RESULT {json}".
const ftplibScript = `import ftplib, json, sys

a = json.loads(sys.argv[1])
out = {"replies": {}, "list": []}
ftp = ftplib.FTP(timeout=a["timeout"])
# Use the address of the PASV reply (the default replaces it with the
# control connection's peer address, which hides NAT problems).
ftp.trust_server_pasv_ipv4_address = True
ftp.set_debuglevel(1)
step = "connect"
try:
    out["replies"]["connect"] = ftp.connect(a["host"], a["port"])
    step = "login"
    out["replies"]["login"] = ftp.login(a["user"], a["password"])
    ftp.set_pasv(a["passive"])
    for s in a["steps"]:
        step = s["op"]
        key = s.get("name") or step
        if step == "pasv":
            out["replies"][key] = ftp.sendcmd("PASV")
        elif step == "list":
            out["replies"][key] = ftp.retrlines("LIST", out["list"].append)
        elif step == "put":
            with open(s["local"], "rb") as f:
                out["replies"][key] = ftp.storbinary("STOR " + s["remote"], f)
        elif step == "get":
            with open(s["local"], "wb") as f:
                out["replies"][key] = ftp.retrbinary("RETR " + s["remote"], f.write)
        elif step == "port":
            try:
                out["replies"][key] = ftp.sendcmd("PORT " + s["arg"])
            except ftplib.Error as e:
                out["replies"][key] = str(e)
        else:
            raise ValueError("unknown step " + step)
    step = "quit"
    out["replies"]["quit"] = ftp.quit()
except Exception as e:
    out["failed_step"] = step
    out["error"] = type(e).__name__ + ": " + str(e)
    ftp.close()
print("RESULT " + json.dumps(out))
`

// ftplibStep is one step of an ftplib run.
type ftplibStep struct {
	Op     string `json:"op"`               // pasv, list, put, get, port
	Name   string `json:"name,omitempty"`   // key of the reply; Op when empty
	Local  string `json:"local,omitempty"`  // put, get: file in the run's directory
	Remote string `json:"remote,omitempty"` // put, get: file on the server
	Arg    string `json:"arg,omitempty"`    // port: h1,h2,h3,h4,p1,p2
}

// ftplibResult is what the script reports.
type ftplibResult struct {
	Replies    map[string]string `json:"replies"` // by step name
	List       []string          `json:"list"`
	FailedStep string            `json:"failed_step"`
	Error      string            `json:"error"`
	run        clienttest.Result
}

func (r ftplibResult) String() string { return r.run.String() }

// ftplib logs in as alice at host from inside ns, in passive (with the
// PASV address trusted) or active mode, and runs steps in dir, each
// socket operation bounded by sockTimeout.
func ftplib(t *testing.T, tp *topology, ns, dir, host string, passive bool, sockTimeout time.Duration, steps ...ftplibStep) ftplibResult {
	t.Helper()
	py := clienttest.Need(t, "python3")
	script := filepath.Join(dir, "ftplib_run.py")
	if err := os.WriteFile(script, []byte(ftplibScript), 0o644); err != nil {
		t.Fatal(err)
	}
	arg, err := json.Marshal(map[string]any{
		"host": host, "port": 2121, "user": user, "password": password,
		"passive": passive, "timeout": sockTimeout.Seconds(), "steps": steps,
	})
	if err != nil {
		t.Fatal(err)
	}
	var res ftplibResult
	res.run = tp.run(ns, dir, "", py, script, string(arg))
	i := strings.LastIndex(res.run.Stdout, "RESULT ")
	if !res.run.OK() || i < 0 {
		t.Fatalf("ftplib script failed:\n%s", res.run)
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.run.Stdout[i+len("RESULT "):])), &res); err != nil {
		t.Fatalf("ftplib script output: %v\n%s", err, res.run)
	}
	return res
}

// curl runs curl inside ns in dir with the given options (alice's
// credentials and verbose output are added); the data connection's
// negotiation is on stderr ("> PASV", "< 227 ...").
func curl(t *testing.T, tp *topology, ns, dir string, args ...string) clienttest.Result {
	t.Helper()
	prog := clienttest.Need(t, "curl")
	base := []string{"-sS", "-v", "--connect-timeout", "5", "--max-time", "20", "-u", user + ":" + password}
	return tp.run(ns, dir, "", prog, append(base, args...)...)
}

// lftpPASVSettings make lftp send PASV and use the address in its reply:
// by default lftp prefers EPSV, and "fixes" a private PASV address sent to
// a public client by using the control connection's address instead.
const lftpPASVSettings = "set ftp:passive-mode yes; set ftp:prefer-epsv no; " +
	"set ftp:ignore-pasv-address no; set ftp:fix-pasv-address no; "

// lftpPlain keeps lftp in clear text (it tries AUTH TLS when the server
// offers it).
const lftpPlain = "set ftp:ssl-allow no; "

// lftpFTPS makes lftp use TLS on the control and the data connections
// (AUTH TLS, PROT P) and accept the self-signed certificate.
const lftpFTPS = "set ftp:ssl-force yes; set ftp:ssl-protect-data yes; set ssl:verify-certificate no; "

// lftp runs an lftp command line against host as alice inside ns, with
// the TLS settings tlsMode (lftpPlain or lftpFTPS) and debug output
// ("---> PASV", "<--- 227 ...") on stderr.
func lftp(t *testing.T, tp *topology, ns, dir, host, tlsMode, cmds string) clienttest.Result {
	t.Helper()
	prog := clienttest.Need(t, "lftp")
	script := "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; " +
		tlsMode + "set cmd:fail-exit yes; set xfer:clobber yes; debug 5; " +
		lftpPASVSettings +
		"open -u " + user + "," + password + " -p " + ftpPort + " " + host + "; " + cmds
	return tp.run(ns, dir, "", prog, "--norc", "-c", script)
}

// inetutils runs inetutils-ftp inside ns in dir with the given commands
// on stdin after logging in to host as alice. -p selects passive mode,
// -A active; -d prints the commands sent ("---> PASV").
func inetutils(t *testing.T, tp *topology, ns, dir, host, modeFlag string, cmds ...string) clienttest.Result {
	t.Helper()
	prog := clienttest.InetutilsFTP(t)
	script := strings.Join(append([]string{
		"open " + host + " " + ftpPort,
		"user " + user + " " + password,
	}, cmds...), "\n") + "\n"
	return tp.run(ns, dir, script, prog, "-n", "-v", "-d", modeFlag)
}

// pasvPrefix is how a PASV reply for addr starts:
// "227 Entering Passive Mode (198,51,100,10,".
func pasvPrefix(addr string) string {
	return "227 Entering Passive Mode (" + strings.ReplaceAll(addr, ".", ",") + ","
}

// sameFile fails the test unless the file at path holds want; run, when
// not nil, is the client run printed with the failure.
func sameFile(t *testing.T, what, path string, want []byte, run fmt.Stringer) {
	t.Helper()
	ctx := ""
	if run != nil {
		ctx = "\n" + run.String()
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v%s", what, err, ctx)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got %d bytes sha256 %x, want %d bytes sha256 %x%s",
			what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want), ctx)
	}
}
