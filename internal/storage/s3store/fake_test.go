package s3store

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

const testBucket = "test"

// fakeS3 is an in-process S3 server (gofakes3 on its memory backend) that
// records every request it gets.
type fakeS3 struct {
	mem    *s3mem.Backend
	client *s3.Client
	url    string // the server's base URL

	mu   sync.Mutex
	reqs []request
	// hook, when set, sees every request first; returning true means it
	// answered the request itself.
	hook func(w http.ResponseWriter, r *http.Request) bool
}

// request is what the recorder keeps of one request.
type request struct {
	method     string
	key        string // object key from the path; "" for bucket requests
	query      url.Values
	header     http.Header
	copySource string // x-amz-copy-source, decoded
}

// newFake starts a fake server with the bucket testBucket and returns it
// with a client for it.
func newFake(t *testing.T) *fakeS3 {
	t.Helper()
	f := &fakeS3{mem: s3mem.New()}
	if err := f.mem.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(f.mem)
	handler := faker.Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.record(r)
		f.mu.Lock()
		hook := f.hook
		f.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	f.client = s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
	})
	return f
}

func (f *fakeS3) record(r *http.Request) {
	req := request{method: r.Method, query: r.URL.Query(), header: r.Header.Clone()}
	if k, ok := strings.CutPrefix(r.URL.Path, "/"+testBucket+"/"); ok {
		req.key = k
	}
	if src := r.Header.Get("X-Amz-Copy-Source"); src != "" {
		req.copySource, _ = url.PathUnescape(src)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
}

// setHook replaces the request hook.
func (f *fakeS3) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

// requests returns the requests recorded since the last reset.
func (f *fakeS3) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func (f *fakeS3) reset() {
	f.mu.Lock()
	f.reqs = nil
	f.mu.Unlock()
}

// count returns how many recorded requests match.
func (f *fakeS3) count(match func(request) bool) int {
	n := 0
	for _, r := range f.requests() {
		if match(r) {
			n++
		}
	}
	return n
}

// Request kinds, told apart by method and query as S3 does.
func isList(r request) bool {
	return r.method == "GET" && r.key == "" && r.query.Get("list-type") == "2"
}
func isUploadPart(r request) bool {
	return r.method == "PUT" && r.query.Has("uploadId") && r.query.Has("partNumber")
}
func isCreateUpload(r request) bool { return r.method == "POST" && r.query.Has("uploads") }
func isCompleteUpload(r request) bool {
	return r.method == "POST" && r.query.Has("uploadId")
}
func isPlainPut(r request) bool {
	return r.method == "PUT" && r.key != "" && !r.query.Has("uploadId") && r.copySource == ""
}

// put stores an object directly in the fake's memory backend, bypassing
// HTTP (fast, for populating large listings).
func (f *fakeS3) put(t *testing.T, key, data string) {
	t.Helper()
	if _, err := f.mem.PutObject(testBucket, key, map[string]string{}, strings.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// get reads an object through the client.
func (f *fakeS3) get(t *testing.T, key string) []byte {
	t.Helper()
	out, err := f.client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: &key})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

// pendingUploads lists the multipart uploads left in the bucket.
func (f *fakeS3) pendingUploads(t *testing.T) []string {
	t.Helper()
	out, err := f.client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(testBucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// backend returns a Backend on the fake, with opts' zero fields defaulted.
func (f *fakeS3) backend(t *testing.T, opts Options) *Backend {
	t.Helper()
	opts.Bucket = testBucket
	opts.Client = f.client
	b, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}
