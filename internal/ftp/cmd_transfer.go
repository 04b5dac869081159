package ftp

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

func (s *Session) cmdREST(arg string) {
	n, err := strconv.ParseInt(strings.TrimSpace(arg), 10, 64)
	if err != nil || n < 0 {
		s.reply(501, "REST needs a non-negative byte offset.")
		return
	}
	s.restOffset = n
	s.reply(350, fmt.Sprintf("Restarting at %d. Send STOR or RETR to continue.", n))
}

// convertsASCII reports whether transfers convert line endings: TYPE A,
// unless the listener or the user is binary-only. Windows clients that
// pick ASCII for "text" files by extension otherwise corrupt binaries
// that happen to have such a name; Transfer Family is binary-only too.
// Before login the user is unknown, so this is asked at each transfer.
func (s *Session) convertsASCII() bool { return !s.binary && !s.binaryOnly() }

func (s *Session) binaryOnly() bool {
	return s.cfg.BinaryOnly || s.user != nil && s.user.BinaryOnly
}

func (s *Session) modeName() string {
	if !s.convertsASCII() {
		return "BINARY"
	}
	return "ASCII"
}

func (s *Session) cmdRETR(arg string) {
	p, ok := s.path(arg)
	if !ok || !s.allowed(p, auth.PermDownload, "download files") {
		return
	}
	f, size, ok := s.openDownload(p)
	if !ok {
		return
	}
	opening := fmt.Sprintf("Opening %s mode data connection for %s (%d bytes).", s.modeName(), path.Base(p), size)
	binary := !s.convertsASCII()
	gates := s.downloadGates()
	s.startTransfer("RETR", p, opening,
		func(ctx context.Context, x *transfer, data net.Conn) xferResult {
			var err error
			if binary {
				x.size.Store(size + 1) // for Info: ASCII changes the count
				// Unwrapped *os.File to *net.TCPConn: sendfile.
				err = s.copyData(ctx, x, data, data, f, gates...)
			} else {
				aw := newASCIIWriter(data)
				if err = s.copyData(ctx, x, data, aw, f, gates...); err == nil {
					err = aw.Flush()
				}
			}
			if err != nil {
				return s.dataPhaseResult(data, "read", p, err, "Transfer failed: connection closed or stalled.", "")
			}
			return xferResult{code: 226, text: "Transfer complete."}
		},
		func(r xferResult, _ *transfer) xferResult {
			f.Close()
			return r
		})
}

// openDownload opens p for RETR at the REST offset, and returns the
// number of bytes from there to the end. A download from the start asks a
// storage.StatOpener to open and describe the file in one step.
func (s *Session) openDownload(p string) (io.ReadCloser, int64, bool) {
	if so, ok := s.fs.(storage.StatOpener); ok && s.restOffset == 0 {
		f, fi, err := so.OpenStat(s.ctx, p)
		switch {
		case errors.Is(err, storage.ErrIsDir):
			s.reply(550, "Not a regular file.")
			return nil, 0, false
		case err != nil:
			s.replyStorageErr("open", p, err)
			return nil, 0, false
		}
		return f, fi.Size, true
	}
	fi, ok := s.statFile(p)
	if !ok {
		return nil, 0, false
	}
	offset := s.restOffset
	s.restOffset = 0
	if offset > fi.Size {
		s.reply(554, fmt.Sprintf("Restart offset %d is beyond the end of the file (%d bytes).", offset, fi.Size))
		return nil, 0, false
	}
	f, err := s.fs.Open(s.ctx, p, offset)
	if err != nil {
		s.replyStorageErr("open", p, err)
		return nil, 0, false
	}
	return f, fi.Size - offset, true
}

func (s *Session) cmdSTOR(arg string) { s.store(arg, "STOR", false) }

func (s *Session) cmdAPPE(arg string) { s.store(arg, "APPE", true) }

// store serves STOR, APPE and REST+STOR. Plain STOR is atomic: the old file
// stays until the new one is complete.
func (s *Session) store(arg, verb string, appendMode bool) {
	p, ok := s.path(arg)
	if !ok || !s.allowed(p, auth.PermUpload, "upload files") || !s.nameAllowed(p) {
		return
	}
	offset := s.restOffset
	s.restOffset = 0
	caps := s.capsAt(p)
	switch {
	case appendMode && !caps.Append:
		s.reply(502, "APPE is not supported by this server's storage; upload the whole file with STOR.")
		return
	case offset > 0 && !caps.WriteOffset:
		s.reply(502, "Resuming uploads (REST + STOR) is not supported by this server's storage; upload the whole file.")
		return
	}
	if offset > 0 {
		// A resume point past the end would leave a hole: an invalid
		// restart marker (554), as for RETR.
		fi, err := s.fs.Stat(s.ctx, p)
		if err != nil {
			s.replyStorageErr("stat", p, err)
			return
		}
		if offset > fi.Size {
			s.reply(554, fmt.Sprintf("Restart offset %d is beyond the end of the file (%d bytes).", offset, fi.Size))
			return
		}
	}
	// The backend refuses a directory (ErrIsDir) and, for a user who may
	// not overwrite, an existing file (ErrExist): no Stat of our own.
	opts := storage.CreateOptions{
		Offset:    offset,
		Append:    appendMode,
		Exclusive: !s.permsAt(p).Has(auth.PermOverwrite),
	}
	s.upload(verb, p, opts, fmt.Sprintf("Ok to send data for %s.", path.Base(p)), "Transfer complete.")
}

// cmdSTOU stores under a new unique name in the working directory (or next
// to the path given), reporting it as RFC 1123 suggests.
func (s *Session) cmdSTOU(arg string) {
	s.restOffset = 0
	dir, base := s.cwd, "ftp"
	if arg != "" {
		p, ok := s.path(arg)
		if !ok {
			return
		}
		dir, base = path.Dir(p), path.Base(p)
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	name := base + "." + hex.EncodeToString(suffix[:])
	p := path.Join(dir, name)
	if !s.allowed(p, auth.PermUpload, "upload files") || !s.nameAllowed(p) {
		return
	}
	s.upload("STOU", p, storage.CreateOptions{Exclusive: true}, "FILE: "+name, "Transfer complete (unique file name: "+name+").")
}

// upload creates the target and runs the transfer into it; the upload is
// committed only when every byte arrived and the client did not abort.
func (s *Session) upload(verb, p string, opts storage.CreateOptions, opening, done string) {
	gates, ok := s.uploadGates(p, opts)
	if !ok {
		return
	}
	qu, ok := s.startQuotaUpload(p, opts)
	if !ok {
		return
	}
	// A partial upload may be kept only where no file is: a new name.
	keepable := s.cfg.KeepPartial && opts.Offset == 0 && !opts.Append
	if keepable && verb != "STOU" {
		if _, err := s.fs.Stat(s.ctx, p); err == nil || !errors.Is(err, storage.ErrNotExist) {
			keepable = false
		}
	}
	up, err := s.fs.Create(s.ctx, p, opts)
	if err != nil {
		qu.end(s, false, 0)
		if errors.Is(err, storage.ErrExist) && verb != "STOU" && !s.permsAt(p).Has(auth.PermOverwrite) {
			s.reply(550, "Permission denied: the file exists and you may not overwrite files.")
			return
		}
		s.replyStorageErr("create", p, err)
		return
	}
	binary := !s.convertsASCII()
	// The checksum of a whole file: appends and resumed uploads write
	// only part of one (their backend drops the stored value instead).
	var sum *hashingWriter
	var dst io.Writer = up
	if s.cfg.UploadChecksum && opts.Offset == 0 && !opts.Append {
		sum = &hashingWriter{w: up, h: sha256.New()}
		dst = sum
	}
	discard := false // a limit refused the upload: nothing of it stays
	s.startTransfer(verb, p, opening,
		func(ctx context.Context, x *transfer, data net.Conn) xferResult {
			var src io.Reader = data
			if !binary {
				src = newASCIIReader(data)
			}
			// Without a checksum, up is the backend's writer as is:
			// for local storage it reaches os.File.ReadFrom, which
			// splices from the socket. Hashing sees every byte, so it
			// takes the buffered copy.
			if err := s.copyData(ctx, x, data, dst, src, append(gates, qu.gates()...)...); err != nil {
				if r, refused := refusedByLimit(err); refused {
					discard = true
					return r
				}
				return s.dataPhaseResult(data, "write", p, err, "Transfer failed: connection closed or stalled; upload discarded.", " Upload discarded.")
			}
			return xferResult{code: 226, text: done}
		},
		func(r xferResult, x *transfer) xferResult {
			if r.code < 400 && !x.aborted.Load() && s.clientDied(x, p, up) {
				x.abandon()
				r = xferResult{code: 426, text: "Client went away; upload discarded.", err: errors.New("control connection closed by the client")}
			}
			if discard {
				discardUpload(up)
				qu.end(s, false, x.bytes.Load())
				return r
			}
			if r.code >= 400 || x.aborted.Load() {
				if keepable && x.bytes.Load() > 0 {
					return s.keepPartial(x, r, up, qu, p)
				}
				up.Abort()
				qu.end(s, false, x.bytes.Load())
				return r
			}
			if err := qu.prepare(s, x.bytes.Load()); err != nil {
				up.Abort()
				qu.end(s, false, x.bytes.Load())
				rep := s.storageReply("commit", p, err)
				return xferResult{code: rep.Code, text: rep.Lines[0] + " Upload discarded.", err: err}
			}
			// Decided: from here on the upload is committed whatever
			// happens to the session, so the log says what is stored. A
			// session closing now must not cancel the final request
			// (an S3 CompleteMultipartUpload that may already have
			// reached the server) and report it as aborted.
			var digest [sha256.Size]byte
			if sum != nil {
				sum.h.Sum(digest[:0])
				if cs, ok := up.(storage.ChecksumSetter); ok {
					cs.SetSHA256(digest)
				}
			}
			if err := up.Commit(context.WithoutCancel(s.ctx)); err != nil {
				qu.end(s, false, x.bytes.Load())
				rep := s.storageReply("commit", p, err)
				return xferResult{code: rep.Code, text: rep.Lines[0] + " Upload discarded.", err: err}
			}
			if sum != nil {
				x.sha256 = hex.EncodeToString(digest[:])
			}
			qu.end(s, true, x.bytes.Load())
			return r
		})
}

// keepPartial commits what arrived of a failed upload of a new file
// (Config.KeepPartial), so that the client can resume it with REST + STOR
// or APPE, as it would against vsftpd, which writes in place. The reply
// stays the failure's (the upload did not complete) and says what was
// kept; the event is upload.partial, with no checksum: the file is not
// the one the client meant to send. Were the commit to fail, nothing is
// kept.
func (s *Session) keepPartial(x *transfer, r xferResult, up storage.Upload, qu *quotaUpload, p string) xferResult {
	n := x.bytes.Load()
	if err := qu.prepare(s, n); err != nil {
		up.Abort()
		qu.end(s, false, n)
		return r
	}
	if err := up.Commit(context.WithoutCancel(s.ctx)); err != nil {
		s.log.Warn("partial upload not kept", "path", p, "bytes", n, "err", err)
		qu.end(s, false, n)
		return r
	}
	qu.end(s, true, n)
	x.partial = true
	r.text = strings.Replace(r.text, "upload discarded", fmt.Sprintf("the %d bytes received are kept; resume with REST %d and STOR", n, n), 1)
	if !strings.Contains(r.text, "kept") {
		r.text += fmt.Sprintf(" The %d bytes received are kept; resume with REST %d and STOR.", n, n)
	}
	return r
}

// clientDied reports whether an upload whose data connection has just
// ended was cut short by the client dying rather than finished. Stream
// mode has no end-of-file marker: a client killed mid-upload closes its
// data connection with the same FIN as one that sent everything, and what
// arrived is a fragment. Only its control connection, closed by the same
// death, tells them apart, and its FIN can arrive milliseconds after the
// data connection's (the dying process closes its sockets last-opened
// first, and a loaded machine spreads them further). So: a control
// connection already closed or reset means dead; when the upload would
// replace an existing file, the session also waits up to ReplaceGrace for
// the command loop to see the control connection end, so that a fragment
// never destroys the file that was there before. New files are not held
// up: small-file uploads would pay the wait on every file.
func (s *Session) clientDied(x *transfer, p string, up storage.Upload) bool {
	if peerClosed(s.raw) {
		return true
	}
	if s.cfg.ReplaceGrace <= 0 || !s.replaces(p, up) {
		return false
	}
	t := time.NewTimer(s.cfg.ReplaceGrace)
	defer t.Stop()
	select {
	case <-x.ctx.Done(): // the command loop saw the client go
		return true
	case <-t.C:
		return peerClosed(s.raw)
	}
}

// replaces reports whether committing up would replace a file at p. An
// upload that can tell (storage.Replacer: local disk, one fstatat in the
// directory it holds) is asked; otherwise p is looked up, bounded by the
// grace too: a slow backend (S3 not answering) must not hold the upload
// up for longer than that.
func (s *Session) replaces(p string, up storage.Upload) bool {
	if r, ok := up.(storage.Replacer); ok {
		if exists, err := r.Replaces(); err == nil {
			return exists
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ReplaceGrace)
	_, err := s.fs.Stat(ctx, p)
	cancel()
	return err == nil // nothing to replace (or nothing we can see in time)
}

// cmdABOR aborts the running transfer: its command gets 426, then ABOR
// gets 226 (RFC 959 4.1.3).
func (s *Session) cmdABOR(string) {
	x := s.currentTransfer()
	if x == nil {
		s.releasePassive()
		s.reply(225, "No transfer to abort.")
		return
	}
	x.abandon()
	<-x.done
	s.reply(226, "ABOR successful.")
}

func (s *Session) cmdLIST(arg string) { s.list(arg, "LIST", formatLS) }

func (s *Session) cmdNLST(arg string) { s.list(arg, "NLST", formatNames) }

func (s *Session) cmdMLSD(arg string) {
	s.list(arg, "MLSD", formatMLSD)
}

// list sends a directory listing over the data connection.
func (s *Session) list(arg, verb string, format listFormat) {
	s.restOffset = 0
	if format != formatMLSD {
		arg = listingTarget(arg)
	}
	p, ok := s.path(arg)
	if !ok || !s.allowed(p, auth.PermList, "list directories") {
		return
	}
	fi, err := s.fs.Stat(s.ctx, p)
	if err != nil {
		s.replyStorageErr("list", p, err)
		return
	}
	if format == formatMLSD && !fi.IsDir() {
		s.reply(501, "MLSD needs a directory; use MLST for a file.")
		return
	}
	it, ok := s.openListing(p, &fi)
	if !ok {
		return
	}
	s.startTransfer(verb, p, "Here comes the directory listing.",
		func(ctx context.Context, x *transfer, data net.Conn) xferResult {
			bw := bufio.NewWriterSize(data, 32<<10)
			err := s.writeListing(func(line []byte) error {
				line = append(line, '\r', '\n')
				n, err := bw.Write(line)
				x.bytes.Add(int64(n))
				return err
			}, p, it, fi, format)
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				return s.dataPhaseResult(data, "list", p, err, "Listing failed: connection closed or stalled.", "")
			}
			return xferResult{code: 226, text: "Directory send OK."}
		}, func(r xferResult, _ *transfer) xferResult {
			if it != nil {
				it.Close()
			}
			return r
		})
}

// cmdMLST describes one path on the control connection.
func (s *Session) cmdMLST(arg string) {
	p, ok := s.path(arg)
	if !ok || !s.canSee(p) {
		return
	}
	fi, err := s.fs.Stat(s.ctx, p)
	if err != nil {
		s.replyStorageErr("mlst", p, err)
		return
	}
	entry := appendMLSx(nil, fi, p, s.mlstFacts, s.permsAt(p), new(dateCache))
	s.writeReply(Reply{Code: 250, Lines: []string{"Listing " + p, string(entry), "End"}})
}

// statPath serves "STAT path": an ls -l listing on the control connection,
// streamed line by line through the reply writer, which escapes every
// name like any other reply text.
func (s *Session) statPath(arg string) {
	p, ok := s.path(listingTarget(arg))
	if !ok || !s.allowed(p, auth.PermList, "list directories") {
		return
	}
	fi, err := s.fs.Stat(s.ctx, p)
	if err != nil {
		s.replyStorageErr("stat", p, err)
		return
	}
	it, ok := s.openListing(p, &fi)
	if !ok {
		return
	}
	if it != nil {
		defer it.Close()
	}
	err = s.out.stream(213, "Status of "+p+":", "End of status.", func(emit func([]byte) error) error {
		return s.writeListing(emit, p, it, fi, formatLS)
	})
	if err != nil {
		s.log.Debug("stat listing", "err", err)
	}
}
