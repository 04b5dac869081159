package s3store

import (
	"bytes"
	"context"
	"encoding/hex"
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
// up to limit, so that an upload of unknown size fits in S3's 10,000
// parts. limit is the Backend's maxPartSize: S3's largest part, or the
// upload memory when that is smaller, so that every part fits in it.
func partSizeFor(base, limit int64, n int32) int64 {
	size := base
	for range (n - 1) / partsPerSize {
		size *= 2
		if size >= limit {
			return limit
		}
	}
	return size
}

// partSizes lists the sizes partSizeFor returns for base and limit.
func partSizes(base, limit int64) []int64 {
	var sizes []int64
	for n := int32(1); n <= maxParts; n += partsPerSize {
		if s := partSizeFor(base, limit, n); len(sizes) == 0 || s != sizes[len(sizes)-1] {
			sizes = append(sizes, s)
		}
	}
	return sizes
}

// maxUploadSize is how many bytes 10,000 parts hold for base and limit.
func maxUploadSize(base, limit int64) int64 {
	var total int64
	for n := int32(1); n <= maxParts; n += partsPerSize {
		total += partsPerSize * partSizeFor(base, limit, n)
	}
	return total
}

// uploadState is where an upload is in its life. Every change happens
// under upload.mu, and the change from committing to publishing is the one
// moment that decides between Commit and Abort: before it, an Abort wins
// and the final request is never sent; after it, Abort is a no-op and
// Commit's result stands.
type uploadState int

const (
	// writing: Write and ReadFrom take data.
	writing uploadState = iota
	// committing: Commit sends the last part and waits for the others.
	committing
	// publishing: Commit sends the final request (PutObject or
	// CompleteMultipartUpload).
	publishing
	// committed: the object is published.
	committed
	// aborted: Abort, or a failed Commit, discarded the data.
	aborted
)

// upload implements storage.Upload on top of a multipart upload, started
// only when the data outgrows one part (smaller files are one PutObject at
// Commit).
//
// Write and ReadFrom fill buf, taken from the Backend's part memory (they
// wait when it is used up); a full buf is handed to a goroutine that
// sends it as a part, after waiting for one of the slots (Concurrency of
// them) to be free, and gives it back to the part memory as soon as the
// part is stored. So an upload holds the buffer being filled and at most
// Concurrency being sent, and nothing once it ends. A failed part cancels
// the others and fails the next Write.
//
// Write, ReadFrom and Commit are the writer: one goroutine at a time, the
// session's. Abort may come from any goroutine at any time. While the
// writer is inside one of its methods it owns buf and the multipart
// upload's start, and an Abort only marks the upload aborted and cancels
// its requests; the writer cleans up when it returns.
type upload struct {
	t         *tree
	key       string
	exclusive bool

	// ctx is the context of the part uploads: Create's, cancelled by
	// Abort, by a failed part, and by the end of Commit's context.
	ctx    context.Context
	cancel context.CancelFunc

	// Owned by the writer, or by Abort when no writer is inside.
	buf  []byte // the part being filled; nil when none is
	next int32  // number of the part being filled (1-based)

	slots chan struct{} // one token per part being sent
	wg    sync.WaitGroup

	mu     sync.Mutex
	state  uploadState
	inside bool                  // the writer is in Write, ReadFrom or Commit
	id     string                // multipart upload ID; "" until the first part goes, or after the end
	parts  []types.CompletedPart // parts sent, in completion order
	err    error                 // first failure of a part
	// cut is set when a part request was cancelled in flight: the
	// server may still store that part after an abort.
	cut bool
	// released: discard ran (buffers given back, the multipart upload
	// aborted).
	released bool

	sum *[32]byte // from SetSHA256, stored at Commit (checksum.go)

	// resumed: the upload continues an object (resume.go), so it never
	// stores a checksum. pending, owned by the writer, is a prefix still
	// to be read into the part buffers before the client's data.
	resumed bool
	pending *prefix
}

var (
	errFinished = errors.New("upload already committed or aborted")
	errAborted  = errors.New("upload aborted")
)

func newUpload(ctx context.Context, t *tree, key string, exclusive bool) *upload {
	ctx, cancel := context.WithCancel(ctx)
	return &upload{
		t: t, key: key, exclusive: exclusive,
		ctx: ctx, cancel: cancel,
		next:  1,
		slots: make(chan struct{}, t.b.concurrency),
	}
}

// enter starts a method of the writer, which requires the state writing;
// Commit's moves it to committing in the same step, so that no Abort can
// come in between unseen.
func (u *upload) enter(op string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.state == aborted:
		return &opError{op: op, key: u.key, err: errAborted}
	case u.state != writing:
		return &opError{op: op, key: u.key, err: errFinished}
	case u.inside:
		return &opError{op: op, key: u.key, err: errors.New("concurrent use of an upload")}
	}
	u.inside = true
	if op == "commit" {
		u.state = committing
	}
	return nil
}

// leave ends a method of the writer; an Abort that came meanwhile left
// the cleanup to it. After a failure the buffer being filled goes back to
// the part memory at once, for other uploads: this one can only be
// aborted now.
func (u *upload) leave() {
	u.mu.Lock()
	cleanup := u.state == aborted && !u.released
	var drop []byte
	if u.err != nil && !cleanup {
		// Taken while still inside: once inside is false, an Abort may
		// release buf itself.
		drop, u.buf = u.buf, nil
	}
	u.inside = false
	u.mu.Unlock()
	if drop != nil {
		u.t.b.mem.put(drop)
	}
	if cleanup {
		u.discard()
	}
}

// Write copies p into part buffers, sending each full one.
func (u *upload) Write(p []byte) (int, error) {
	if err := u.enter("write"); err != nil {
		return 0, err
	}
	defer u.leave()
	if err := u.feedPending(); err != nil {
		return 0, err
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
	if err := u.enter("write"); err != nil {
		return 0, err
	}
	defer u.leave()
	if err := u.feedPending(); err != nil {
		return 0, err
	}
	return u.fill(r)
}

// fill reads r into part buffers until its end, sending the full ones.
func (u *upload) fill(r io.Reader) (int64, error) {
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
// part and gets an empty one, waiting for the part memory. It reports the
// failure of an earlier part, and an Abort.
func (u *upload) makeRoom() error {
	if err := u.failure(); err != nil {
		return err
	}
	if err := u.ctx.Err(); err != nil {
		return &opError{op: "write", key: u.key, err: err}
	}
	if u.buf != nil && len(u.buf) == cap(u.buf) {
		if err := u.sendPart(); err != nil {
			return err
		}
	}
	if u.buf == nil {
		b := u.t.b
		buf, err := b.mem.get(u.ctx, partSizeFor(b.partSize, b.maxPartSize, u.next))
		if err != nil {
			return &opError{op: "write", key: u.key, err: fmt.Errorf("waiting for upload memory: %w", err)}
		}
		u.buf = buf
	}
	return nil
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
		err := newErr("upload-part", u.key, storage.ErrNoSpace,
			fmt.Sprintf("more than 10,000 parts: uploads are limited to %d bytes with this part size and upload memory", maxUploadSize(b.partSize, b.maxPartSize)))
		u.fail(err)
		return err
	}
	u.mu.Lock()
	id := u.id
	u.mu.Unlock()
	if id == "" {
		in := &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &u.key}
		if b.checksums {
			in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
		}
		// Not cancelled with the session: a CreateMultipartUpload that
		// reached S3 and was cancelled would leave an upload whose id
		// nobody knows, and so nobody aborts. It is bounded by the
		// request timeout, and an upload whose session has ended by
		// then is aborted with its id like any other (the select below).
		out, err := do(context.WithoutCancel(u.ctx), b, "CreateMultipartUpload", b.client.CreateMultipartUpload, in)
		if err != nil {
			err = u.t.mapErr("create-upload", u.key, err)
			u.fail(err)
			return err
		}
		id = aws.ToString(out.UploadId)
		u.mu.Lock()
		u.id = id
		u.mu.Unlock()
	}
	select {
	case u.slots <- struct{}{}:
	case <-u.ctx.Done():
		if err := u.failure(); err != nil {
			return err
		}
		return &opError{op: "upload-part", key: u.key, err: u.ctx.Err()}
	}
	buf, n := u.buf, u.next
	u.buf = nil
	u.next++
	u.wg.Go(func() {
		defer func() { <-u.slots }()
		part, err := u.uploadPart(id, n, buf)
		b.mem.put(buf)
		if err != nil {
			u.fail(err)
		}
		u.mu.Lock()
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
	out, err := do(u.ctx, b, "UploadPart", b.client.UploadPart, in)
	if err != nil {
		return types.CompletedPart{}, u.t.mapErr("upload-part", u.key, fmt.Errorf("part %d: %w", n, err))
	}
	return types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumCRC32: out.ChecksumCRC32}, nil
}

// Commit publishes the data: one PutObject for a file smaller than a part,
// otherwise the last part and CompleteMultipartUpload. Exclusive uploads
// are conditional (If-None-Match: "*"); see the package documentation.
// When Commit fails (a cancelled ctx included) the upload is aborted, so a
// later Abort is a no-op. An Abort before the final request wins: Commit
// then sends nothing more and fails. An error of the final request itself
// (a timeout) cannot tell whether S3 published the object.
func (u *upload) Commit(ctx context.Context) error {
	if err := u.enter("commit"); err != nil {
		return err
	}
	defer u.leave()
	if err := u.feedPending(); err != nil {
		u.end(false)
		return err
	}
	u.mu.Lock()
	id := u.id
	u.mu.Unlock()
	if err := ctx.Err(); err != nil {
		u.fail(err)
		u.end(false)
		return &opError{op: "commit", key: u.key, err: err}
	}
	stop := context.AfterFunc(ctx, u.cancel)
	defer stop()
	var err error
	if id == "" {
		err = u.put(ctx)
	} else {
		err = u.complete(ctx)
	}
	u.end(err == nil)
	return err
}

// publish moves the upload from committing to publishing, just before the
// final request; false means that an Abort came first.
func (u *upload) publish() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.state != committing {
		return false
	}
	u.state = publishing
	return true
}

// end finishes Commit: committed, or aborted with everything discarded.
func (u *upload) end(ok bool) {
	u.mu.Lock()
	if ok {
		u.state = committed
		u.id = "" // nothing left to abort
	} else {
		u.state = aborted
	}
	u.mu.Unlock()
	u.discard() // after a success, only releases what is left
}

// abortedErr is Commit's error when an Abort came first.
func (u *upload) abortedErr() error {
	return &opError{op: "commit", key: u.key, err: errAborted}
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
	if u.sum != nil {
		in.Metadata = map[string]string{metaSHA256: hex.EncodeToString(u.sum[:])}
	}
	if !u.publish() {
		return u.abortedErr()
	}
	_, err := do(ctx, b, "PutObject", b.client.PutObject, in)
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
	if err := u.ctx.Err(); err != nil {
		return &opError{op: "commit", key: u.key, err: err} // Abort, or ctx's end
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
	u.mu.Lock()
	parts := slices.Clone(u.parts)
	id := u.id
	u.mu.Unlock()
	slices.SortFunc(parts, func(a, b types.CompletedPart) int {
		return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber))
	})
	in := &s3.CompleteMultipartUploadInput{
		Bucket: &b.bucket, Key: &u.key, UploadId: &id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if u.exclusive {
		in.IfNoneMatch = aws.String("*")
	}
	if !u.publish() {
		return u.abortedErr()
	}
	out, err := do(ctx, b, "CompleteMultipartUpload", b.client.CompleteMultipartUpload, in)
	if err != nil {
		return u.t.mapErr("complete-upload", u.key, err)
	}
	if u.sum != nil {
		u.t.tagChecksum(ctx, u.key, trimETag(out.ETag), *u.sum, nil)
	}
	return nil
}

// Abort discards the data, aborting the multipart upload if one started.
// The previous object, if any, is left as it was. After Commit has sent
// its final request it does nothing (the object is Commit's to publish or
// not); before, it wins, even against a Commit in progress.
func (u *upload) Abort() error {
	u.mu.Lock()
	switch u.state {
	case publishing, committed, aborted:
		u.mu.Unlock()
		return nil
	}
	u.state = aborted
	inside := u.inside
	u.mu.Unlock()
	u.cancel()
	if inside {
		return nil // the writer cleans up when it returns (leave)
	}
	return u.discard()
}

// discard stops the part uploads, releases the buffers and aborts the
// multipart upload if one is open. It runs once, by the writer or by an
// Abort when no writer is inside.
func (u *upload) discard() error {
	u.mu.Lock()
	if u.released {
		u.mu.Unlock()
		return nil
	}
	u.released = true
	u.mu.Unlock()
	u.cancel()
	u.wg.Wait()
	if u.buf != nil {
		u.t.b.mem.put(u.buf)
		u.buf = nil
	}
	u.mu.Lock()
	id, cut := u.id, u.cut
	u.id = ""
	u.mu.Unlock()
	if id == "" {
		return nil
	}
	err := u.t.abortUpload(u.ctx, u.key, id)
	if cut && err == nil {
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
		do(context.Background(), t.b, "AbortMultipartUpload", t.b.client.AbortMultipartUpload, &s3.AbortMultipartUploadInput{
			Bucket: &t.b.bucket, Key: &key, UploadId: &id,
		})
	}
}

// abortUpload aborts the multipart upload id of key, even when ctx is
// cancelled (the request timeout still bounds it). A failure is logged as
// well as returned: the parts stay stored (and billed) until a lifecycle
// rule removes them.
func (t *tree) abortUpload(ctx context.Context, key, id string) error {
	_, err := do(context.WithoutCancel(ctx), t.b, "AbortMultipartUpload", t.b.client.AbortMultipartUpload, &s3.AbortMultipartUploadInput{
		Bucket: &t.b.bucket, Key: &key, UploadId: &id,
	})
	if err == nil || isStatus(err, "NoSuchUpload", 0) {
		return nil
	}
	t.b.log.Warn("s3: could not abort a multipart upload; its parts stay stored until removed",
		"bucket", t.b.bucket, "key", key, "upload_id", id, "err", err)
	return t.mapErr("abort-upload", key, err)
}
