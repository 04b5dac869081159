package ftp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

func TestQuotePath(t *testing.T) {
	if got := quotePath(`/a "b"`); got != `"/a ""b"""` {
		t.Errorf("quotePath = %s", got)
	}
}

func TestReadLineTelnet(t *testing.T) {
	in := "USER a\r\n\xff\xf4\xff\xf2ABOR\r\n\xff\xf4\xffABOR\r\n\xff\xfb\x01NOOP\r\nX\xff\xffY\r\n" + strings.Repeat("z", 100) + "\r\nLAST\n"
	lr := lineReader{r: bufio.NewReader(strings.NewReader(in)), max: 50}
	want := []string{"USER a", "ABOR", "ABOR", "NOOP", "X\xffY", "!toolong", "LAST"}
	for _, w := range want {
		got, err := lr.readLine()
		if w == "!toolong" {
			if err != errLineTooLong {
				t.Fatalf("want errLineTooLong, got %q %v", got, err)
			}
			continue
		}
		if err != nil || got != w {
			t.Fatalf("readLine = %q, %v; want %q", got, err, w)
		}
	}
}

func TestResolvePath(t *testing.T) {
	for _, tc := range []struct{ cwd, p, want string }{
		{"/", "", "/"},
		{"/a", "", "/a"},
		{"/a", "b", "/a/b"},
		{"/a", "/b", "/b"},
		{"/a", "..", "/"},
		{"/", "../../..", "/"},
		{"/a/b", "../c/./d/", "/a/c/d"},
		{"/", "a//b", "/a/b"},
	} {
		if got, ok := resolvePath(tc.cwd, tc.p); !ok || got != tc.want {
			t.Errorf("resolvePath(%q, %q) = %q, want %q", tc.cwd, tc.p, got, tc.want)
		}
	}
	if _, ok := resolvePath("/", "a\x00b"); ok {
		t.Error("NUL accepted")
	}
}

func TestListingLines(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	file := storage.FileInfo{Name: "report.csv", Size: 1234, ModTime: time.Date(2026, 5, 2, 3, 4, 5, 0, time.UTC), Mode: 0o640, ID: "1.2"}
	old := storage.FileInfo{Name: "old", Size: 0, ModTime: time.Date(2019, 1, 2, 0, 0, 0, 0, time.UTC), Mode: fs.ModeDir | 0o755}
	if got := string(appendLS(nil, file, now, new(dateCache))); got != "-rw-r-----    1 ftp      ftp          1234 May 02 03:04 report.csv" {
		t.Errorf("LS file: %q", got)
	}
	if got := string(appendLS(nil, old, now, new(dateCache))); got != "drwxr-xr-x    1 ftp      ftp             0 Jan 02  2019 old" {
		t.Errorf("LS dir: %q", got)
	}
	noTime := storage.FileInfo{Name: "s3dir", Mode: fs.ModeDir | 0o755}
	if got := string(appendLS(nil, noTime, now, new(dateCache))); got != "drwxr-xr-x    1 ftp      ftp             0 Jun 01 12:00 s3dir" {
		t.Errorf("LS without a time: %q", got)
	}
	all := auth.PermList | auth.PermDownload | auth.PermUpload | auth.PermOverwrite | auth.PermDelete | auth.PermRename | auth.PermMkdir
	if got := string(appendMLSx(nil, file, file.Name, allFacts, all, new(dateCache))); got != "type=file;size=1234;modify=20260502030405;perm=adfrw;unique=1.2; report.csv" {
		t.Errorf("MLSx file: %q", got)
	}
	if got := string(appendMLSx(nil, old, old.Name, factType|factPerm, auth.PermList, new(dateCache))); got != "type=dir;perm=el; old" {
		t.Errorf("MLSx dir: %q", got)
	}
}

// TestDateCache: one cache shared by the lines of a listing gives each line
// its own date, whether entries share a second, differ, or switch layout.
func TestDateCache(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	t1 := time.Date(2026, 5, 2, 3, 4, 5, 100, time.UTC)
	var c dateCache
	for _, tc := range []struct {
		mod  time.Time
		ls   string
		mlsx string
	}{
		{t1, "May 02 03:04", "modify=20260502030405;"},
		{t1.Add(time.Millisecond), "May 02 03:04", "modify=20260502030405;"},
		{t1.Add(time.Second), "May 02 03:04", "modify=20260502030406;"},
		{t1.Add(-400 * 24 * time.Hour), "Mar 28  2025", "modify=20250328030405;"},
		{t1.Add(time.Minute), "May 02 03:05", "modify=20260502030505;"},
	} {
		fi := storage.FileInfo{Name: "f", ModTime: tc.mod, Mode: 0o644}
		if got := string(appendLS(nil, fi, now, &c)); !strings.Contains(got, " "+tc.ls+" f") {
			t.Errorf("LS %v: %q, want date %q", tc.mod, got, tc.ls)
		}
		if got := string(appendMLSx(nil, fi, "f", factModify, 0, &c)); got != tc.mlsx+" f" {
			t.Errorf("MLSx %v: %q, want %q", tc.mod, got, tc.mlsx+" f")
		}
	}
}

func TestListingTarget(t *testing.T) {
	for in, want := range map[string]string{"": "", "-la": "", "-la /x": "/x", "-a -l dir": "dir", "dir": "dir", "-file.txt": "-file.txt", "-./x": "-./x"} {
		if got := listingTarget(in); got != want {
			t.Errorf("listingTarget(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFacts(t *testing.T) {
	fs := parseFacts("Type;SIZE;bogus;")
	if fs != factType|factSize || fs.String() != "type;size;" {
		t.Errorf("parseFacts = %v %q", fs, fs.String())
	}
	if got := fs.featMarked(); got != "type*;size*;modify;perm;unique;" {
		t.Errorf("featMarked = %q", got)
	}
}

// chunkReader returns data in pieces of at most size bytes, then err.
type chunkReader struct {
	data []byte
	size int
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p[:min(len(p), r.size)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// countingWriter records the size of every Write.
type countingWriter struct {
	bytes.Buffer
	writes []int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.Buffer.Write(p)
}

// TestCopyFilled: records of 16 KiB are written in full buffers, the rest
// at the end; a read error is returned after the data before it is
// written.
func TestCopyFilled(t *testing.T) {
	errCut := errors.New("connection reset")
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i)
	}
	for _, tc := range []struct {
		name       string
		err        error
		wantErr    error
		wantWrites []int
	}{
		{"eof", io.EOF, nil, []int{65536, 34464}},
		{"reset", errCut, errCut, []int{65536, 34464}},
		{"truncated TLS", io.ErrUnexpectedEOF, io.ErrUnexpectedEOF, []int{65536, 34464}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w countingWriter
			n, err := copyFilled(&w, &chunkReader{data: data, size: 16 << 10, err: tc.err}, make([]byte, 64<<10))
			if !errors.Is(err, tc.wantErr) && err != tc.wantErr {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
			if n != int64(len(data)) || !bytes.Equal(w.Bytes(), data) {
				t.Errorf("copied %d bytes (%d written), want all %d", n, w.Len(), len(data))
			}
			if !slices.Equal(w.writes, tc.wantWrites) {
				t.Errorf("writes %v, want %v", w.writes, tc.wantWrites)
			}
		})
	}
}

// TestCanZeroCopy: files go out by sendfile to TCP connections, also
// behind the PROXY protocol wrapper, and TCP connections are spliced into
// writers that read from them; TLS and in-memory pipes are not.
func TestCanZeroCopy(t *testing.T) {
	tcp := loopbackConn(t)
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pipe, _ := net.Pipe()
	defer pipe.Close()
	for _, tc := range []struct {
		name string
		dst  io.Writer
		src  io.Reader
		want bool
	}{
		{"file to TCP", tcp, f, true},
		{"file to PROXY-wrapped TCP", proxyproto.NewConn(tcp), f, true},
		{"file to TLS", tls.Server(tcp, &tls.Config{}), f, false},
		{"TCP into a writer without ReadFrom", struct{ io.Writer }{io.Discard}, tcp, false},
		{"TCP into a file", f, tcp, true},
		{"pipe into a file", f, pipe, false},
		{"TYPE A reader to TCP", tcp, newASCIIReader(pipe), false},
	} {
		if got := canZeroCopy(tc.dst, tc.src); got != tc.want {
			t.Errorf("%s: canZeroCopy = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A sendfile download turns Nagle's algorithm back on for its connection
// (see allowCoalescing); other writers are left alone.
func TestAllowCoalescing(t *testing.T) {
	c := loopbackConn(t)
	noDelay := func() int {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var serr error
		rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY) })
		if serr != nil {
			t.Fatal(serr)
		}
		return v
	}
	if noDelay() == 0 {
		t.Fatal("Go's default changed: TCP_NODELAY is already off")
	}
	allowCoalescing(c)
	if noDelay() != 0 {
		t.Error("TCP_NODELAY still on after allowCoalescing")
	}
	allowCoalescing(io.Discard) // not a TCP connection: nothing to do
}

// loopbackConn dials a listener on 127.0.0.1 (its backlog accepts the
// connection); listener and connection close when the test ends.
func loopbackConn(t *testing.T) *net.TCPConn {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}
