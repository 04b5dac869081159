// Package s3test starts S3-compatible servers on loopback for tests of the
// S3 storage backend, and reads and writes their buckets from the test's
// side:
//
//   - Versitygw runs the real gateway github.com/versity/versitygw as a
//     subprocess with its POSIX backend in a temporary directory, for
//     end-to-end tests against a server that checks signatures, stores
//     multipart parts on disk and paginates like S3. When the program is
//     missing the test is skipped, or failed under CI=true (see
//     clienttest.Need); .ci/install-versitygw installs it.
//   - Fake serves github.com/johannesboyne/gofakes3 in process: fast, no
//     program needed, but lenient (no signature checks, parts in memory).
//
// Both return a Server with an SDK client holding the gateway's
// credentials, and helpers to put, read and list objects directly. It is
// imported only by _test.go files.
package s3test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// VersitygwVersion is the gateway release the tests are written against
// and .ci/install-versitygw installs.
const VersitygwVersion = "v1.8.0"

// Region is what every Server answers for.
const Region = "us-east-1"

// Server is a running S3-compatible server with one bucket.
type Server struct {
	Name      string     // "versitygw" or "gofakes3", for test names and messages
	URL       string     // endpoint, "http://127.0.0.1:PORT"
	Bucket    string     // created empty by the constructor
	AccessKey string     // root credentials (gofakes3 accepts any)
	SecretKey string     //
	Client    *s3.Client // path-style, signed with the credentials above
	// Dir is versitygw's POSIX root: the bucket is the directory
	// Dir/Bucket and an object "a/b" the file Dir/Bucket/a/b. Empty for
	// gofakes3.
	Dir string

	gw *gateway // versitygw's process; nil for gofakes3
}

// startTimeout bounds a gateway's start, from exec to its first answer.
const startTimeout = 15 * time.Second

// Versitygw starts versitygw on a free port of 127.0.0.1 with its POSIX
// backend in a new temporary directory, waits until it answers, creates
// bucket and stops the gateway when the test ends.
//
// The POSIX backend keeps object metadata in extended attributes (user.*)
// and refuses to start on a file system without them (tmpfs before Linux
// 6.6, some overlay setups). Then it is started again with --sidecar, which
// keeps the metadata in files of a separate directory instead.
func Versitygw(t testing.TB, bucket string) *Server {
	t.Helper()
	bin := clienttest.Need(t, "versitygw")
	if v := moduleVersion(bin); v != VersitygwVersion {
		clienttest.Unavailable(t, "%s is versitygw %s, want %s: go install github.com/versity/versitygw/cmd/versitygw@%s",
			bin, v, VersitygwVersion, VersitygwVersion)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "data")
	// Not inside root, and not a name that starts with root's: versitygw
	// rejects a sidecar whose path has the root's path as a prefix.
	sidecar := filepath.Join(dir, "meta")
	for _, d := range []string{root, sidecar} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{Name: "versitygw", Bucket: bucket, AccessKey: "cloudftpdtest", SecretKey: "cloudftpdtest-secret", Dir: root}
	useSidecar := false
	var lastErr error
	// A few attempts: the free port may be taken between our probe and
	// the gateway's bind, and the first start may reveal that the file
	// system has no extended attributes.
	for attempt := 0; attempt < 4; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"--access", s.AccessKey, "--secret", s.SecretKey,
			"--port", "127.0.0.1:" + port, "--region", Region, "--quiet", "posix"}
		if useSidecar {
			args = append(args, "--sidecar", sidecar)
		}
		args = append(args, root)
		gw, err := startGateway(bin, args)
		if err != nil {
			t.Fatal(err)
		}
		s.URL = "http://127.0.0.1:" + port
		err = gw.waitReady(s.URL)
		if err == nil {
			s.gw = gw
			t.Cleanup(func() {
				if err := gw.stop(); err != nil {
					t.Errorf("versitygw: %v", err)
				}
				if t.Failed() {
					t.Logf("versitygw (%s) output:\n%s", strings.Join(args, " "), gw.out.String())
				}
			})
			break
		}
		gw.stop()
		lastErr = fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, gw.out.String())
		switch out := gw.out.String(); {
		case strings.Contains(out, "xattr") && !useSidecar:
			useSidecar = true
		case strings.Contains(out, "address already in use"):
		default:
			t.Fatalf("versitygw did not start: %v", lastErr)
		}
		s.URL = ""
	}
	if s.URL == "" {
		t.Fatalf("versitygw did not start: %v", lastErr)
	}
	s.Client = newClient(s.URL, s.AccessKey, s.SecretKey)
	s.createBucket(t)
	return s
}

// Pause stops the gateway's process with SIGSTOP, as a hung S3 endpoint:
// the kernel still accepts connections and buffers requests, and nothing
// answers. Resume, or the end of the test, continues it. Only versitygw
// can be paused (gofakes3 runs in the test's own process).
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if s.gw == nil {
		t.Fatalf("%s cannot be paused", s.Name)
	}
	if err := s.gw.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("%s: SIGSTOP: %v", s.Name, err)
	}
	t.Cleanup(func() { s.Resume(t) })
	// kill(2) returns before every thread has stopped: a request the
	// gateway had already read could still be answered. Wait until the
	// kernel shows all of them stopped.
	deadline := time.Now().Add(5 * time.Second)
	for !stopped(s.gw.cmd.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not stopped 5s after SIGSTOP", s.Name)
		}
		time.Sleep(time.Millisecond)
	}
}

// stopped reports whether every thread of pid is in the stopped state
// (Linux /proc; elsewhere it trusts the signal).
func stopped(pid int) bool {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil || len(tasks) == 0 {
		return true
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume continues a paused gateway (SIGCONT); it does nothing to one
// that runs.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.gw.cmd.Process.Signal(syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("%s: SIGCONT: %v", s.Name, err)
	}
}

// Fake starts gofakes3 (memory backend) on 127.0.0.1 with bucket and
// stops it when the test ends.
func Fake(t testing.TB, bucket string) *Server {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	s := &Server{Name: "gofakes3", URL: srv.URL, Bucket: bucket, AccessKey: "AKIDTEST", SecretKey: "SECRETTEST"}
	s.Client = newClient(s.URL, s.AccessKey, s.SecretKey)
	s.createBucket(t)
	return s
}

// Env sets the AWS variables through which the standard credential chain
// (and so cloudftpd's config loader) finds this server's credentials, for
// the rest of the test. Like t.Setenv, it cannot be used in parallel
// tests.
func (s *Server) Env(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_PROFILE", "")
	// No shared config of the machine's user, and no IMDS lookups.
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func newClient(url, access, secret string) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(url),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		// As cloudftpd does with an endpoint: S3-compatible servers
		// differ in which checksum headers they accept.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func (s *Server) createBucket(t testing.TB) {
	t.Helper()
	if _, err := s.Client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		t.Fatalf("%s: create bucket %s: %v", s.Name, s.Bucket, err)
	}
}

// Put writes an object.
func (s *Server) Put(t testing.TB, key string, data []byte) {
	t.Helper()
	_, err := s.Client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &s.Bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		t.Fatalf("%s: put %s: %v", s.Name, key, err)
	}
}

// Get returns an object's content, or an error (NotFound reports whether
// it says there is no such object).
func (s *Server) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: &key})
	if err != nil {
		return nil, fmt.Errorf("%s: get %s: %w", s.Name, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: get %s: %w", s.Name, key, err)
	}
	return b, nil
}

// Head returns an object's metadata, or an error.
func (s *Server) Head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	out, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.Bucket, Key: &key})
	if err != nil {
		return nil, fmt.Errorf("%s: head %s: %w", s.Name, key, err)
	}
	return out, nil
}

// Keys lists every key that starts with prefix, following all pages.
func (s *Server) Keys(t testing.TB, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: &s.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("%s: list %q: %v", s.Name, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// PendingUploads returns the keys of the multipart uploads in progress
// (started, neither completed nor aborted) in the bucket.
func (s *Server) PendingUploads(t testing.TB) []string {
	t.Helper()
	out, err := s.Client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &s.Bucket})
	var ae smithy.APIError
	if s.Name == "gofakes3" && errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
		return nil // gofakes3's answer when there are none
	}
	if err != nil {
		t.Fatalf("%s: ListMultipartUploads: %v", s.Name, err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// NotFound reports whether err from Get or Head says that the object does
// not exist (NoSuchKey from GET, a bare 404 from HEAD).
func NotFound(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// moduleVersion returns the module version a Go program was built from
// ("v1.8.0"), or why it cannot tell. (versitygw --version prints "git"
// when built with go install.)
func moduleVersion(bin string) string {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	return info.Main.Version
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// gateway is a running versitygw process.
type gateway struct {
	cmd  *exec.Cmd
	out  *clienttest.LogBuffer
	done chan struct{} // closed when the process has exited
	err  error         // from Wait, once done
}

func startGateway(bin string, args []string) (*gateway, error) {
	g := &gateway{out: &clienttest.LogBuffer{}, done: make(chan struct{})}
	g.cmd = exec.Command(bin, args...)
	g.cmd.Stdout, g.cmd.Stderr = g.out, g.out
	// Only the S3 API: the credentials are on the command line, and no
	// inherited VGW_* setting (an admin port, a WebUI) should apply.
	g.cmd.Env = gatewayEnv()
	g.cmd.WaitDelay = 5 * time.Second
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	go func() {
		g.err = g.cmd.Wait()
		close(g.done)
	}()
	return g, nil
}

// gatewayEnv is the environment without versitygw's own settings.
func gatewayEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "VGW_") || strings.HasPrefix(k, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// waitReady polls url until the gateway answers any HTTP request (an
// anonymous GET gets 403) or exits.
func (g *gateway) waitReady(url string) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-g.done:
			return fmt.Errorf("exited before answering: %v", g.err)
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %v: %w", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the gateway with SIGTERM, then SIGKILL if it lingers. An exit
// caused by the signal is not an error; one before it is (a crash).
func (g *gateway) stop() error {
	select {
	case <-g.done:
		return fmt.Errorf("exited before the end of the test: %v", g.err)
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	g.cmd.Process.Signal(syscall.SIGCONT) // a paused gateway acts on SIGTERM only once continued
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
		return errors.New("did not stop within 5s of SIGTERM; killed")
	}
	return nil
}
