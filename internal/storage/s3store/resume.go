package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Resumed uploads (REST + STOR) and appends (APPE). S3 cannot change an
// object, so both write a new object made of the first bytes of the old
// one (the prefix) and then the new data, through the same multipart
// upload as any other, and the old object stays as it was until
// CompleteMultipartUpload replaces it (or PutObject, below one part): a
// resume that fails or is aborted leaves it intact, exactly as a failed
// STOR does. The prefix comes from one of:
//
//   - UploadPartCopy, a copy inside S3 that sends no byte through the
//     server, when the prefix is at least S3's minimum part size (5 MiB;
//     every part but the last must be that large, and the copied parts
//     come first). A prefix above copyPartMax is split into several copy
//     parts of at most that size (S3 copies at most 5 GiB per part), sent
//     in parallel while the client's data arrives.
//   - A ranged GET into the first part buffer, for a prefix below 5 MiB:
//     at most 5 MiB through the server and out of the upload memory
//     budget like any part.
//   - A ranged GET streamed through part buffers, for a larger prefix on
//     a server without UploadPartCopy (gofakes3): slow, the whole prefix
//     crosses the server, but with bounded memory and correct.
//
// Every read and copy of the prefix is conditional on the ETag the object
// had when the upload began (If-Match, x-amz-copy-source-if-match), so a
// prefix is never taken from a version that another writer put there
// meanwhile: the upload fails instead (HTTP 412), and the object another
// writer stored stays.
//
// The new object has no stored SHA-256: the server hashes only whole
// uploads, and neither the metadata (not given to CreateMultipartUpload or
// PutObject) nor the tags of the old object carry over to the object a
// multipart upload completes, so HASH computes it on request.

// partCopySupport says whether the server implements UploadPartCopy, as
// learnt from the first resume: unknown until then.
const (
	partCopyUnknown int32 = iota
	partCopyYes
	partCopyNo
)

// errNoPartCopy is the cause of a resume on a server that answered an
// UploadPartCopy without a copy result (it took the request for a plain
// UploadPart, as gofakes3 does).
var errNoPartCopy = errors.New("the S3 server does not implement UploadPartCopy")

// prefix is what a resumed upload keeps of the object it replaces: its
// first size bytes, in the version with the ETag etag.
type prefix struct {
	size int64
	etag string // as HeadObject gives it, quotes included
}

// createResume starts an upload that continues the object key at
// opts.Offset, or at its end for opts.Append (a missing object is then
// created, as APPE does).
func (t *tree) createResume(ctx context.Context, key string, opts storage.CreateOptions) (storage.Upload, error) {
	head, err := t.head(ctx, key)
	if err != nil {
		err = t.mapErr("create", key, err)
		if opts.Append && errors.Is(err, storage.ErrNotExist) {
			return newUpload(ctx, t, key, opts.Exclusive), nil
		}
		return nil, err
	}
	if opts.Exclusive {
		return nil, newErr("create", key, storage.ErrExist, "")
	}
	size := aws.ToInt64(head.ContentLength)
	offset := opts.Offset
	if opts.Append {
		offset = size
	}
	if offset > size {
		return nil, newErr("create", key, storage.ErrUnsupported,
			fmt.Sprintf("offset %d beyond the end of the object (%d bytes)", offset, size))
	}
	u := newUpload(ctx, t, key, false)
	u.resumed = true
	if offset == 0 {
		return u, nil // nothing to keep: a plain replacement
	}
	p := prefix{size: offset, etag: aws.ToString(head.ETag)}
	switch {
	case offset < MinPartSize:
		err = u.readPrefix(p)
	case t.b.partCopy.Load() != partCopyNo:
		var copied bool
		copied, err = u.copyPrefix(p)
		if err == nil && !copied {
			u.pending = &p
		}
	default:
		u.pending = &p
	}
	if err != nil {
		u.discard()
		return nil, err
	}
	return u, nil
}

// feedPending reads a prefix that could not be copied inside S3 into the
// part buffers, before the first byte of the client's data. The writer
// calls it when it enters.
func (u *upload) feedPending() error {
	if u.pending == nil {
		return nil
	}
	p := *u.pending
	u.pending = nil
	return u.readPrefix(p)
}

// readPrefix fills the part buffers with the first p.size bytes of the
// object, as a client's data would, sending the full ones as parts.
func (u *upload) readPrefix(p prefix) error {
	b := u.t.b
	in := &s3.GetObjectInput{
		Bucket: &b.bucket, Key: &u.key, IfMatch: aws.String(p.etag),
		Range: aws.String("bytes=0-" + strconv.FormatInt(p.size-1, 10)),
	}
	rctx, w := b.watch(u.ctx, "GetObject")
	out, err := b.client.GetObject(rctx, in, w.option)
	if err != nil {
		w.stop()
		err = u.prefixErr("read-prefix", w.check(err))
		u.fail(err)
		return err
	}
	body := &download{ReadCloser: out.Body, key: u.key, w: w}
	defer body.Close()
	n, err := u.fill(io.LimitReader(body, p.size))
	if err == nil && n != p.size {
		err = newErr("read-prefix", u.key, nil, fmt.Sprintf("the object ended after %d of %d bytes", n, p.size))
	}
	if err != nil {
		u.fail(err)
	}
	return err
}

// prefixErr maps a failed read or copy of the prefix: 412 means that the
// object is no longer the version the resume began with.
func (u *upload) prefixErr(op string, err error) error {
	if isStatus(err, "PreconditionFailed", 412) {
		return &opError{op: op, key: u.key, err: fmt.Errorf("the file changed since the resumed upload began; resume again: %w", err)}
	}
	return u.t.mapErr(op, u.key, err)
}

// copyPrefix starts the multipart upload and copies the prefix into its
// first parts inside S3, in the background (the writer's Commit waits for
// them like for any part). On a server not known to support
// UploadPartCopy it first copies one byte as part 1, which the real copy
// replaces: false then means that the server lacks UploadPartCopy (and
// the backend remembers), and the upload must read the prefix itself.
func (u *upload) copyPrefix(p prefix) (bool, error) {
	b := u.t.b
	in := &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &u.key}
	if b.checksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	// Not cancelled with the session, as in sendPart.
	out, err := do(context.WithoutCancel(u.ctx), b, "CreateMultipartUpload", b.client.CreateMultipartUpload, in)
	if err != nil {
		return false, u.t.mapErr("create-upload", u.key, err)
	}
	id := aws.ToString(out.UploadId)
	u.mu.Lock()
	u.id = id
	u.mu.Unlock()
	if b.partCopy.Load() == partCopyUnknown {
		_, err := u.copyPart(id, 1, 0, 1, p.etag)
		switch {
		case noPartCopy(err):
			b.partCopy.Store(partCopyNo)
			b.log.Info("s3: the server does not implement UploadPartCopy; resumed uploads read the existing data through the server", "bucket", b.bucket, "err", err)
			// An upload of its own: the prefix goes as parts 1, 2, ...
			u.mu.Lock()
			u.id = ""
			u.mu.Unlock()
			u.t.abortUpload(u.ctx, u.key, id)
			return false, nil
		case err != nil:
			return false, err
		}
		b.partCopy.Store(partCopyYes)
	}
	sizes := copyRanges(p.size, b.copyPartMax)
	u.next = int32(len(sizes)) + 1
	u.wg.Go(func() { u.copyParts(id, sizes, p.etag) })
	return true, nil
}

// copyParts copies the prefix as parts 1..len(sizes), Concurrency at a
// time, recording them as sent parts; the first failure fails the upload.
func (u *upload) copyParts(id string, sizes []int64, etag string) {
	limit := make(chan struct{}, u.t.b.concurrency)
	var wg sync.WaitGroup
	var start int64
	for i, size := range sizes {
		select {
		case limit <- struct{}{}:
		case <-u.ctx.Done():
			wg.Wait()
			return
		}
		n, from := int32(i+1), start
		start += size
		wg.Go(func() {
			defer func() { <-limit }()
			part, err := u.copyPart(id, n, from, size, etag)
			if noPartCopy(err) {
				u.t.b.partCopy.Store(partCopyNo) // the next resume reads
				err = newErr("upload-part-copy", u.key, storage.ErrUnsupported, err.Error())
			}
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
	}
	wg.Wait()
}

// copyPart copies size bytes of the object from the offset from as part
// n of the multipart upload id, if the object still has the ETag etag.
func (u *upload) copyPart(id string, n int32, from, size int64, etag string) (types.CompletedPart, error) {
	b := u.t.b
	source := escapeCopySource(b.bucket + "/" + u.key)
	out, err := do(u.ctx, b, "UploadPartCopy", b.client.UploadPartCopy, &s3.UploadPartCopyInput{
		Bucket: &b.bucket, Key: &u.key, UploadId: &id, PartNumber: aws.Int32(n),
		CopySource: &source, CopySourceIfMatch: aws.String(etag),
		CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", from, from+size-1)),
	})
	if err != nil {
		return types.CompletedPart{}, u.prefixErr("upload-part-copy", fmt.Errorf("part %d: %w", n, err))
	}
	if out.CopyPartResult == nil || aws.ToString(out.CopyPartResult.ETag) == "" {
		return types.CompletedPart{}, &opError{op: "upload-part-copy", key: u.key, err: errNoPartCopy}
	}
	// S3 returns the part's CRC32 when the multipart upload was created
	// with that algorithm (b.checksums), and the completion then needs it
	// like an UploadPart's.
	r := out.CopyPartResult
	return types.CompletedPart{ETag: r.ETag, PartNumber: aws.Int32(n), ChecksumCRC32: r.ChecksumCRC32}, nil
}

// noPartCopy reports whether err says that the server lacks
// UploadPartCopy: it said so (501), or took the request for an UploadPart
// without a body.
func noPartCopy(err error) bool {
	return err != nil && (errors.Is(err, errNoPartCopy) || isStatus(err, "NotImplemented", 501) ||
		isStatus(err, "MissingContentLength", 411))
}

// maxCopyParts bounds how many of an upload's 10,000 parts a copied
// prefix takes, leaving the rest for the new data.
const maxCopyParts = 2000

// copyRanges splits a prefix of n bytes (at least MinPartSize) into the
// sizes of its copy parts: as few as keep each at most target bytes
// (raised for prefixes that would need more than maxCopyParts parts), all
// of nearly the same size. All are then between target/2 and target (or
// n itself, below target), so with a target of at least 10 MiB none is
// below S3's 5 MiB minimum, and with one of at most 5 GiB none above the
// largest copy.
func copyRanges(n, target int64) []int64 {
	target = max(target, (n+maxCopyParts-1)/maxCopyParts)
	k := (n + target - 1) / target
	sizes := make([]int64, k)
	for i := range sizes {
		sizes[i] = n / k
		if int64(i) < n%k {
			sizes[i]++
		}
	}
	return sizes
}
