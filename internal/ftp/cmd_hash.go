package ftp

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"runtime/debug"
	"strings"

	"golang.org/x/time/rate"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// Checksums of files on the server, for clients that verify a transfer:
// HASH (draft-bryan-ftpext-hash-02, with OPTS HASH to choose the
// algorithm) and the older XSHA256, XSHA1, XMD5 and XCRC that ProFTPD's
// mod_digest and Serv-U answer. A SHA-256 stored with the file by its
// upload (storage.Checksummer) is the answer without reading the file;
// anything else is computed on request, for files up to
// Config.HashMaxSize, at most Config.HashRate bytes a second per session,
// in the background like a transfer so that ABOR, STAT and QUIT are heard.

// hashAlgo is one algorithm clients may ask for.
type hashAlgo struct {
	name string // as in FEAT and OPTS HASH (IANA's hash function names)
	new  func() hash.Hash
}

// hashAlgos are the algorithms offered, SHA-256 (the default, and the one
// stored with uploads) first.
var hashAlgos = []hashAlgo{
	{"SHA-256", sha256.New},
	{"SHA-1", sha1.New},
	{"MD5", md5.New},
	{"CRC32", func() hash.Hash { return crc32.NewIEEE() }},
}

const sha256Algo = 0 // index of SHA-256 in hashAlgos

// hashFeat is the FEAT line, with the session's algorithm marked.
func (s *Session) hashFeat() string {
	names := make([]string, len(hashAlgos))
	for i, a := range hashAlgos {
		names[i] = a.name
		if i == s.hashAlgo {
			names[i] += "*"
		}
	}
	return "HASH " + strings.Join(names, ";")
}

// optsHash serves OPTS HASH [algorithm]: without one it names the
// session's, with one it selects it.
func (s *Session) optsHash(val string) {
	val = strings.TrimSpace(val)
	if val == "" {
		s.reply(200, hashAlgos[s.hashAlgo].name)
		return
	}
	for i, a := range hashAlgos {
		if strings.EqualFold(a.name, val) {
			s.hashAlgo = i
			s.reply(200, a.name)
			return
		}
	}
	s.reply(501, "Unknown hash algorithm "+truncate(val, 16)+"; choose SHA-256, SHA-1, MD5 or CRC32.")
}

func (s *Session) cmdHASH(arg string) { s.hashCommand("HASH", arg, s.hashAlgo) }

func (s *Session) cmdXSHA256(arg string) { s.hashCommand("XSHA256", arg, sha256Algo) }
func (s *Session) cmdXSHA1(arg string)   { s.hashCommand("XSHA1", arg, 1) }
func (s *Session) cmdXMD5(arg string)    { s.hashCommand("XMD5", arg, 2) }
func (s *Session) cmdXCRC(arg string)    { s.hashCommand("XCRC", arg, 3) }

// hashReply is the answer to verb: HASH's "213 SHA-256 0-<size> <hex>
// <path>" (the range is the whole file, end exclusive as ProFTPD sends
// it), the X commands' "250 <hex>". Hex digits are lower case, as
// sha256sum prints them.
func (s *Session) hashReply(verb, arg string, algo int, size int64, sum []byte) {
	h := hex.EncodeToString(sum)
	if verb == "HASH" {
		s.reply(213, fmt.Sprintf("%s 0-%d %s %s", hashAlgos[algo].name, size, h, arg))
		return
	}
	s.reply(250, h)
}

// hashCommand serves HASH and the X commands. The whole file is hashed;
// ranges (RANG, "XMD5 path start end") are not supported.
func (s *Session) hashCommand(verb, arg string, algo int) {
	p, ok := s.path(arg)
	// A checksum tells about the content: it takes the right to read it.
	if !ok || !s.allowed(p, auth.PermDownload, "read files (checksums need the download permission)") {
		return
	}
	fi, ok := s.statFile(p)
	if !ok {
		return
	}
	if algo == sha256Algo {
		if cs, ok := s.fs.(storage.Checksummer); ok {
			sum, err := cs.SHA256(s.ctx, p)
			switch {
			case err == nil:
				s.hashReply(verb, arg, algo, fi.Size, sum[:])
				return
			case !errors.Is(err, storage.ErrNoChecksum):
				s.replyStorageErr("checksum", p, err)
				return
			}
		}
	}
	if s.cfg.HashMaxSize <= 0 || fi.Size > s.cfg.HashMaxSize {
		if s.cfg.HashMaxSize <= 0 {
			s.reply(550, "No checksum is stored for this file, and this server does not compute checksums on request.")
			return
		}
		s.reply(550, fmt.Sprintf("File too large to hash on request (%d bytes; the limit is %d). Only whole uploads have their SHA-256 stored.", fi.Size, s.cfg.HashMaxSize))
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	f, err := s.fs.Open(ctx, p, 0)
	if err != nil {
		cancel()
		s.replyStorageErr("open", p, err)
		return
	}
	x := &transfer{verb: verb, path: p, ctx: ctx, cancel: cancel, done: make(chan struct{}), hashing: true}
	s.mu.Lock()
	s.xfer = x
	s.mu.Unlock()
	go s.runHash(x, f, arg, algo, fi.Size)
}

// runHash computes a checksum on request and sends the reply; the
// session treats it as a transfer until endTransfer.
func (s *Session) runHash(x *transfer, f io.ReadCloser, arg string, algo int, size int64) {
	defer s.endTransfer(x)
	defer x.cancel()
	defer f.Close()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic in checksum", "command", x.verb, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.reply(451, "Internal server error; checksum not computed.")
		}
	}()
	h := hashAlgos[algo].new()
	err := s.hashLimited(x, h, f)
	switch {
	case err == nil && x.bytes.Load() != size:
		// The file changed under us: no answer is better than a wrong one.
		s.reply(450, "The file changed while it was being hashed; try again.")
	case err == nil:
		s.hashReply(x.verb, arg, algo, size, h.Sum(nil))
	case x.aborted.Load() || errors.Is(err, context.Canceled):
		s.reply(451, x.verb+" aborted; checksum not computed.")
	default:
		r := s.storageReply("read", x.path, err)
		s.reply(r.Code, r.Lines[0])
		s.log.Warn("checksum failed", "command", x.verb, "path", x.path, "err", err)
	}
}

// hashChunk is how much is read and hashed between two looks at the rate
// limit.
const hashChunk = 256 << 10

// hashLimited feeds f into h, within the session's rate for hashing on
// request, until EOF or x's end.
func (s *Session) hashLimited(x *transfer, h hash.Hash, f io.Reader) error {
	lim := s.hashLimiter()
	buf := make([]byte, hashChunk)
	for {
		if lim != nil {
			if err := lim.WaitN(x.ctx, len(buf)); err != nil {
				return err
			}
		} else if err := x.ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(f, buf)
		h.Write(buf[:n])
		x.bytes.Add(int64(n))
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// hashLimiter is the session's token bucket for hashing on request, in
// bytes: HashRate a second, with a burst of a second's worth (at least
// one chunk). nil when there is no limit. The limiter is touched only by
// hash jobs, which never run two at a time in a session.
func (s *Session) hashLimiter() *rate.Limiter {
	if s.cfg.HashRate <= 0 {
		return nil
	}
	if s.hashRate == nil {
		burst := int(min(max(s.cfg.HashRate, hashChunk), 1<<30))
		s.hashRate = rate.NewLimiter(rate.Limit(s.cfg.HashRate), burst)
	}
	return s.hashRate
}

// hashingWriter hashes what it writes to w: the bytes the upload stored.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	return n, err
}
