package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// sumOf runs a coreutils digest program (sha256sum, md5sum) on path and
// returns its hex digest.
func sumOf(t *testing.T, prog, path string) string {
	t.Helper()
	r := mustRun(t, filepath.Dir(path), "", clienttest.Need(t, prog), path)
	f := strings.Fields(r.Stdout)
	if len(f) == 0 {
		t.Fatalf("%s %s: no output", prog, path)
	}
	return f[0]
}

// TestChecksumClients: files uploaded with curl get their SHA-256 stored,
// and HASH and XSHA256 sent by curl (-Q), lftp (quote) and Python's
// ftplib (sendcmd) answer with what sha256sum says. With hash_max_size
// "0" nothing is computed on request, so the answers can only come from
// the stored values; a second server computes them on request for a file
// written behind the server's back, checked against sha256sum and md5sum.
func TestChecksumClients(t *testing.T) {
	curl := clienttest.Need(t, "curl")
	clienttest.Need(t, "lftp")
	clienttest.Need(t, "python3")
	forBackends(t, allBackends, func(t *testing.T, b backend) {
		noHashing := func(c *config.Config) { zero := config.ByteSize(0); c.Server.HashMaxSize = &zero }
		ts := startServerOn(t, b, noHashing)
		work := t.TempDir()
		small := filepath.Join(work, "small.bin")
		big := filepath.Join(work, "big bin.dat") // a space: HASH takes the rest of the line
		os.WriteFile(small, randomBytes(100_000), 0o644)
		os.WriteFile(big, randomBytes(6<<20+17), 0o644) // multipart on S3 (5 MiB parts)
		url := "ftp://alice:alice-secret@127.0.0.1:" + ts.Port() + "/"
		mustRun(t, work, "", curl, "-q", "-s", "-S", "--max-time", "30", "-T", small, url+"small.bin")
		mustRun(t, work, "", curl, "-q", "-s", "-S", "--max-time", "30", "-T", big, url+"big%20bin.dat")
		smallSum, bigSum := sumOf(t, "sha256sum", small), sumOf(t, "sha256sum", big)

		// With an S3 endpoint, checksum_tags is off by default: a
		// multipart upload's value is not stored there (the documented
		// fallback; s3store's tests cover the tags with versitygw).
		bigStored := !b.isS3()

		r := mustRun(t, work, "", curl, "-q", "-s", "-S", "--max-time", "30", "-v",
			"-Q", "HASH small.bin", "-Q", "XSHA256 small.bin", "-l", url)
		if want := "< 213 SHA-256 0-100000 " + smallSum + " small.bin"; !strings.Contains(r.Stderr, want) {
			t.Errorf("curl -Q HASH: no %q in\n%s", want, r.Stderr)
		}
		if want := "< 250 " + smallSum; !strings.Contains(r.Stderr, want) {
			t.Errorf("curl -Q XSHA256: no %q in\n%s", want, r.Stderr)
		}
		r = runTool(t, work, "", curl, "-q", "-s", "-S", "--max-time", "30", "-v", "-Q", "HASH big bin.dat", "-l", url)
		if want := "< 213 SHA-256 0-6291473 " + bigSum + " big bin.dat"; bigStored && !strings.Contains(r.Stderr, want) {
			t.Errorf("curl -Q HASH of the multipart upload: no %q in\n%s", want, r)
		} else if !bigStored && !strings.Contains(r.Stderr, "< 550 ") {
			t.Errorf("curl -Q HASH without a stored value or hashing on request: want 550\n%s", r)
		}

		r = lftp(t, ts, work, "quote HASH small.bin; quote XSHA256 small.bin")
		if !strings.Contains(r.Stdout, "213 SHA-256 0-100000 "+smallSum+" small.bin") || !strings.Contains(r.Stdout, "250 "+smallSum) {
			t.Errorf("lftp quote HASH / XSHA256:\n%s", r)
		}

		script := `import ftplib, json, sys
ftp = ftplib.FTP()
ftp.connect(sys.argv[1], int(sys.argv[2]), timeout=20)
ftp.login("alice", "alice-secret")
res = {"feat": ftp.sendcmd("FEAT"), "small": ftp.sendcmd("XSHA256 small.bin")}
try:
    res["big"] = ftp.sendcmd("HASH big bin.dat")
except ftplib.error_perm as e:
    res["big"] = str(e)
try:
    ftp.sendcmd("XMD5 small.bin")
except ftplib.error_perm as e:
    res["md5"] = str(e)
ftp.quit()
print(json.dumps(res))
`
		res := runFTPLib(t, ts, work, script)
		if res["small"] != "250 "+smallSum {
			t.Errorf("ftplib XSHA256: %v, want 250 %s", res["small"], smallSum)
		}
		if bigStored && res["big"] != "213 SHA-256 0-6291473 "+bigSum+" big bin.dat" {
			t.Errorf("ftplib HASH: %v", res["big"])
		}
		if !strings.Contains(js(res["feat"]), "HASH SHA-256*;SHA-1;MD5;CRC32") {
			t.Errorf("FEAT: %v", res["feat"])
		}
		// MD5 is never stored, and this server computes nothing.
		if !strings.HasPrefix(js(res["md5"]), `"550 `) {
			t.Errorf("ftplib XMD5 with hash_max_size 0: %v, want 550", res["md5"])
		}

		// On request: a file the server did not receive.
		ts2 := startServerOn(t, b, nil)
		data := randomBytes(300_000)
		ts2.write("alice/outside.bin", data)
		local := filepath.Join(work, "outside.bin")
		os.WriteFile(local, data, 0o644)
		res = runFTPLib(t, ts2, work, `import ftplib, json, sys
ftp = ftplib.FTP()
ftp.connect(sys.argv[1], int(sys.argv[2]), timeout=20)
ftp.login("alice", "alice-secret")
res = {"sha": ftp.sendcmd("HASH outside.bin"), "md5": ftp.sendcmd("XMD5 outside.bin"),
       "opts": ftp.sendcmd("OPTS HASH MD5"), "hmd5": ftp.sendcmd("HASH outside.bin")}
ftp.quit()
print(json.dumps(res))
`)
		sha, md5 := sumOf(t, "sha256sum", local), sumOf(t, "md5sum", local)
		want := map[string]string{
			"sha":  "213 SHA-256 0-300000 " + sha + " outside.bin",
			"md5":  "250 " + md5,
			"opts": "200 MD5",
			"hmd5": "213 MD5 0-300000 " + md5 + " outside.bin",
		}
		for k, w := range want {
			if res[k] != w {
				t.Errorf("%s: %v, want %q", k, res[k], w)
			}
		}
	})
}
