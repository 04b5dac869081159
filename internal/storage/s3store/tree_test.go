package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

func TestOpenRanges(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{}).Home(t.Context(), "alice")
	data := string(randomData(1000))
	f.put(t, "alice/f", data)
	f.put(t, "alice/empty", "")
	for _, tt := range []struct {
		name   string
		offset int64
		want   string
	}{
		{"/f", 0, data},
		{"/f", 1, data[1:]},
		{"/f", 500, data[500:]},
		{"/f", 999, data[999:]},
		{"/f", 1000, ""},
		{"/f", 5000, ""},
		{"/empty", 0, ""},
		{"/empty", 3, ""},
	} {
		f.reset()
		r, err := s.Open(t.Context(), tt.name, tt.offset)
		if err != nil {
			t.Errorf("Open(%s, %d): %v", tt.name, tt.offset, err)
			continue
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(b) != tt.want {
			t.Errorf("Open(%s, %d) reads %d bytes, %v; want %d bytes", tt.name, tt.offset, len(b), err, len(tt.want))
		}
		var rng string
		for _, r := range f.requests() {
			if r.method == "GET" {
				rng = r.header.Get("Range")
			}
		}
		if want := fmt.Sprintf("bytes=%d-", tt.offset); tt.offset > 0 && rng != want {
			t.Errorf("Open(%s, %d) sent Range %q, want %q", tt.name, tt.offset, rng, want)
		}
	}
	if _, err := s.Open(t.Context(), "/f", -1); !errors.Is(err, storage.ErrUnsupported) {
		t.Errorf("Open at -1: %v", err)
	}
}

func TestRenameFile(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{}).Home(t.Context(), "alice")
	ctx := t.Context()
	// Characters that URL encodings disagree on.
	from, to := "/a b+c%d&é.txt", "/x y+z?.txt"
	f.put(t, "alice"+from, "content")
	if err := s.Rename(ctx, from, to); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if got := string(f.get(t, "alice"+to)); got != "content" {
		t.Errorf("renamed file reads %q", got)
	}
	_, err := s.Stat(ctx, from)
	wantErr(t, "Stat of the old name", err, storage.ErrNotExist)
	// Renaming a file onto itself keeps it.
	if err := s.Rename(ctx, to, to); err != nil {
		t.Errorf("Rename onto itself: %v", err)
	}
	if got := string(f.get(t, "alice"+to)); got != "content" {
		t.Errorf("after renaming onto itself: %q", got)
	}
	f.put(t, "alice/d/", "")
	err = s.Rename(ctx, "/d", "/e")
	wantErr(t, "Rename of a directory", err, storage.ErrUnsupported)
	if err == nil || !strings.Contains(err.Error(), "renaming directories is not supported on S3 storage") {
		t.Errorf("Rename of a directory: %v, want the documented message", err)
	}
	f.put(t, "alice/file", "x")
	wantErr(t, "Rename under a file", s.Rename(ctx, to, "/file/x"), storage.ErrNotDir)
}

func TestCopyPartSize(t *testing.T) {
	for _, tt := range []struct {
		size, want int64
	}{
		{0, 0},
		{1, 0},
		{MaxPartSize, 0}, // one CopyObject up to 5 GiB
		{MaxPartSize + 1, 512 * mib},
		{100 << 30, 512 * mib},
		{5 << 40, (5<<40 + maxParts - 1) / maxParts}, // 5 TiB: 10,000 parts
	} {
		got := copyPartSize(tt.size)
		if got != tt.want {
			t.Errorf("copyPartSize(%d) = %d, want %d", tt.size, got, tt.want)
		}
		if got > 0 && ((tt.size+got-1)/got > maxParts || got > MaxPartSize || got < MinPartSize) {
			t.Errorf("copyPartSize(%d) = %d: parts out of S3's limits", tt.size, got)
		}
	}
}

func TestEscapeCopySource(t *testing.T) {
	for in, want := range map[string]string{
		"b/a/b.txt":   "b/a/b.txt",
		"b/a b+c":     "b/a%20b%2Bc",
		"b/%?#&=é~_-": "b/%25%3F%23%26%3D%C3%A9~_-",
	} {
		if got := escapeCopySource(in); got != want {
			t.Errorf("escapeCopySource(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnsupported(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{}).Home(t.Context(), "alice")
	ctx := t.Context()
	f.put(t, "alice/f", "x")
	if c := s.Capabilities(); c != (storage.Capabilities{Append: true, WriteOffset: true}) {
		t.Errorf("Capabilities() = %+v, want only Append and WriteOffset", c)
	}
	_, bothErr := s.Create(ctx, "/f", storage.CreateOptions{Append: true, Offset: 1})
	_, negErr := s.Create(ctx, "/f", storage.CreateOptions{Offset: -1})
	_, beyondErr := s.Create(ctx, "/f", storage.CreateOptions{Offset: 2})
	for _, tt := range []struct {
		op   string
		err  error
		want string
	}{
		{"append at an offset", bothErr, "append and offset together"},
		{"negative offset", negErr, "negative offset"},
		{"offset beyond the end", beyondErr, "beyond the end"},
		{"SetModTime", s.SetModTime(ctx, "/f", time.Now()), "modification time"},
		{"Chmod", s.Chmod(ctx, "/f", 0o600), "permission bits"},
	} {
		if !errors.Is(tt.err, storage.ErrUnsupported) || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrUnsupported saying %q", tt.op, tt.err, tt.want)
		}
	}
}

// TestCreateChecks covers what Create checks before any data flows.
func TestCreateChecks(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{}).Home(t.Context(), "alice")
	ctx := t.Context()
	f.put(t, "alice/file", "x")
	f.put(t, "alice/dir/", "")
	for _, tt := range []struct {
		name string
		opts storage.CreateOptions
		want error
	}{
		{"/", storage.CreateOptions{}, storage.ErrIsDir},
		{"/dir", storage.CreateOptions{}, storage.ErrIsDir},
		{"/nodir/f", storage.CreateOptions{}, storage.ErrNotExist},
		{"/file/f", storage.CreateOptions{}, storage.ErrNotDir},
		{"/file", storage.CreateOptions{Exclusive: true}, storage.ErrExist},
	} {
		up, err := s.Create(ctx, tt.name, tt.opts)
		if err == nil {
			up.Abort()
		}
		wantErr(t, fmt.Sprintf("Create(%s, %+v)", tt.name, tt.opts), err, tt.want)
	}
}

// TestMissingBucket checks that a bucket deleted under a running server is
// reported as such, not as a missing file.
func TestMissingBucket(t *testing.T) {
	f := newFake(t)
	s, _ := f.backend(t, Options{}).Home(t.Context(), "alice")
	if err := f.mem.DeleteBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	_, err := s.Stat(t.Context(), "/f")
	if errors.Is(err, storage.ErrNotExist) || !errors.Is(err, errBucketMissing) || !strings.Contains(err.Error(), `"test"`) {
		t.Errorf("Stat with the bucket gone: %v, want an error naming the missing bucket", err)
	}
	_, err = s.ReadDir(t.Context(), "/")
	if !errors.Is(err, errBucketMissing) {
		t.Errorf("ReadDir with the bucket gone: %v", err)
	}
}

func TestMapErr(t *testing.T) {
	apiErr := func(code string, status int) error {
		return &smithy.OperationError{ServiceID: "S3", OperationName: "Op", Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.GenericAPIError{Code: code, Message: "message"},
			},
		}}
	}
	for _, tt := range []struct {
		err  error
		want error // nil: no sentinel
	}{
		{apiErr("NoSuchKey", 404), storage.ErrNotExist},
		{apiErr("NotFound", 404), storage.ErrNotExist},
		{apiErr("", 404), storage.ErrNotExist},
		{apiErr("NoSuchUpload", 404), nil},
		{apiErr("NoSuchBucket", 404), errBucketMissing},
		{apiErr("AccessDenied", 403), storage.ErrPermission},
		{apiErr("Forbidden", 403), storage.ErrPermission},
		{apiErr("SignatureDoesNotMatch", 403), nil},
		{apiErr("InvalidAccessKeyId", 403), nil},
		{apiErr("PreconditionFailed", 412), storage.ErrExist},
		{apiErr("", 412), storage.ErrExist},
		{apiErr("ConditionalRequestConflict", 409), storage.ErrExist},
		{apiErr("EntityTooLarge", 400), storage.ErrNoSpace},
		{apiErr("KeyTooLongError", 400), storage.ErrInvalidName},
		{apiErr("SlowDown", 503), nil},
		{apiErr("InternalError", 500), nil},
		{fmt.Errorf("op: %w", context.Canceled), context.Canceled},
		{fmt.Errorf("op: %w", context.DeadlineExceeded), context.DeadlineExceeded},
	} {
		err := mapErr("op", "bucket", "key", tt.err)
		if !strings.HasPrefix(err.Error(), "s3: op key: ") {
			t.Errorf("mapErr(%v) reads %q", tt.err, err)
		}
		sentinels := []error{storage.ErrNotExist, storage.ErrExist, storage.ErrPermission, storage.ErrNoSpace,
			storage.ErrInvalidName, errBucketMissing, context.Canceled, context.DeadlineExceeded}
		for _, s := range sentinels {
			if errors.Is(err, s) != (s == tt.want) {
				t.Errorf("mapErr(%v): errors.Is(%v) = %v", tt.err, s, errors.Is(err, s))
			}
		}
	}
	if err := mapErr("op", "b", "k", nil); err != nil {
		t.Errorf("mapErr(nil) = %v", err)
	}
}
