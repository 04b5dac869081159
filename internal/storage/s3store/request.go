package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// DefaultRequestTimeout is Options.RequestTimeout when zero.
const DefaultRequestTimeout = 30 * time.Second

// stallError is the error of a request cancelled by its watchdog: the
// server sent and accepted nothing for the request timeout. It matches
// context.DeadlineExceeded, so that the protocol layer answers "storage
// did not answer in time", and deliberately not context.Canceled (which
// the cancellation that stops the request would otherwise carry, and
// which means that the client went away).
type stallError struct {
	op string        // the S3 operation, "HeadObject"
	d  time.Duration // the request timeout
}

func (e *stallError) Error() string {
	return fmt.Sprintf("%s: no answer from S3 within %v", e.op, e.d)
}

func (e *stallError) Is(target error) bool { return target == context.DeadlineExceeded }

// watchdog bounds one S3 request. A fixed deadline per request would not
// do: a part of 16 MiB (or 5 GiB) on a slow uplink, a CompleteMultipartUpload
// that AWS keeps alive with white space for minutes, or a download read as
// slowly as the FTP client takes it all outlast any sensible deadline. So
// the request fails when it has made no progress for d: the countdown
// restarts whenever a byte of the request body is taken by the connection
// or a read of the response body returns, and while the response body is
// not being read (the FTP client is slow) it does not run at all. A hung
// server (a stopped process, a black-holed connection) makes no progress
// and the request fails after d with a *stallError.
type watchdog struct {
	op     string
	d      time.Duration
	parent context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	fired  atomic.Bool
}

// watch starts the watchdog of one request of operation op and returns the
// context to send it under; the request must end with w.stop. A zero d
// (only in tests that build a Backend by hand) means no limit.
func (b *Backend) watch(ctx context.Context, op string) (context.Context, *watchdog) {
	rctx, cancel := context.WithCancel(ctx)
	w := &watchdog{op: op, d: b.requestTimeout, parent: ctx, cancel: cancel}
	if w.d > 0 {
		w.timer = time.AfterFunc(w.d, func() {
			w.fired.Store(true)
			cancel()
		})
	}
	return rctx, w
}

// kick restarts the countdown: the request made progress.
func (w *watchdog) kick() {
	if w.timer != nil {
		w.timer.Reset(w.d)
	}
}

// pause stops the countdown while nothing is asked of the server (between
// reads of a response body).
func (w *watchdog) pause() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// stop ends the request: its context is cancelled, so call it only once
// the response (body included) is no longer needed.
func (w *watchdog) stop() {
	w.pause()
	w.cancel()
}

// check returns err, or a *stallError when the watchdog cancelled the
// request (and not the caller's context).
func (w *watchdog) check(err error) error {
	if err != nil && w.fired.Load() && w.parent.Err() == nil {
		return &stallError{op: w.op, d: w.d}
	}
	return err
}

// option is the per-operation SDK option that lets the watchdog see the
// response: it restarts the countdown when the response headers arrive and
// wraps the response body so that its reads count as progress (for
// GetObject that body is the download itself).
func (w *watchdog) option(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		// Last in the deserialize step: next is the transport, and the
		// operation's deserializer reads the body wrapped here.
		return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("cloudftpdWatchdog",
			func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleDeserialize(ctx, in)
				// Only a response that arrived: after a transport error the
				// SDK drains what body there is, and would log the
				// watchdog's error if it came from there.
				if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && err == nil && resp.Body != nil {
					w.kick()
					resp.Body = &recvBody{r: resp.Body, w: w}
				}
				return out, md, err
			}), middleware.After)
	})
}

// recvBody is a response body read under the watchdog: each Read runs
// with the countdown on, and between reads it is off.
type recvBody struct {
	r io.ReadCloser
	w *watchdog
}

func (b *recvBody) Read(p []byte) (int, error) {
	if b.w.fired.Load() {
		return 0, b.w.check(context.Canceled)
	}
	b.w.kick()
	n, err := b.r.Read(p)
	b.w.pause()
	if err != nil && !errors.Is(err, io.EOF) {
		err = b.w.check(err)
	}
	return n, err
}

func (b *recvBody) Close() error { return b.r.Close() }

// sendBody is a request body (a part, a small file) sent under the
// watchdog: every read by the SDK or the connection is progress. It
// offers Seek and Len like the *bytes.Reader it wraps, which the SDK
// needs to sign the payload, retry and know the length, but not WriteTo,
// so the connection's reads go through Read.
type sendBody struct {
	r interface {
		io.ReadSeeker
		Len() int
	}
	w *watchdog
}

func (b *sendBody) Read(p []byte) (int, error) {
	b.w.kick()
	return b.r.Read(p)
}

func (b *sendBody) Seek(offset int64, whence int) (int64, error) { return b.r.Seek(offset, whence) }

func (b *sendBody) Len() int { return b.r.Len() }

// do sends one request: f is a method of the client, such as
// b.client.HeadObject, and op its name for errors. A PutObject or
// UploadPart body that is a *bytes.Reader is sent through a sendBody. Not
// for GetObject, whose body outlives the call (see tree.Open).
func do[I, O any](ctx context.Context, b *Backend, op string, f func(context.Context, *I, ...func(*s3.Options)) (*O, error), in *I) (*O, error) {
	ctx, w := b.watch(ctx, op)
	defer w.stop()
	switch in := any(in).(type) {
	case *s3.PutObjectInput:
		in.Body = w.sending(in.Body)
	case *s3.UploadPartInput:
		in.Body = w.sending(in.Body)
	}
	out, err := f(ctx, in, w.option)
	return out, w.check(err)
}

// sending wraps a request body that can be wrapped without losing what
// the SDK needs of it.
func (w *watchdog) sending(r io.Reader) io.Reader {
	if rs, ok := r.(interface {
		io.ReadSeeker
		Len() int
	}); ok {
		return &sendBody{r: rs, w: w}
	}
	return r
}
