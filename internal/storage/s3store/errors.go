package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// opError is the error every operation returns: the operation and the
// object key. It unwraps to the storage sentinel chosen for the failure,
// if any, and to the cause (an SDK error, a context error), so errors.Is
// finds the protocol layer's category and errors.As the SDK's details.
// SDK errors match no storage sentinel by themselves.
type opError struct {
	op   string // "get", "put", "complete-upload", ...
	key  string // object key, or the name given by the caller when invalid
	kind error  // storage sentinel, or nil
	err  error  // cause
}

func (e *opError) Error() string {
	if e.key == "" {
		return "s3: " + e.op + ": " + e.err.Error()
	}
	return "s3: " + e.op + " " + e.key + ": " + e.err.Error()
}

func (e *opError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.err}
}

// newErr returns an opError of kind, with a cause explaining it.
func newErr(op, key string, kind error, why string) error {
	cause := kind
	if why != "" {
		cause = fmt.Errorf("%w: %s", kind, why)
	}
	return &opError{op: op, key: key, kind: kind, err: cause}
}

// errBucketMissing is the cause of errors for a bucket that does not exist.
// It deliberately matches no storage sentinel: the client's file is not
// the problem, the server's configuration is.
var errBucketMissing = errors.New("the bucket does not exist")

// mapErr wraps an error from the SDK as an opError for op on key in
// bucket, classifying it:
//
//   - NoSuchKey, NotFound, 404 (but NoSuchUpload): storage.ErrNotExist;
//   - NoSuchBucket: an error naming the bucket, matching no sentinel;
//   - AccessDenied, 403: storage.ErrPermission;
//   - PreconditionFailed (412), ConditionalRequestConflict (409):
//     storage.ErrExist, as those come from If-None-Match: "*";
//   - EntityTooLarge: storage.ErrNoSpace; KeyTooLongError:
//     storage.ErrInvalidName;
//   - context cancellation and deadlines: left as they are (errors.Is
//     still finds context.Canceled);
//   - anything else (throttling the retryer gave up on, 5xx, network
//     errors): no sentinel, the cause as is.
func mapErr(op, bucket, key string, err error) error {
	if err == nil {
		return nil
	}
	var oe *opError
	if errors.As(err, &oe) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &opError{op: op, key: key, err: err}
	}
	code, status := errorCode(err)
	if code == "NoSuchBucket" {
		return &opError{op: op, key: key, err: fmt.Errorf("%w: %q (%w)", errBucketMissing, bucket, err)}
	}
	return &opError{op: op, key: key, kind: classify(code, status), err: err}
}

// errorCode extracts the S3 error code and the HTTP status of err; either
// may be missing ("" or 0). HEAD responses have no body, so their code is
// only the status text ("NotFound", "Forbidden").
func errorCode(err error) (string, int) {
	var code string
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var status int
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

// classify picks the storage sentinel for an S3 error code and HTTP status.
func classify(code string, status int) error {
	switch code {
	case "NoSuchKey", "NotFound":
		return storage.ErrNotExist
	case "NoSuchUpload":
		// A multipart upload that vanished (a lifecycle rule, another
		// abort): the transfer failed, the file is not the problem.
		return nil
	case "AccessDenied", "AllAccessDisabled", "Forbidden":
		return storage.ErrPermission
	case "PreconditionFailed", "ConditionalRequestConflict":
		return storage.ErrExist
	case "EntityTooLarge":
		return storage.ErrNoSpace
	case "KeyTooLongError":
		return storage.ErrInvalidName
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "RequestTimeTooSkewed":
		// 403s that say the server is misconfigured, not that the user
		// may not touch the file.
		return nil
	}
	switch status {
	case http.StatusNotFound:
		return storage.ErrNotExist
	case http.StatusForbidden:
		return storage.ErrPermission
	case http.StatusPreconditionFailed:
		return storage.ErrExist
	}
	return nil
}

// isStatus reports whether err is an S3 error with the given code or HTTP
// status.
func isStatus(err error, code string, status int) bool {
	c, s := errorCode(err)
	return c == code || (s != 0 && s == status)
}
