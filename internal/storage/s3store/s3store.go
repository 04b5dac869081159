// Package s3store stores users' files in an S3 bucket (or an S3-compatible
// server), each user jailed in a key prefix.
//
// It offers:
//   - Backend, created by New from Options (bucket, prefix, region,
//     endpoint, multipart tuning), handing out one storage.Storage per home
//     (it implements storage.Backend);
//   - Options, including an optional *s3.Client for callers (and tests)
//     that configure the client themselves.
//
// # Keys and the jail
//
// The virtual path "/dir/file.txt" of the home "alice" is stored under the
// key Prefix + "alice/" + "dir/file.txt". Every key the package reads,
// writes, lists, copies or deletes starts with the home's prefix including
// its trailing slash, so the home "alice" never sees the keys of "alicex".
// Virtual paths must start with "/" and may not hold "..", ".", empty
// elements, NUL or invalid UTF-8 (storage.ErrInvalidName); no key is ever
// built from a path that fails those checks.
//
// # Directories
//
// S3 has no directories. A directory exists when its marker object
// ("dir/", an empty object whose key ends with a slash) exists, or when any
// key starts with "dir/" (an implicit directory, as left by other S3 tools).
// Mkdir writes the marker; RemoveDir deletes it, and only when no other key
// lies under it (storage.ErrNotEmpty otherwise). A home always exists: Home
// makes no request, and Stat("/") is a directory even when nothing is
// stored yet. Directories listed through their common prefix have a zero
// modification time; Stat of a directory reports its marker's time, or zero
// for an implicit one. A key that is both an object and a prefix
// ("a" and "a/b", written by another tool) is listed twice, once as a file
// and once as a directory; Stat reports the file.
//
// # Uploads
//
// Create streams through a multipart upload with bounded memory: at most
// Concurrency parts are being sent while one more is filled, each in a
// buffer of the part size. A file smaller than one part is sent by a
// single PutObject on Commit. Abort, and any failed Commit, abort the
// multipart upload, so no partial object appears and the previous object
// is left as it was; nothing is visible before Commit. Commit alone sends
// the final request; an Abort before that request wins (Commit then fails
// and sends nothing), an Abort after it does nothing.
//
// The buffers of all uploads of a Backend come from one budget,
// UploadMemory: an upload waits for room (honouring its context) rather
// than allocate beyond it, and buffers are reused between parts and
// uploads. An upload holds only the buffer it fills and those being sent,
// (Concurrency+1) x the part size at most: 80 MiB with the defaults, while
// all uploads together hold at most UploadMemory (256 MiB). The size of an
// FTP upload is not known in advance, so the part size doubles after
// every 1,000 parts, up to the S3 maximum of 5 GiB or UploadMemory,
// whichever is smaller, so that a part always fits in the budget. S3's
// limit of 10,000 parts then covers 1.69 TiB with the defaults; 4.9 TiB
// with the minimum part size of 5 MiB, and the largest S3 object (5 TiB)
// with the default 16 MiB, need an UploadMemory of 2.5 GiB and 2 GiB. A
// larger upload fails with storage.ErrNoSpace.
//
// A part request cancelled in flight (an FTP client that vanished) may
// still be stored by the server after the abort, which brings the upload
// back; such uploads are aborted again a second and five seconds later, as
// the S3 documentation advises.
//
// Exclusive uploads (STOU, users without the overwrite permission) are
// checked with HeadObject when they start and written with the conditional
// header If-None-Match: "*" on PutObject and CompleteMultipartUpload;
// HTTP 412 becomes storage.ErrExist. Servers that ignore the header on
// CompleteMultipartUpload (older S3-compatible ones) are covered by another
// HeadObject just before completing, which leaves a window of one request
// in which a concurrent writer can still be overwritten.
//
// # Timeouts
//
// Every request fails when it has sent and received nothing for
// RequestTimeout (a hung or black-holed endpoint), with an error that
// matches context.DeadlineExceeded and not context.Canceled. It is a limit
// on silence, not on the length of the request: the countdown restarts
// with every read of the request body by the connection and every read of
// the response body, so a large part on a slow link, a long
// CompleteMultipartUpload or CopyObject (AWS keeps those alive with white
// space) and a long download go on as long as they move. A download's
// countdown runs only during its reads, so a slow FTP client does not time
// it out. The SDK's retries happen within the same request. A final
// request (PutObject, CompleteMultipartUpload) that times out may still
// have been carried out by the server.
//
// # Resumed uploads and appends
//
// Objects cannot be changed, so an upload at an offset (REST + STOR) or an
// append (APPE) writes a new object: the first bytes of the old one,
// copied inside S3 with UploadPartCopy when they are at least 5 MiB (read
// through the server below that, or on a server without UploadPartCopy),
// then the new data. The old object stays until the new one is complete,
// as for any upload; see resume.go.
//
// # What S3 cannot do
//
// Objects cannot be given a modification time (MFMT) or a mode (SITE
// CHMOD); those fail with storage.ErrUnsupported and a message saying
// why. Renaming a file copies it (CopyObject, or a multipart UploadPartCopy
// above 5 GiB) and deletes the original: not atomic, and a failed delete
// leaves both. Renaming a directory would mean copying every key under it,
// so it is refused with storage.ErrUnsupported. Downloads (Open) are ranged
// GETs; an offset at or beyond the end reads nothing.
//
// # Errors
//
// Errors read "s3: OP KEY: cause" with the full object key (never
// credentials) and match the storage sentinels with errors.Is: missing keys
// storage.ErrNotExist, AccessDenied storage.ErrPermission, 412
// storage.ErrExist. A missing bucket is reported as such and matches none of
// them, so the protocol layer answers with a generic local error rather
// than "file not found". Throttling (SlowDown, 503) and other transient
// failures are retried by the SDK's standard retryer (3 attempts with
// backoff); context cancellation is preserved.
//
// # IAM permissions
//
// On the bucket, s3:ListBucket, which can be limited to the prefix with a
// condition on s3:prefix (e.g. "ftp/*"; New checks the bucket by listing
// the prefix, not with HeadBucket, so that such a policy works). On the
// objects under the prefix
// ("arn:aws:s3:::BUCKET/ftp/*"): s3:GetObject, s3:PutObject,
// s3:DeleteObject, s3:AbortMultipartUpload and s3:ListMultipartUploadParts.
// Multipart uploads, CopyObject and UploadPartCopy need no further
// permission (s3:ListMultipartUploadParts is not used). A bucket
// encrypted with a customer-managed KMS key also needs
// kms:GenerateDataKey and kms:Decrypt on that key. A bucket
// lifecycle rule "AbortIncompleteMultipartUpload" after a day or so is
// recommended, to clean up after a server that died mid-upload.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Part sizes and concurrency, for configuration checks and documentation.
const (
	MinPartSize        = 5 << 20  // S3's smallest part (but the last)
	MaxPartSize        = 5 << 30  // S3's largest part, and largest single PUT or COPY
	DefaultPartSize    = 16 << 20 // Options.PartSize when zero
	DefaultConcurrency = 4        // Options.Concurrency when zero
)

// maxParts is how many parts a multipart upload may have.
const maxParts = 10_000

// partsPerSize is how many parts an upload sends before doubling the part
// size; see the package documentation.
const partsPerSize = 1000

// defaultPageSize is how many keys one ListObjectsV2 request asks for: the
// S3 maximum.
const defaultPageSize = 1000

// Options configure a Backend.
type Options struct {
	// Bucket holds the files. Required.
	Bucket string
	// Prefix is prepended to every key ("ftp/" stores the home "alice"
	// under "ftp/alice/"). A trailing slash is added when missing.
	Prefix string
	// Region of the bucket; when empty, the standard AWS chain decides
	// (AWS_REGION, the shared config), and "us-east-1" is assumed with a
	// custom Endpoint.
	Region string
	// Endpoint is the URL of an S3-compatible server (MinIO, Ceph, ...);
	// empty for AWS. With an Endpoint the client sends checksums only
	// where S3 requires them: several S3-compatible servers refuse the
	// CRC32 headers that the SDK sends to AWS by default.
	Endpoint string
	// PathStyle addresses the bucket in the path ("host/bucket/key")
	// rather than the host name, as most S3-compatible servers need.
	PathStyle bool
	// PartSize is the size of the first multipart upload parts (default
	// 16 MiB, at least 5 MiB, at most 5 GiB).
	PartSize int64
	// Concurrency is how many parts of one upload are sent in parallel
	// (default 4).
	Concurrency int
	// UploadMemory bounds the part buffers of all uploads together
	// (default 256 MiB, at least PartSize): an upload waits for room
	// rather than allocate beyond it. It also caps the part size, which
	// otherwise doubles every 1,000 parts; see the package documentation.
	UploadMemory int64
	// RequestTimeout is how long one S3 request may go without progress
	// (no byte sent or received) before it fails with an error matching
	// context.DeadlineExceeded (default 30s). See the package
	// documentation.
	RequestTimeout time.Duration
	// Client, when set, is used as is and the fields Region, Endpoint and
	// PathStyle are ignored; its RequestChecksumCalculation decides
	// whether multipart uploads carry CRC32 checksums (unless it is
	// WhenRequired, they do). Otherwise New builds a client from the
	// standard AWS chain (environment, shared config and profile, EC2
	// instance role through IMDS) with config.LoadDefaultConfig.
	Client *s3.Client
	// ChecksumTags stores the SHA-256 of multipart uploads in object tags
	// (PutObjectTagging; see checksum.go). Off by default: a server that
	// does not know the ?tagging subresource may take the request for a
	// PutObject and replace the object with the tag document (gofakes3
	// does). Turn it on for AWS and for servers known to support tagging
	// (versitygw, MinIO).
	ChecksumTags bool
	// Logger receives warnings that no caller could act on, such as a
	// multipart upload that could not be aborted (default slog.Default()).
	Logger *slog.Logger
}

// Backend hands out homes below the prefix of one bucket. It is safe for
// concurrent use.
type Backend struct {
	client         *s3.Client
	bucket         string
	prefix         string // "" or ends with "/"
	partSize       int64  // of the first parts of an upload
	maxPartSize    int64  // the part size stops doubling here
	concurrency    int
	requestTimeout time.Duration
	pageSize       int32 // keys per ListObjectsV2 request
	checksums      bool  // send CRC32 checksums with multipart uploads
	log            *slog.Logger
	checksumTags   bool        // see Options.ChecksumTags
	tagWarned      atomic.Bool // object tagging refused: logged once
	// reabortAfter: see defaultReabortAfter.
	reabortAfter []time.Duration

	// mem is the budget of part buffers, shared by all uploads.
	mem *partMemory

	// partCopy: whether the server implements UploadPartCopy
	// (partCopyUnknown until the first resume; resume.go).
	partCopy atomic.Int32
	// copyPartMax is the size up to which a resumed upload copies its
	// prefix in one part (minCopyPartSize; smaller in tests).
	copyPartMax int64
}

var _ storage.Backend = (*Backend)(nil)

// New checks opts, builds a client unless one is given, and checks that the
// bucket is reachable by listing one key of the prefix, failing with an
// error that names the bucket, the region and the endpoint.
func New(ctx context.Context, opts Options) (*Backend, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3: no bucket given")
	}
	prefix, err := cleanPrefix(opts.Prefix)
	if err != nil {
		return nil, err
	}
	switch {
	case opts.PartSize == 0:
		opts.PartSize = DefaultPartSize
	case opts.PartSize < MinPartSize || opts.PartSize > MaxPartSize:
		return nil, fmt.Errorf("s3: part size %d must be between 5 MiB (%d) and 5 GiB (%d)", opts.PartSize, MinPartSize, MaxPartSize)
	}
	switch {
	case opts.Concurrency == 0:
		opts.Concurrency = DefaultConcurrency
	case opts.Concurrency < 0:
		return nil, fmt.Errorf("s3: concurrency %d must be positive", opts.Concurrency)
	}
	switch {
	case opts.UploadMemory == 0:
		opts.UploadMemory = max(DefaultUploadMemory, opts.PartSize)
	case opts.UploadMemory < opts.PartSize:
		// Less than a part and no upload could ever fill one.
		return nil, fmt.Errorf("s3: upload memory %d must be at least the part size %d", opts.UploadMemory, opts.PartSize)
	}
	switch {
	case opts.RequestTimeout == 0:
		opts.RequestTimeout = DefaultRequestTimeout
	case opts.RequestTimeout < 0:
		return nil, fmt.Errorf("s3: request timeout %v must be positive", opts.RequestTimeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	client := opts.Client
	if client == nil {
		client, err = newClient(ctx, opts)
		if err != nil {
			return nil, err
		}
	}
	o := client.Options()
	b := &Backend{
		client:         client,
		bucket:         opts.Bucket,
		prefix:         prefix,
		partSize:       opts.PartSize,
		maxPartSize:    min(MaxPartSize, opts.UploadMemory),
		concurrency:    opts.Concurrency,
		requestTimeout: opts.RequestTimeout,
		checksumTags:   opts.ChecksumTags,
		pageSize:       defaultPageSize,
		checksums:      o.RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired,
		log:            opts.Logger,

		reabortAfter: defaultReabortAfter,
		copyPartMax:  minCopyPartSize,
	}
	b.mem = newPartMemory(opts.UploadMemory, partSizes(b.partSize, b.maxPartSize))
	// A listing of the prefix rather than HeadBucket: it needs exactly the
	// permission the server uses, which a policy may limit to the prefix
	// (HeadBucket carries no prefix, so such a policy denies it).
	_, err = do(ctx, b, "ListObjectsV2", client.ListObjectsV2, &s3.ListObjectsV2Input{
		Bucket: &b.bucket, Prefix: &b.prefix, MaxKeys: aws.Int32(1),
	})
	if err != nil {
		endpoint := "AWS"
		if o.BaseEndpoint != nil {
			endpoint = *o.BaseEndpoint
		}
		why := "is not reachable"
		err = mapErr("list", b.bucket, b.prefix, err)
		switch {
		case errors.Is(err, errBucketMissing), errors.Is(err, storage.ErrNotExist):
			why = "does not exist"
		case errors.Is(err, storage.ErrPermission):
			why = "cannot be listed (check the credentials and the s3:ListBucket permission on the prefix)"
		}
		return nil, fmt.Errorf("s3: bucket %q (region %q, endpoint %s) %s: %w", b.bucket, o.Region, endpoint, why, err)
	}
	return b, nil
}

// newClient builds a client from the standard AWS configuration chain.
func newClient(ctx context.Context, opts Options) (*s3.Client, error) {
	var load []func(*config.LoadOptions) error
	if opts.Region != "" {
		load = append(load, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		if opts.Endpoint == "" {
			return nil, errors.New("s3: no region: set the region option or AWS_REGION")
		}
		cfg.Region = "us-east-1" // what S3-compatible servers expect by default
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = opts.PathStyle
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
			// Many S3-compatible servers reject the checksum headers
			// that the SDK sends to AWS by default.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}), nil
}

// cleanPrefix checks Options.Prefix and gives it a trailing slash.
func cleanPrefix(p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return "", nil
	}
	if !validElems(p) {
		return "", fmt.Errorf("s3: prefix %q: %w", p, storage.ErrInvalidName)
	}
	return p + "/", nil
}

// Home returns the tree stored under Prefix + home + "/". home is a
// slash-separated path relative to Prefix ("" or "." for Prefix itself);
// absolute paths, ".." elements and NUL fail with storage.ErrInvalidName.
// It makes no request: a prefix exists as soon as it is named.
func (b *Backend) Home(ctx context.Context, home string) (storage.Storage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rel, err := homePath(home)
	if err != nil {
		return nil, &opError{op: "home", key: home, kind: err, err: err}
	}
	prefix := b.prefix
	if rel != "" {
		prefix += rel + "/"
	}
	return &tree{b: b, prefix: prefix}, nil
}

// homePath checks a home given to Home and cleans it like the local
// backend does ("a//b/" and "a/./b" are "a/b"), returning "" for the root.
func homePath(home string) (string, error) {
	if strings.HasPrefix(home, "/") || strings.IndexByte(home, 0) >= 0 || !utf8.ValidString(home) {
		return "", storage.ErrInvalidName
	}
	var elems []string
	for elem := range strings.SplitSeq(home, "/") {
		switch elem {
		case "..":
			return "", storage.ErrInvalidName
		case "", ".":
		default:
			elems = append(elems, elem)
		}
	}
	return strings.Join(elems, "/"), nil
}

// validElems reports whether the slash-separated p has only non-empty
// elements other than "." and "..", no NUL and valid UTF-8 (S3 keys are
// UTF-8).
func validElems(p string) bool {
	if strings.IndexByte(p, 0) >= 0 || !utf8.ValidString(p) {
		return false
	}
	for elem := range strings.SplitSeq(p, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return false
		}
	}
	return true
}

// maxKeyLen is the longest key S3 accepts, in bytes.
const maxKeyLen = 1024
