package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// abortTimeout bounds the request that aborts a multipart upload, which
// runs even when the upload's context is cancelled.
const abortTimeout = 30 * time.Second

// defaultReabortAfter are the delays after which an upload whose part
// requests were cancelled in flight is aborted again. The server may still
// store such a part after AbortMultipartUpload, which brings the upload
// back with that part (stored and billed): "if any part uploads are
// currently in progress, those part uploads might or might not succeed. As
// a result, it might be necessary to abort a given multipart upload
// multiple times" (S3 API Reference, AbortMultipartUpload). versitygw does
// exactly that when an FTP client vanishes mid-upload.
var defaultReabortAfter = []time.Duration{time.Second, 5 * time.Second}

// partSizeFor returns the size of part n (1-based) of an upload whose
// first parts have base bytes: base doubles after every partsPerSize parts,
// up to MaxPartSize, so that an upload of unknown size fits in S3's 10,000
// parts.
func partSizeFor(base int64, n int32) int64 {
	size := base
	for range (n - 1) / partsPerSize {
		size *= 2
		if size >= MaxPartSize {
			return MaxPartSize
		}
	}
	return size
}

// upload implements storage.Upload on top of a multipart upload, started
// only when the data outgrows one part (smaller files are one PutObject at
// Commit).
//
// Write and ReadFrom fill buf; a full buf is handed to a goroutine that
// sends it as a part, after waiting for one of the slots (Concurrency of
// them) to be free. So at most Concurrency buffers are being sent and one
// is being filled, whatever the speeds of the client and of S3. A sent
// buffer goes back to the upload's own free list, so an upload allocates
// (or takes from the Backend's pool) Concurrency+1 buffers at most and
// makes no garbage of them, whenever the garbage collector runs; they go
// to the Backend's pool when the upload ends. A failed part cancels the
// others and fails the next Write.
type upload struct {
	t         *tree
	key       string
	exclusive bool

	// ctx is the context of the part uploads: Create's, cancelled by
	// Abort, by a failed part, and by the end of Commit's context.
	ctx    context.Context
	cancel context.CancelFunc

	buf      []byte // the part being filled; nil when none is
	partSize int64  // capacity of the part being filled
	next     int32  // number of the part being filled (1-based)
	id       string // multipart upload ID; "" until the first part goes

	slots chan struct{} // one token per part being sent
	wg    sync.WaitGroup

	mu    sync.Mutex
	parts []types.CompletedPart // parts sent, in completion order
	err   error                 // first failure of a part
	free  [][]byte              // sent buffers, for the next parts
	// cut is set when a part request was cancelled in flight: the
	// server may still store that part after an abort.
	cut bool

	done bool // Commit or Abort ran
}

var errFinished = errors.New("upload already committed or aborted")

func newUpload(ctx context.Context, t *tree, key string, exclusive bool) *upload {
	ctx, cancel := context.WithCancel(ctx)
	return &upload{
		t: t, key: key, exclusive: exclusive,
		ctx: ctx, cancel: cancel,
		partSize: t.b.partSize, next: 1,
		slots: make(chan struct{}, t.b.concurrency),
	}
}

// Write copies p into part buffers, sending each full one.
func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, &opError{op: "write", key: u.key, err: errFinished}
	}
	n := 0
	for len(p) > 0 {
		if err := u.makeRoom(); err != nil {
			return n, err
		}
		c := copy(u.buf[len(u.buf):cap(u.buf)], p)
		u.buf = u.buf[:len(u.buf)+c]
		n += c
		p = p[c:]
	}
	return n, nil
}

// ReadFrom reads r straight into part buffers, saving io.Copy's own
// buffer and a copy of every byte.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	if u.done {
		return 0, &opError{op: "write", key: u.key, err: errFinished}
	}
	var total int64
	for {
		if err := u.makeRoom(); err != nil {
			return total, err
		}
		n, err := r.Read(u.buf[len(u.buf):cap(u.buf)])
		u.buf = u.buf[:len(u.buf)+n]
		total += int64(n)
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// makeRoom makes sure buf has free space: it sends a full buffer as a
// part and gets an empty one. It reports the failure of an earlier part.
func (u *upload) makeRoom() error {
	if err := u.failure(); err != nil {
		return err
	}
	if u.buf != nil && len(u.buf) == cap(u.buf) {
		if err := u.sendPart(); err != nil {
			return err
		}
	}
	if u.buf == nil {
		u.buf = u.getBuf()
	}
	return nil
}

// getBuf returns an empty buffer of partSize bytes, from the free list if
// it has one. Buffers of another size (the part size grew) are released.
func (u *upload) getBuf() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.free) > 0 {
		buf := u.free[len(u.free)-1]
		u.free = u.free[:len(u.free)-1]
		if int64(cap(buf)) == u.partSize {
			return buf[:0]
		}
		u.t.b.putBuf(buf)
	}
	return u.t.b.getBuf(u.partSize)
}

// failure returns the first failure of a part upload.
func (u *upload) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// fail records err as the upload's failure (unless one is already) and
// cancels the parts in progress.
func (u *upload) fail(err error) {
	u.mu.Lock()
	if u.err == nil {
		u.err = err
	}
	u.mu.Unlock()
	u.cancel()
}

// sendPart starts sending buf as the next part, first starting the
// multipart upload if needed. It waits for a free slot.
func (u *upload) sendPart() error {
	b := u.t.b
	if u.next > maxParts {
		err := newErr("upload-part", u.key, storage.ErrNoSpace, "more than 10,000 parts")
		u.fail(err)
		return err
	}
	if u.id == "" {
		in := &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &u.key}
		if b.checksums {
			in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
		}
		out, err := b.client.CreateMultipartUpload(u.ctx, in)
		if err != nil {
			err = u.t.mapErr("create-upload", u.key, err)
			u.fail(err)
			return err
		}
		u.id = aws.ToString(out.UploadId)
	}
	select {
	case u.slots <- struct{}{}:
	case <-u.ctx.Done():
		if err := u.failure(); err != nil {
			return err
		}
		return &opError{op: "upload-part", key: u.key, err: u.ctx.Err()}
	}
	buf, n, id := u.buf, u.next, u.id
	u.buf = nil
	u.next++
	u.partSize = partSizeFor(b.partSize, u.next)
	u.wg.Go(func() {
		defer func() { <-u.slots }()
		part, err := u.uploadPart(id, n, buf)
		if err != nil {
			u.fail(err)
		}
		u.mu.Lock()
		u.free = append(u.free, buf)
		if err == nil {
			u.parts = append(u.parts, part)
		}
		u.cut = u.cut || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
		u.mu.Unlock()
	})
	return nil
}

// uploadPart sends buf as part n of the multipart upload id.
func (u *upload) uploadPart(id string, n int32, buf []byte) (types.CompletedPart, error) {
	b := u.t.b
	in := &s3.UploadPartInput{
		Bucket: &b.bucket, Key: &u.key, UploadId: &id, PartNumber: aws.Int32(n),
		Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
	}
	if b.checksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := b.client.UploadPart(u.ctx, in)
	if err != nil {
		return types.CompletedPart{}, u.t.mapErr("upload-part", u.key, fmt.Errorf("part %d: %w", n, err))
	}
	return types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumCRC32: out.ChecksumCRC32}, nil
}

// Commit publishes the data: one PutObject for a file smaller than a part,
// otherwise the last part and CompleteMultipartUpload. Exclusive uploads
// are conditional (If-None-Match: "*"); see the package documentation.
// When Commit fails (a cancelled ctx included) the upload is aborted, so a
// later Abort is a no-op.
func (u *upload) Commit(ctx context.Context) error {
	if u.done {
		return &opError{op: "commit", key: u.key, err: errFinished}
	}
	if err := ctx.Err(); err != nil {
		u.Abort()
		return &opError{op: "commit", key: u.key, err: err}
	}
	u.done = true
	stop := context.AfterFunc(ctx, u.cancel)
	defer stop()
	if u.id == "" {
		return u.put(ctx)
	}
	err := u.complete(ctx)
	u.discard() // after a success, only releases the buffers
	return err
}

// put sends a file smaller than a part as one object.
func (u *upload) put(ctx context.Context) error {
	b := u.t.b
	in := &s3.PutObjectInput{
		Bucket: &b.bucket, Key: &u.key,
		Body: bytes.NewReader(u.buf), ContentLength: aws.Int64(int64(len(u.buf))),
	}
	if u.exclusive {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := b.client.PutObject(ctx, in)
	u.discard()
	return u.t.mapErr("put", u.key, err)
}

// complete sends the last part, waits for all of them and completes the
// multipart upload.
func (u *upload) complete(ctx context.Context) error {
	b := u.t.b
	if len(u.buf) > 0 {
		if err := u.sendPart(); err != nil {
			return err
		}
	}
	u.wg.Wait()
	if err := u.failure(); err != nil {
		return err
	}
	if u.exclusive {
		// For servers that ignore If-None-Match on completion.
		_, err := u.t.head(ctx, u.key)
		if err == nil {
			return newErr("complete-upload", u.key, storage.ErrExist, "")
		}
		if err = u.t.mapErr("complete-upload", u.key, err); !errors.Is(err, storage.ErrNotExist) {
			return err
		}
	}
	parts := slices.Clone(u.parts)
	slices.SortFunc(parts, func(a, b types.CompletedPart) int {
		return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber))
	})
	in := &s3.CompleteMultipartUploadInput{
		Bucket: &b.bucket, Key: &u.key, UploadId: &u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if u.exclusive {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := b.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return u.t.mapErr("complete-upload", u.key, err)
	}
	u.id = "" // nothing left to abort
	return nil
}

// Abort discards the data, aborting the multipart upload if one started.
// The previous object, if any, is left as it was.
func (u *upload) Abort() error {
	if u.done {
		return nil
	}
	u.done = true
	return u.discard()
}

// discard stops the part uploads, releases the buffers and aborts the
// multipart upload if one is open.
func (u *upload) discard() error {
	u.cancel()
	u.wg.Wait()
	if u.buf != nil {
		u.t.b.putBuf(u.buf)
		u.buf = nil
	}
	for _, buf := range u.free {
		u.t.b.putBuf(buf)
	}
	u.free = nil
	if u.id == "" {
		return nil
	}
	id := u.id
	u.id = ""
	err := u.t.abortUpload(u.ctx, u.key, id)
	if u.cut && err == nil {
		go u.t.abortAgain(u.key, id)
	}
	return err
}

// abortAgain aborts the multipart upload id of key again after each of the
// Backend's reabortAfter delays, for parts that the server stored after
// the first abort (see defaultReabortAfter). NoSuchUpload is the expected
// answer. Failures are not logged: the first abort's were, the server's
// lifecycle rule remains the safety net, and this runs after the session
// (and possibly the server) that started the upload has ended.
func (t *tree) abortAgain(key, id string) {
	for _, d := range t.b.reabortAfter {
		time.Sleep(d)
		ctx, cancel := context.WithTimeout(context.Background(), abortTimeout)
		t.b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: &t.b.bucket, Key: &key, UploadId: &id,
		})
		cancel()
	}
}

// abortUpload aborts the multipart upload id of key, even when ctx is
// cancelled. A failure is logged as well as returned: the parts stay
// stored (and billed) until a lifecycle rule removes them.
func (t *tree) abortUpload(ctx context.Context, key, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := t.b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &t.b.bucket, Key: &key, UploadId: &id,
	})
	if err == nil || isStatus(err, "NoSuchUpload", 0) {
		return nil
	}
	t.b.log.Warn("s3: could not abort a multipart upload; its parts stay stored until removed",
		"bucket", t.b.bucket, "key", key, "upload_id", id, "err", err)
	return t.mapErr("abort-upload", key, err)
}
