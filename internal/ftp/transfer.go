package ftp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/netpolicy"
	"net/netip"
)

// transfer is a running data transfer. It runs in its own goroutine so the
// control connection stays readable for ABOR, STAT and QUIT.
type transfer struct {
	verb    string
	path    string
	ctx     context.Context // ends when the transfer is abandoned
	cancel  context.CancelFunc
	done    chan struct{}
	bytes   atomic.Int64
	aborted atomic.Bool // ABOR, or the client vanished
	// start is when the command came; size is the bytes the transfer
	// will move plus one, when that is known (0: unknown), for Info.
	start time.Time
	size  atomic.Int64

	// partial is set when a failed upload's data was kept for a resume
	// (Config.KeepPartial): its event is upload.partial.
	partial bool

	// dataTLS is the data connection's TLS, for events; written and read
	// by the transfer goroutine only.
	dataTLS events.TLS
	// sha256 is the hex SHA-256 of a committed upload, for its event and
	// log line; written and read by the transfer goroutine only.
	sha256 string
	// hashing marks a HASH computed on request: no data connection, and
	// QUIT stops it instead of waiting.
	hashing bool

	mu   sync.Mutex
	data net.Conn // set once the data connection is open
}

// abandon stops the transfer without committing anything it wrote.
func (x *transfer) abandon() {
	x.aborted.Store(true) // before the lock: setData checks it under the lock
	x.cancel()
	x.mu.Lock()
	if x.data != nil {
		x.data.Close()
	}
	x.mu.Unlock()
}

// setData records the open data connection. If the transfer was abandoned
// while the connection was being opened, it is closed at once: abandon
// saw no connection to close.
func (x *transfer) setData(c net.Conn) {
	x.mu.Lock()
	x.data = c
	if x.aborted.Load() {
		c.Close()
	}
	x.mu.Unlock()
}

// xferResult is how a transfer ended, for the final reply and the log.
type xferResult struct {
	code int
	text string
	err  error // for the log only; never sent to the client
	// holdData keeps the data connection open, unread, until
	// refusalGrace after the final reply: a limit refused the upload, and
	// the client is still sending. Closed with data unread, the
	// connection is reset; a client that sees the reset before the reply
	// takes it for a network error and retries (lftp does), where the
	// reply says why and that retrying will not help. Given the time to
	// read the reply, such a client closes the data connection itself.
	holdData bool
}

// refusalGrace is how long a refused upload's data connection stays open
// after the reply (holdData): a round trip for the client to read it,
// with room for a slow network.
const refusalGrace = time.Second

func (s *Session) currentTransfer() *transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xfer
}

func (s *Session) transferRunning() bool { return s.currentTransfer() != nil }

// waitTransfer blocks until the running transfer, if any, has sent its
// final reply. Commands that may not overlap a transfer wait here, so a
// client that pipelines its next command still gets replies in order.
func (s *Session) waitTransfer() {
	if x := s.currentTransfer(); x != nil {
		<-x.done
	}
}

// transferFunc moves the data over an open data connection. It returns
// the final reply; byte counts go to x.bytes.
type transferFunc func(ctx context.Context, x *transfer, data net.Conn) xferResult

// startTransfer sends the 150 preliminary reply, then opens the data
// connection and runs fn in a goroutine. cleanup runs after fn (or instead
// of it when no data connection could be made), before the final reply,
// and may replace the result (e.g. a failed upload commit).
func (s *Session) startTransfer(verb, path, opening string, fn transferFunc, cleanup func(res xferResult, x *transfer) xferResult) {
	if !s.protP && s.dataTLSRequired() {
		s.reply(522, "Data connections must be protected: send PBSZ 0 and PROT P first.")
		if cleanup != nil {
			cleanup(xferResult{code: 522}, &transfer{})
		}
		return
	}
	res := s.takePassive()
	active := s.active
	if res == nil && !active.IsValid() {
		s.reply(425, "Use PASV, EPSV, PORT or EPRT before "+verb+".")
		if cleanup != nil {
			cleanup(xferResult{code: 425}, &transfer{})
		}
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	x := &transfer{verb: verb, path: path, ctx: ctx, cancel: cancel, done: make(chan struct{}), start: time.Now()}
	s.mu.Lock()
	s.xfer = x
	s.mu.Unlock()
	s.reply(150, opening)
	go s.runTransfer(ctx, x, res, active, s.protP, fn, cleanup)
}

func (s *Session) runTransfer(ctx context.Context, x *transfer, res *netpolicy.Reservation, active netip.AddrPort, protect bool, fn transferFunc, cleanup func(xferResult, *transfer) xferResult) {
	start := time.Now()
	var result xferResult
	var held net.Conn // closed after the final reply (holdData)
	cleaned := false
	runCleanup := func() {
		if cleanup != nil && !cleaned {
			cleaned = true
			result = cleanup(result, x)
		}
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in transfer", "command", x.verb, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			result = xferResult{code: 451, text: "Internal server error; transfer aborted."}
			// The transfer's resources go the way of an abort: the data
			// connection closed, an upload discarded, a file closed.
			x.abandon()
			func() {
				defer func() {
					if v := recover(); v != nil {
						s.log.Error("panic in transfer cleanup", "command", x.verb, "panic", fmt.Sprint(v))
					}
				}()
				runCleanup()
			}()
		}
		x.cancel()
		if res != nil {
			res.Release()
		}
		s.finishTransfer(x, result, start)
		if held != nil {
			// Not at once: a client that reads both connections in one
			// loop could still meet the reset first.
			time.AfterFunc(refusalGrace, func() { held.Close() })
		}
	}()

	data, err := s.openData(ctx, res, active)
	if err == nil && protect {
		x.setData(data) // so ABOR can interrupt the handshake
		var tc net.Conn
		if tc, err = s.protectData(ctx, data); err != nil {
			data.Close()
		} else {
			data = tc
		}
	}
	if err != nil {
		result = xferResult{code: 425, text: "Cannot open data connection: " + dataErrText(err), err: err}
		if errors.Is(err, errNoResume) {
			result.code, result.text = 522, "Data connection refused: it must resume the control connection's TLS session (enable TLS session reuse in your client)."
		}
		if x.aborted.Load() {
			result = xferResult{code: 426, text: "Transfer aborted before the data connection was open.", err: err}
		}
		runCleanup()
		return
	}
	x.setData(data)
	x.dataTLS = tlsOf(data)
	result = fn(ctx, x, data)
	if x.aborted.Load() && result.code < 400 {
		result = xferResult{code: 426, text: "Transfer aborted.", err: errors.New("aborted")}
	}
	// Close the data connection before the final reply: a client may wait
	// for EOF on it before reading the 226. It is closed before cleanup
	// too, so that a failed close (a TLS close_notify the client never
	// took) counts against an upload before it is committed.
	if result.holdData {
		held = data
	} else if err := data.Close(); err != nil && result.code < 400 && result.code != 0 {
		result = xferResult{code: 426, text: "Data connection closed with an error.", err: err}
	}
	runCleanup()
}

// finishTransfer sends the final reply, logs the transfer and lets the
// session continue.
func (s *Session) finishTransfer(x *transfer, r xferResult, start time.Time) {
	if r.code == 0 {
		r = xferResult{code: 451, text: "Transfer failed."}
	}
	outcome := events.ResultOK
	if r.code >= 400 {
		outcome = events.ResultFailed
		if x.aborted.Load() {
			outcome = events.ResultAborted
		}
	}
	took := time.Since(start)
	// The event is recorded before the client hears of the result, so a
	// crash between the two can lose the reply but never the event.
	s.recordTransfer(x, r, outcome, took)
	s.reply(r.code, r.text)
	s.cfg.metrics().Transfer(x.verb, outcome, x.bytes.Load(), took)
	if s.log.Enabled(s.ctx, slog.LevelInfo) { // the attributes cost allocations
		attrs := []any{"user", s.userLabel(), "command", x.verb, "path", x.path,
			"bytes", x.bytes.Load(), "duration", took.Round(time.Microsecond), "result", outcome, "code", r.code}
		if r.err != nil {
			attrs = append(attrs, "err", r.err.Error())
		}
		if x.sha256 != "" {
			attrs = append(attrs, "sha256", x.sha256)
		}
		s.log.Info("transfer", attrs...)
	}
	s.endTransfer(x)
}

// endTransfer lets the session continue after x sent its final reply,
// closing the session if Shutdown came meanwhile.
func (s *Session) endTransfer(x *transfer) {
	s.mu.Lock()
	s.xfer = nil
	s.countTransfer(x)
	shutdown := s.shutdown
	s.mu.Unlock()
	close(x.done)
	if shutdown {
		s.reply(421, "Server shutting down; closing control connection.")
		s.Close()
	}
}

// dataPhaseResult is the reply for an error in the middle of a transfer
// over data, which either side may have caused. The data connection
// failing (reset, closed, stalled past its deadline, TLS broken) is 426
// with connText; anything else came from storage and gets the error
// table's reply, with suffix. RFC 959's 426 says the data connection
// broke: a storage failure answered with it sends the client looking for a
// network problem.
func (s *Session) dataPhaseResult(data net.Conn, op, p string, err error, connText, suffix string) xferResult {
	if isConnError(err, data) {
		return xferResult{code: 426, text: connText, err: err}
	}
	r := s.storageReply(op, p, err)
	return xferResult{code: r.Code, text: r.Lines[0] + suffix, err: err}
}

// isConnError reports whether err came from the data connection: a socket
// error whose addresses are the data connection's (an S3 request's
// socket errors name the endpoint instead), or TLS failing on it.
func isConnError(err error, data net.Conn) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return sameAddr(opErr.Addr, data.RemoteAddr()) || sameAddr(opErr.Addr, data.LocalAddr()) ||
			sameAddr(opErr.Source, data.LocalAddr())
	}
	var alert tls.AlertError
	var rec tls.RecordHeaderError
	return errors.As(err, &alert) || errors.As(err, &rec) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func sameAddr(a, b net.Addr) bool {
	return a != nil && b != nil && a.String() == b.String()
}

// recordTransfer reports a finished upload or download as an event.
// Listings are not events: they change nothing and say little.
func (s *Session) recordTransfer(x *transfer, r xferResult, outcome string, took time.Duration) {
	e := events.Event{Path: x.path, Size: x.bytes.Load(), Duration: took, Result: outcome, Code: r.code, DataTLS: x.dataTLS, TransferType: "ascii"}
	if !s.convertsASCII() { // the transfer's own: TYPE waits for the transfer to end
		e.TransferType = "binary"
	}
	switch x.verb {
	case "STOR", "APPE", "STOU":
		e.Type = events.UploadCommitted
		if r.code >= 400 {
			e.Type = events.UploadFailed
			if x.partial {
				e.Type = events.UploadPartial
			}
		}
	case "RETR":
		e.Type = events.DownloadDone
	default:
		return
	}
	if r.code >= 400 {
		e.Reason = r.text
	} else if e.Type == events.UploadCommitted {
		e.SHA256 = x.sha256
	}
	s.record(e)
}

// openData returns the data connection: the client's connection to the
// reserved passive port, or ours to its PORT/EPRT address.
func (s *Session) openData(ctx context.Context, res *netpolicy.Reservation, active netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DataTimeout)
	defer cancel()
	if res != nil {
		return res.Accept(ctx)
	}
	// No keep-alive: the transfer has its own stall timeout.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: s.local.AsSlice()}, KeepAlive: -1}
	return d.DialContext(ctx, "tcp", active.String())
}

func dataErrText(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out waiting for it."
	case errors.Is(err, context.Canceled), errors.Is(err, netpolicy.ErrReleased):
		return "cancelled."
	default:
		return "connection failed."
	}
}

// coalesceMin is the download size from which allowCoalescing is worth
// its system call.
const coalesceMin = 64 << 10

// copyChunk is how much data may move between two extensions of the stall
// deadline. It is large enough that sendfile/splice stay efficient and small
// enough that a slow but moving client is never mistaken for a stalled one.
const copyChunk = 1 << 20

// copyData copies src to dst, failing when no chunk completes within the
// stall timeout or when a gate ends the transfer. A plain local transfer
// goes zero-copy (sendfile for downloads, splice for uploads), so dst and
// src are passed through unwrapped apart from an io.LimitedReader, which
// both understand. Any other transfer (TLS, TYPE A, S3) goes through a
// pooled buffer that is filled before each write. Gates (gate.go) bound
// each chunk without touching the data, so they keep zero-copy.
func (s *Session) copyData(ctx context.Context, x *transfer, data net.Conn, dst io.Writer, src io.Reader, gates ...gate) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	zeroCopy := canZeroCopy(dst, src)
	if _, file := src.(*os.File); zeroCopy && file && x.size.Load()-1 >= coalesceMin {
		allowCoalescing(dst)
	}
	lr := &io.LimitedReader{R: src}
	for {
		want := int64(copyChunk)
		if len(gates) > 0 {
			var err error
			if want, err = nextChunk(ctx, gates, want); err != nil {
				return err
			}
		}
		if s.cfg.StallTimeout > 0 {
			data.SetDeadline(time.Now().Add(s.cfg.StallTimeout))
		}
		lr.N = want
		var n int64
		var err error
		if zeroCopy {
			n, err = io.CopyBuffer(dst, lr, *bp)
		} else {
			n, err = copyFilled(dst, lr, *bp)
		}
		x.bytes.Add(n)
		if len(gates) > 0 {
			if gerr := chunkMoved(gates, n); gerr != nil {
				return gerr
			}
		}
		if err != nil {
			return err
		}
		if n < want {
			return nil
		}
	}
}

// allowCoalescing turns Nagle's algorithm back on (Go turns it off on
// every TCP connection) for a download by sendfile. With TCP_NODELAY each
// sendfile call pushes its last partial segment out at once; with Nagle
// the kernel fills whole segments. On loopback that was worth 12-17% of
// download throughput (bench/compare.sh --only download, three runs each
// way: 1484-1519 MiB/s with TCP_NODELAY, 1702-1739 without). Nothing waits
// on it: the connection is closed after the file, and closing sends what
// is queued at once. TLS and TYPE A downloads, whose close_notify or last
// write could sit behind an unacknowledged segment, keep TCP_NODELAY.
//
// A small file gains nothing from it, and the setsockopt is one system
// call in about 25 for a 4 KiB download: it goes out in one sendfile, its
// last segment pushed by the close. The size is the transfer's (x.size);
// unknown counts as small.
func allowCoalescing(w io.Writer) {
	if tc, ok := w.(*net.TCPConn); ok {
		tc.SetNoDelay(false)
	}
}

// canZeroCopy reports whether io.Copy(dst, src) lets the kernel move the
// data: a file into a connection that takes it by ReadFrom (a TCP socket,
// also behind the PROXY protocol wrapper, which passes ReadFrom on:
// sendfile), or a TCP socket into a writer that takes it by ReadFrom (a
// local file: splice).
func canZeroCopy(dst io.Writer, src io.Reader) bool {
	_, readerFrom := dst.(io.ReaderFrom)
	switch src.(type) {
	case *os.File, *net.TCPConn:
		return readerFrom
	}
	return false
}

// copyFilled copies src to dst through buf, writing only when buf is full
// or src has ended. A TLS connection returns one record (at most 16 KiB)
// per Read, and writing each on its own would cost a write(2) per record.
// io.EOF from src ends the copy without error; any other error from src is
// returned after what was read before it has been written.
func copyFilled(dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n := 0
		var rerr error
		for n < len(buf) && rerr == nil {
			var m int
			m, rerr = src.Read(buf[n:])
			n += m
		}
		if n > 0 {
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// copyBuffers serve the transfers that cannot go zero-copy.
var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 256<<10)
	return &b
}}
