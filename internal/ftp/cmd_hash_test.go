package ftp

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/memstore"
)

func sha256Hex(s string) string { b := sha256.Sum256([]byte(s)); return hex.EncodeToString(b[:]) }
func sha1Hex(s string) string   { b := sha1.Sum([]byte(s)); return hex.EncodeToString(b[:]) }
func md5Hex(s string) string    { b := md5.Sum([]byte(s)); return hex.EncodeToString(b[:]) }
func crcHex(s string) string    { return fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(s))) }

// onRequest lets sessions hash files of up to 1 MiB on request, unthrottled.
func onRequest(c *Config) { c.HashMaxSize = 1 << 20 }

// TestHashCommands covers HASH, OPTS HASH and the X commands: answers
// from the stored SHA-256 without opening the file, values computed on
// request for every algorithm, and each refusal.
func TestHashCommands(t *testing.T) {
	t.Parallel()
	const data = "hello, checksums\n"
	planted := sha256.Sum256([]byte("not the content"))
	plantedHex := hex.EncodeToString(planted[:])
	files := map[string]string{"alice/f.txt": data, "alice/dir/": "", "alice/big": strings.Repeat("x", 100)}
	runScripts(t, []scriptCase{
		{
			// The planted value is wrong on purpose, and opening the file
			// fails: the answer can only come from the stored value.
			name: "stored SHA-256 is the answer, the file is not read", files: files,
			opts: harnessOpts{config: onRequest},
			setup: func(h *harness) {
				if err := h.fs.SetChecksum("alice/f.txt", planted); err != nil {
					t.Fatal(err)
				}
				h.fs.Fail(memstore.OpOpen, "/f.txt", storage.ErrPermission)
			},
			steps: []step{
				{"HASH f.txt", 213, "SHA-256 0-17 " + plantedHex + " f.txt"},
				{"XSHA256 /f.txt", 250, plantedHex},
				// Another algorithm must read the file, which fails.
				{"XMD5 f.txt", 550, "Permission denied"},
			},
		},
		{
			name: "computed on request, every algorithm", files: files,
			opts: harnessOpts{config: onRequest},
			steps: []step{
				{"OPTS HASH", 200, "SHA-256"},
				{"HASH f.txt", 213, "SHA-256 0-17 " + sha256Hex(data) + " f.txt"},
				{"XSHA256 f.txt", 250, sha256Hex(data)},
				{"XSHA1 f.txt", 250, sha1Hex(data)},
				{"XMD5 f.txt", 250, md5Hex(data)},
				{"XCRC f.txt", 250, crcHex(data)},
				{"OPTS HASH sha-1", 200, "SHA-1"},
				{"HASH f.txt", 213, "SHA-1 0-17 " + sha1Hex(data) + " f.txt"},
				{"OPTS HASH MD5", 200, "MD5"},
				{"HASH f.txt", 213, "MD5 0-17 " + md5Hex(data) + " f.txt"},
				{"FEAT", 211, "HASH SHA-256;SHA-1;MD5*;CRC32"},
				{"OPTS HASH CRC32", 200, "CRC32"},
				{"HASH f.txt", 213, "CRC32 0-17 " + crcHex(data) + " f.txt"},
				{"OPTS HASH", 200, "CRC32"},
			},
		},
		{
			name: "refusals", files: files,
			opts: harnessOpts{config: func(c *Config) { c.HashMaxSize = 50 }},
			steps: []step{
				{"OPTS HASH BLAKE3", 501, "Unknown hash algorithm"},
				{"HASH", 501, ""},
				{"HASH missing", 550, ""},
				{"HASH dir", 550, "Not a regular file"},
				{"HASH big", 550, "too large to hash on request (100 bytes; the limit is 50)"},
				{"XSHA256 big", 550, "too large"},
				{"XSHA1 missing", 550, ""},
				{"XMD5 dir", 550, ""},
				{"XCRC big", 550, "too large"},
				{"HASH f.txt", 213, sha256Hex(data)},
			},
		},
		{
			name: "nothing computed on request with hash_max_size 0", files: files,
			steps: []step{
				{"HASH f.txt", 550, "does not compute checksums on request"},
			},
		},
		{
			name: "needs the download permission", files: files, user: "drop",
			opts: harnessOpts{config: onRequest},
			steps: []step{
				{"HASH /f.txt", 550, "Permission denied"},
				{"XSHA256 /f.txt", 550, "Permission denied"},
			},
		},
		{
			name: "before login", user: "-", files: files,
			steps: []step{{"HASH f.txt", 530, ""}},
		},
	})
}

// eventLog is an events.Recorder that keeps what it hears.
type eventLog struct {
	mu  sync.Mutex
	evs []events.Event
}

func (l *eventLog) Record(e events.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, e)
	return nil
}

func (l *eventLog) uploads() []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []events.Event
	for _, e := range l.evs {
		if e.Type == events.UploadCommitted || e.Type == events.UploadFailed {
			out = append(out, e)
		}
	}
	return out
}

// TestUploadChecksum covers the SHA-256 computed while an upload streams
// in: stored with the file (so HASH answers with nothing computed on
// request), put in the event and the log line; of the stored bytes in
// TYPE A; and absent after an append, whose stored value is dropped.
func TestUploadChecksum(t *testing.T) {
	t.Parallel()
	evs := &eventLog{}
	h := newHarness(t, harnessOpts{config: func(c *Config) {
		c.UploadChecksum = true
		c.Events = evs
		c.HashMaxSize = 0 // only stored values can answer
	}})
	h.login()
	data := strings.Repeat("0123456789abcdef", 40000) // 640,000 bytes
	h.stor("f.bin", data)
	h.expect(213, "HASH f.bin")
	if got := h.expect(250, "XSHA256 f.bin"); got != sha256Hex(data) {
		t.Errorf("XSHA256 = %q, want %q", got, sha256Hex(data))
	}
	if sum, ok := h.fs.Checksum("alice/f.bin"); !ok || hex.EncodeToString(sum[:]) != sha256Hex(data) {
		t.Errorf("stored checksum %x (%v), want %s", sum, ok, sha256Hex(data))
	}
	if !strings.Contains(h.logs.String(), "sha256="+sha256Hex(data)) {
		t.Errorf("transfer log line without sha256=%s", sha256Hex(data))
	}

	// TYPE A: the stored file has LF line ends, and so has its hash.
	h.expect(200, "TYPE A")
	h.stor("a.txt", "one\r\ntwo\r\n")
	h.expect(200, "TYPE I")
	if got := h.file("alice/a.txt"); got != "one\ntwo\n" {
		t.Fatalf("TYPE A upload stored %q", got)
	}
	if got := h.expect(250, "XSHA256 a.txt"); got != sha256Hex("one\ntwo\n") {
		t.Errorf("XSHA256 of a TYPE A upload = %q, want the stored bytes' %q", got, sha256Hex("one\ntwo\n"))
	}

	// An append changes the file: no stored value, and none computed.
	more := "appended"
	h.epsvUpload("APPE f.bin", more)
	h.expect(550, "HASH f.bin")

	ups := evs.uploads()
	if len(ups) != 3 {
		t.Fatalf("%d upload events, want 3: %+v", len(ups), ups)
	}
	if ups[0].SHA256 != sha256Hex(data) || ups[1].SHA256 != sha256Hex("one\ntwo\n") {
		t.Errorf("event checksums %q, %q; want %q, %q", ups[0].SHA256, ups[1].SHA256, sha256Hex(data), sha256Hex("one\ntwo\n"))
	}
	if ups[2].SHA256 != "" {
		t.Errorf("APPE event has checksum %q; an append's would not be the file's", ups[2].SHA256)
	}
}

// epsvUpload runs an upload command through EPSV with data, expecting 226.
func (h *harness) epsvUpload(line, data string) {
	h.t.Helper()
	r := h.xfer(line, &data)
	if r.code != 226 {
		h.t.Fatalf("%q: final reply %d %q", line, r.code, r.msg)
	}
}

// TestUploadChecksumFailed: an aborted upload stores nothing and its
// event carries no checksum (there is no stored file to describe).
func TestUploadChecksumFailed(t *testing.T) {
	t.Parallel()
	evs := &eventLog{}
	h := newHarness(t, harnessOpts{config: func(c *Config) { c.UploadChecksum = true; c.Events = evs }})
	h.login()
	h.fs.Fail(memstore.OpCommit, "/f", storage.ErrNoSpace)
	data := "data"
	if r := h.xfer("STOR f", &data); r.code < 400 {
		t.Fatalf("STOR with a failing commit: %d %q", r.code, r.msg)
	}
	ups := evs.uploads()
	if len(ups) != 1 || ups[0].Type != events.UploadFailed || ups[0].SHA256 != "" {
		t.Fatalf("events %+v, want one upload.failed without sha256", ups)
	}
	if _, ok := h.fs.Checksum("alice/f"); ok {
		t.Error("a failed upload left a stored checksum")
	}
}

// TestHashOnRequestInterrupted: hashing on request runs like a transfer,
// so STAT reports it, ABOR stops it at once (its command gets 451, ABOR
// 226), QUIT does not wait for it, and the per-session rate holds it back.
func TestHashOnRequestInterrupted(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("z", 4<<20)
	slow := func(c *Config) { c.HashMaxSize = 8 << 20; c.HashRate = 256 << 10 } // 16 s for big
	t.Run("ABOR", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{config: slow})
		h.put("alice/big", big)
		h.login()
		h.send("HASH big")
		h.script(step{"STAT", 211, "Transfer in progress: HASH /big"})
		start := time.Now()
		h.send("ABOR")
		if code, msg := h.read(); code != 451 || !strings.Contains(msg, "aborted") {
			t.Fatalf("HASH after ABOR: %d %q, want 451", code, msg)
		}
		h.expectReply(226)
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("ABOR took %v", took)
		}
		h.expect(200, "NOOP") // the session goes on
	})
	t.Run("QUIT", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{config: slow})
		h.put("alice/big", big)
		h.login()
		h.send("HASH big")
		h.send("QUIT")
		if code, _ := h.read(); code != 451 {
			t.Fatalf("HASH after QUIT: %d, want 451", code)
		}
		h.expectReply(221)
		h.closed()
	})
	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		// 1.25 MiB at 512 KiB/s with a burst of 512 KiB: at least 1.5 s.
		data := strings.Repeat("r", 1280<<10)
		h := newHarness(t, harnessOpts{config: func(c *Config) { c.HashMaxSize = 8 << 20; c.HashRate = 512 << 10 }})
		h.put("alice/r", data)
		h.login()
		start := time.Now()
		if got := h.expect(250, "XSHA256 r"); got != sha256Hex(data) {
			t.Errorf("XSHA256 = %q", got)
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("1.25 MiB hashed in %v at a limit of 512 KiB/s", took)
		}
	})
}
