package s3store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// CheckWrite starts a multipart upload under the prefix and aborts it:
// the permissions every upload needs (s3:PutObject,
// s3:AbortMultipartUpload), with no object written.
func (b *Backend) CheckWrite(ctx context.Context) error {
	key := b.prefix + ".cloudftpd-check"
	out, err := do(ctx, b, "CreateMultipartUpload", b.client.CreateMultipartUpload, &s3.CreateMultipartUploadInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("s3: start an upload to s3://%s/%s: %w", b.bucket, key, err)
	}
	if _, err := do(ctx, b, "AbortMultipartUpload", b.client.AbortMultipartUpload, &s3.AbortMultipartUploadInput{
		Bucket: &b.bucket, Key: &key, UploadId: out.UploadId,
	}); err != nil {
		return fmt.Errorf("s3: abort the check upload to s3://%s/%s: %w", b.bucket, key, err)
	}
	return nil
}
