package s3store

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// minCopyPartSize is the part size of multipart copies, unless the object
// is so large that 10,000 parts need larger ones.
const minCopyPartSize = 512 << 20

// copyPartSize decides how to copy an object of size bytes: 0 for one
// CopyObject (S3 copies up to 5 GiB in one request), otherwise the part
// size of a multipart copy with UploadPartCopy.
func copyPartSize(size int64) int64 {
	if size <= MaxPartSize {
		return 0
	}
	part := int64(minCopyPartSize)
	if need := (size + maxParts - 1) / maxParts; need > part {
		part = need
	}
	return part
}

// copy copies the object from (of size bytes) to the key to, replacing
// what is there, and returns the copy's ETag.
func (t *tree) copy(ctx context.Context, from, to string, size int64) (string, error) {
	source := escapeCopySource(t.b.bucket + "/" + from)
	part := copyPartSize(size)
	if part == 0 {
		out, err := do(ctx, t.b, "CopyObject", t.b.client.CopyObject, &s3.CopyObjectInput{
			Bucket: &t.b.bucket, Key: &to, CopySource: &source,
		})
		if err != nil {
			return "", t.mapErr("copy", from+" -> "+to, err)
		}
		if out.CopyObjectResult == nil {
			return "", nil
		}
		return trimETag(out.CopyObjectResult.ETag), nil
	}
	create, err := do(ctx, t.b, "CreateMultipartUpload", t.b.client.CreateMultipartUpload, &s3.CreateMultipartUploadInput{Bucket: &t.b.bucket, Key: &to})
	if err != nil {
		return "", t.mapErr("copy", to, err)
	}
	id := aws.ToString(create.UploadId)
	var parts []types.CompletedPart
	for n, start := int32(1), int64(0); start < size; n, start = n+1, start+part {
		end := min(start+part, size) - 1
		out, err := do(ctx, t.b, "UploadPartCopy", t.b.client.UploadPartCopy, &s3.UploadPartCopyInput{
			Bucket: &t.b.bucket, Key: &to, UploadId: &id, PartNumber: aws.Int32(n),
			CopySource: &source, CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", start, end)),
		})
		if err != nil {
			t.abortUpload(ctx, to, id)
			return "", t.mapErr("copy", from+" -> "+to, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)})
	}
	out, err := do(ctx, t.b, "CompleteMultipartUpload", t.b.client.CompleteMultipartUpload, &s3.CompleteMultipartUploadInput{
		Bucket: &t.b.bucket, Key: &to, UploadId: &id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		t.abortUpload(ctx, to, id)
		return "", t.mapErr("copy", from+" -> "+to, err)
	}
	return trimETag(out.ETag), nil
}

// escapeCopySource percent-encodes "bucket/key" for the x-amz-copy-source
// header, keeping only unreserved characters and slashes: servers decode
// it differently ("+" is a space to some), so nothing ambiguous is left.
func escapeCopySource(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}
