package server_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// s3Server is a cloudftpd whose storage is an S3-compatible server (gofakes3)
// on loopback, configured the way an operator would: backend = "s3" with an
// endpoint, path-style addressing and credentials from the environment.
type s3Server struct {
	*testServer
	mem *s3mem.Backend
}

const s3Bucket = "ftp-bucket"

func startS3Server(t *testing.T) *s3Server {
	t.Helper()
	mem := s3mem.New()
	if err := mem.CreateBucket(s3Bucket); err != nil {
		t.Fatal(err)
	}
	fake := httptest.NewServer(gofakes3.New(mem).Server())
	t.Cleanup(fake.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "SECRETTEST")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ts := startServer(t, func(c *config.Config) {
		c.Storage = config.Storage{
			Backend:     "s3",
			Bucket:      s3Bucket,
			Prefix:      "homes/",
			Region:      "us-east-1",
			Endpoint:    fake.URL,
			PathStyle:   true,
			PartSize:    5 << 20,
			Concurrency: 2,
		}
	})
	return &s3Server{testServer: ts, mem: mem}
}

// object returns the content of a key under the homes prefix.
func (s *s3Server) object(t *testing.T, key string) []byte {
	t.Helper()
	obj, err := s.mem.GetObject(s3Bucket, "homes/"+key, nil)
	if err != nil {
		t.Fatalf("object %s: %v", key, err)
	}
	defer obj.Contents.Close()
	b, err := io.ReadAll(obj.Contents)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *s3Server) missing(t *testing.T, key string) {
	t.Helper()
	if _, err := s.mem.HeadObject(s3Bucket, "homes/"+key); err == nil {
		t.Errorf("object %s exists, want it gone", key)
	}
}

// TestS3ClientDay is an FTP client's whole day against the S3 backend:
// login, list, upload large and small files, resume a download, rename,
// delete, and clear answers for what S3 cannot do.
func TestS3ClientDay(t *testing.T) {
	s := startS3Server(t)
	c, err := ftp.Dial(s.Addr, ftp.DialWithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Login("alice", "alice-secret"); err != nil {
		t.Fatal(err)
	}
	large := randomBytes(12<<20 + 3) // three multipart parts of 5 MiB
	small := []byte("small report\n")
	if err := c.MakeDir("reports"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stor("reports/large.bin", bytes.NewReader(large)); err != nil {
		t.Fatal(err)
	}
	if err := c.Stor("reports/small.txt", bytes.NewReader(small)); err != nil {
		t.Fatal(err)
	}
	if got := s.object(t, "alice/reports/large.bin"); sha256.Sum256(got) != sha256.Sum256(large) {
		t.Fatalf("large object differs (%d bytes)", len(got))
	}
	entries, err := c.List("reports")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]uint64{}
	for _, e := range entries {
		sizes[e.Name] = e.Size
	}
	if sizes["large.bin"] != uint64(len(large)) || sizes["small.txt"] != uint64(len(small)) {
		t.Errorf("MLSD on S3: %v", sizes)
	}
	if n, err := c.FileSize("reports/large.bin"); err != nil || n != int64(len(large)) {
		t.Errorf("SIZE: %d %v", n, err)
	}
	if _, err := c.GetTime("reports/small.txt"); err != nil {
		t.Errorf("MDTM: %v", err)
	}
	// Resume a download: a ranged GET.
	r, err := c.RetrFrom("reports/large.bin", 7<<20)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(tail, large[7<<20:]) {
		t.Fatalf("resumed download: %d bytes, %v", len(tail), err)
	}
	if err := c.ChangeDir("reports"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("small.txt", "renamed.txt"); err != nil {
		t.Fatal(err)
	}
	if got := string(s.object(t, "alice/reports/renamed.txt")); got != string(small) {
		t.Errorf("renamed object has %q", got)
	}
	s.missing(t, "alice/reports/small.txt")
	if err := c.Delete("renamed.txt"); err != nil {
		t.Fatal(err)
	}
	s.missing(t, "alice/reports/renamed.txt")

	// What S3 cannot do gets a reply that says so.
	for _, tc := range []struct {
		run  func() error
		code int
		text string
	}{
		{func() error { return c.Append("large.bin", strings.NewReader("x")) }, 502, "APPE"},
		{func() error { return c.StorFrom("large.bin", strings.NewReader("x"), 10) }, 502, "REST"},
		{func() error { return c.SetTime("large.bin", time.Now()) }, 502, "modification times"},
		{func() error { return c.Rename("/reports", "/archive") }, 550, "directories"},
	} {
		err := tc.run()
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != tc.code || !strings.Contains(te.Msg, tc.text) {
			t.Errorf("got %v, want %d mentioning %q", err, tc.code, tc.text)
		}
	}
	if got := s.object(t, "alice/reports/large.bin"); !bytes.Equal(got, large) {
		t.Error("a refused APPE or REST+STOR changed the object")
	}
	rc := dialRaw(t, s.Addr)
	rc.login("alice", "alice-secret")
	if msg := rc.must(502, "SITE CHMOD 600 reports/large.bin"); !strings.Contains(msg, "permissions") {
		t.Errorf("SITE CHMOD on S3: %q", msg)
	}
	if err := c.ChangeDir("/"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveDir("reports"); err == nil {
		t.Error("RMD of a non-empty directory succeeded")
	}
	if err := c.Delete("reports/large.bin"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveDir("reports"); err != nil {
		t.Errorf("RMD of an emptied directory: %v", err)
	}
}

// TestS3AbortKeepsObject checks that an aborted upload aborts the multipart
// upload: the previous object stays as it was.
func TestS3AbortKeepsObject(t *testing.T) {
	s := startS3Server(t)
	rc := dialRaw(t, s.Addr)
	rc.login("alice", "alice-secret")
	old := []byte("the old object")
	dc := rc.pasv()
	rc.must(150, "STOR keep.txt")
	dc.Write(old)
	dc.Close()
	rc.expect(226)

	dc = rc.pasv()
	rc.must(150, "STOR keep.txt")
	dc.Write(bytes.Repeat([]byte("new!"), 3<<20)) // beyond one part
	rc.tp.PrintfLine("ABOR")
	rc.expect(426)
	rc.expect(226)
	dc.Close()
	if got := s.object(t, "alice/keep.txt"); !bytes.Equal(got, old) {
		t.Fatalf("aborted upload replaced the object: %d bytes", len(got))
	}
}

// TestS3RealClients runs curl, lftp and Python's ftplib against the S3
// backend.
func TestS3RealClients(t *testing.T) {
	s := startS3Server(t)
	work := t.TempDir()
	payload := randomBytes(6<<20 + 5)
	up := filepath.Join(work, "up.bin")
	os.WriteFile(up, payload, 0o644)
	base := "ftp://alice:alice-secret@127.0.0.1:" + s.Port() + "/"

	t.Run("curl", func(t *testing.T) {
		curl := clienttest.Need(t, "curl")
		mustRun(t, work, "", curl, "-sS", "--max-time", "20", "--ftp-create-dirs", "-T", up, base+"curl/up.bin")
		if got := s.object(t, "alice/curl/up.bin"); !bytes.Equal(got, payload) {
			t.Fatal("curl upload differs")
		}
		got := mustRun(t, work, "", curl, "-sS", "--max-time", "20", base+"curl/up.bin")
		if got.Stdout != string(payload) {
			t.Fatal("curl download differs")
		}
		ls := mustRun(t, work, "", curl, "-sS", "--max-time", "20", base+"curl/")
		if !strings.Contains(ls.Stdout, "up.bin") || !strings.Contains(ls.Stdout, "6291461") {
			t.Errorf("curl listing: %q", ls.Stdout)
		}
		mustRun(t, work, "", curl, "-sS", "--max-time", "20", "-C", "-", "-o", filepath.Join(work, "partial"), base+"curl/up.bin")
	})
	t.Run("lftp", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "l.bin"), payload[:1<<20], 0o644)
		r := lftp(t, s.testServer, dir, "mkdir lftp; cd lftp; put l.bin; ls; get l.bin -o back.bin; mv l.bin moved.bin; cls")
		if !strings.Contains(r.Stdout, "moved.bin") {
			t.Errorf("lftp listing after mv: %q", r.Stdout)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "back.bin")); !bytes.Equal(got, payload[:1<<20]) {
			t.Error("lftp round trip differs")
		}
		if !bytes.Equal(s.object(t, "alice/lftp/moved.bin"), payload[:1<<20]) {
			t.Error("lftp upload differs in S3")
		}
	})
	t.Run("ftplib", func(t *testing.T) {
		python := clienttest.Need(t, "python3")
		script := `
import ftplib, hashlib, sys, io
f = ftplib.FTP()
f.connect("127.0.0.1", int(sys.argv[1]), timeout=20)
f.login("alice", "alice-secret")
data = open(sys.argv[2], "rb").read()
f.storbinary("STOR py.bin", io.BytesIO(data))
out = io.BytesIO()
f.retrbinary("RETR py.bin", out.write)
assert out.getvalue() == data, "retr differs"
assert "py.bin" in f.nlst(), f.nlst()
facts = dict(f.mlsd())
assert facts["py.bin"]["size"] == str(len(data)), facts
f.rename("py.bin", "py2.bin")
assert f.size("py2.bin") == len(data)
f.delete("py2.bin")
assert "py2.bin" not in f.nlst()
f.quit()
print("ok")
`
		path := filepath.Join(work, "s3.py")
		os.WriteFile(path, []byte(script), 0o644)
		r := mustRun(t, work, "", python, path, s.Port(), up)
		if strings.TrimSpace(r.Stdout) != "ok" {
			t.Fatalf("ftplib: %s", r)
		}
	})
}
