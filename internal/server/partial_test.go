package server_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// TestKeepPartialResume: with server.keep_partial_uploads, a client that
// dies in the middle of uploading a new file (its control and data
// connections closed) leaves what arrived, and curl -C - (SIZE, then REST
// and STOR of the rest) completes the file, on local disk and on S3.
func TestKeepPartialResume(t *testing.T) {
	curl := clienttest.Need(t, "curl")
	forBackends(t, []backend{localDisk, s3Versitygw}, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, func(c *config.Config) { c.Server.KeepPartialUploads = true })
		payload := randomBytes(6<<20 + 4321)

		rc := dialRaw(t, ts.Addr)
		rc.login("alice", "alice-secret")
		rc.must(200, "TYPE I")
		dc := rc.epsv()
		rc.must(150, "STOR big.bin")
		if _, err := dc.Write(payload[:3<<20]); err != nil {
			t.Fatal(err)
		}
		// The client dies once the server has read what was sent: the
		// control connection goes first, then the data connection, as a
		// killed process's sockets do.
		time.Sleep(300 * time.Millisecond)
		rc.conn.Close()
		time.Sleep(50 * time.Millisecond)
		dc.Close()

		waitFor(t, func() bool { return strings.Contains(ts.logs.String(), "command=STOR") })
		if !ts.store.exists(t, "alice/big.bin") {
			t.Fatalf("the upload of the dead client was not kept:\n%s", ts.logs)
		}
		kept := ts.read("alice/big.bin")
		t.Logf("kept %d of %d bytes", len(kept), len(payload))
		if !bytes.HasPrefix(payload, kept) {
			t.Fatalf("kept %d bytes that are not a prefix of what was sent", len(kept))
		}

		local := t.TempDir()
		src := filepath.Join(local, "big.bin")
		if err := os.WriteFile(src, payload, 0o644); err != nil {
			t.Fatal(err)
		}
		r := mustRun(t, local, "", curl, "-q", "-sS", "-v", "--max-time", "30", "-C", "-", "-T", src,
			"ftp://alice:alice-secret@127.0.0.1:"+ts.Port()+"/big.bin")
		if !strings.Contains(r.Stderr, "> REST ") && !strings.Contains(r.Stderr, "> APPE ") {
			t.Errorf("curl -C - did not resume:\n%s", r.Stderr)
		}
		if got := ts.read("alice/big.bin"); !bytes.Equal(got, payload) {
			t.Errorf("after the resume the file has %d bytes, want %d equal to what was sent", len(got), len(payload))
		}
	})
}
