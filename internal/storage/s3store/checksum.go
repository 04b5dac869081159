package s3store

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Where an upload's SHA-256 is kept in S3. S3's own checksums do not fit:
// a multipart upload's SHA-256 checksum is a checksum of the parts'
// checksums, not of the object (full-object checksums exist for the CRC
// algorithms only), and user metadata can be set only when the upload
// starts, before the hash is known. So:
//
//   - an object sent in one PutObject (smaller than a part) carries it as
//     user metadata, x-amz-meta-cloudftpd-sha256, written with the object;
//   - a multipart upload gets it as object tags after completion
//     (cloudftpd-sha256, and cloudftpd-etag with the completed object's
//     ETag): a tag can be added without copying the object. The ETag binds
//     the value to that object: if another upload replaced it between the
//     completion and the tagging, its ETag differs, and the value is not
//     believed (ErrNoChecksum, so HASH computes it on request).
//
// Tagging needs s3:PutObjectTagging and reading it s3:GetObjectTagging; a
// server or policy that refuses them costs only the shortcut (logged once).
// It is used only with Options.ChecksumTags: a server that does not know
// the ?tagging subresource could mistake the request for a PutObject and
// replace the object with the tag document.
const (
	metaSHA256 = "cloudftpd-sha256" // user metadata key (SDK form, no x-amz-meta-)
	tagSHA256  = "cloudftpd-sha256"
	tagETag    = "cloudftpd-etag"
)

var _ storage.Checksummer = (*tree)(nil)

// SetSHA256 has Commit store sum with the object, unless the upload
// continues an object (sum would be of the new bytes only).
func (u *upload) SetSHA256(sum [32]byte) {
	if !u.resumed {
		u.sum = &sum
	}
}

var _ storage.ChecksumSetter = (*upload)(nil)

func trimETag(s *string) string { return strings.Trim(aws.ToString(s), `"`) }

// tagChecksum tags the object key, just completed with etag, with sum.
// Failures are logged (a refusal once per backend) and otherwise ignored:
// the upload is committed.
func (t *tree) tagChecksum(ctx context.Context, key, etag string, sum [32]byte, keep []types.Tag) {
	if !t.b.checksumTags {
		return
	}
	tags := []types.Tag{
		{Key: aws.String(tagSHA256), Value: aws.String(hex.EncodeToString(sum[:]))},
		{Key: aws.String(tagETag), Value: aws.String(etag)},
	}
	for _, tg := range keep {
		if k := aws.ToString(tg.Key); k != tagSHA256 && k != tagETag {
			tags = append(tags, tg)
		}
	}
	_, err := do(context.WithoutCancel(ctx), t.b, "PutObjectTagging", t.b.client.PutObjectTagging, &s3.PutObjectTaggingInput{
		Bucket: &t.b.bucket, Key: &key, Tagging: &types.Tagging{TagSet: tags},
	})
	if err != nil {
		t.checksumTrouble("PutObjectTagging", key, err)
	}
}

// checksumTrouble logs a failed tagging request: once per backend when
// the server or the policy refuses tagging, every time otherwise.
func (t *tree) checksumTrouble(op, key string, err error) {
	mapped := t.mapErr(op, key, err)
	if errors.Is(mapped, storage.ErrPermission) || isStatus(err, "NotImplemented", 501) || isStatus(err, "AccessDenied", 403) {
		if t.b.tagWarned.CompareAndSwap(false, true) {
			t.b.log.Warn("s3: object tagging refused; checksums of multipart uploads are not stored, and HASH computes them on request (allow s3:PutObjectTagging and s3:GetObjectTagging)",
				"bucket", t.b.bucket, "op", op, "err", err)
		}
		return
	}
	t.b.log.Warn("s3: could not store or read an upload's checksum; HASH will compute it on request", "bucket", t.b.bucket, "key", key, "op", op, "err", err)
}

// SHA256 returns the SHA-256 stored with name: its metadata for an object
// sent in one request, its tags (while they match its ETag) for a
// multipart upload; storage.ErrNoChecksum when there is none.
func (t *tree) SHA256(ctx context.Context, name string) ([32]byte, error) {
	key, root, err := t.resolve(ctx, "checksum", name)
	if err != nil {
		return [32]byte{}, err
	}
	if root {
		return [32]byte{}, newErr("checksum", key, storage.ErrIsDir, "")
	}
	out, err := t.head(ctx, key)
	if err != nil {
		err = t.mapErr("checksum", key, err)
		if errors.Is(err, storage.ErrNotExist) {
			if ok, _, derr := t.findDir(ctx, "checksum", key+"/"); derr == nil && ok {
				return [32]byte{}, newErr("checksum", key, storage.ErrIsDir, "")
			}
		}
		return [32]byte{}, err
	}
	sum, _, err := t.storedSum(ctx, key, out)
	return sum, err
}

// storedSum finds the checksum of the object key that head describes,
// and returns the object's tags too (for Rename to carry them over).
func (t *tree) storedSum(ctx context.Context, key string, head *s3.HeadObjectOutput) ([32]byte, []types.Tag, error) {
	if v, ok := head.Metadata[metaSHA256]; ok {
		if sum, ok := parseSum(v); ok {
			return sum, nil, nil
		}
	}
	none := newErr("checksum", key, storage.ErrNoChecksum, "")
	if !t.b.checksumTags || (aws.ToInt32(head.TagCount) == 0 && head.TagCount != nil) {
		return [32]byte{}, nil, none
	}
	out, err := do(ctx, t.b, "GetObjectTagging", t.b.client.GetObjectTagging, &s3.GetObjectTaggingInput{Bucket: &t.b.bucket, Key: &key})
	if err != nil {
		if ctx.Err() != nil {
			return [32]byte{}, nil, t.mapErr("checksum", key, err)
		}
		t.checksumTrouble("GetObjectTagging", key, err)
		return [32]byte{}, nil, none
	}
	var hexSum, etag string
	for _, tg := range out.TagSet {
		switch aws.ToString(tg.Key) {
		case tagSHA256:
			hexSum = aws.ToString(tg.Value)
		case tagETag:
			etag = aws.ToString(tg.Value)
		}
	}
	sum, ok := parseSum(hexSum)
	if !ok || etag == "" || etag != trimETag(head.ETag) {
		return [32]byte{}, out.TagSet, none
	}
	return sum, out.TagSet, nil
}

func parseSum(v string) ([32]byte, bool) {
	var sum [32]byte
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != len(sum) {
		return sum, false
	}
	copy(sum[:], b)
	return sum, true
}
