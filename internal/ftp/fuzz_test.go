package ftp

import (
	"bufio"
	"bytes"
	"io"
	"path"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzReadLine feeds arbitrary control-connection bytes to the command
// reader: it must never panic, never return a line over the limit or with
// CR/LF inside, and always make progress.
func FuzzReadLine(f *testing.F) {
	for _, s := range []string{
		"USER alice\r\n",
		"NOOP\n",
		"\xff\xf4\xff\xf2ABOR\r\n",
		"\xff\xf4\xffABOR\r\n",
		"\xff\xfb\x01\xff\xfd\x03NOOP\r\n",
		"\xff\xfa\x18\x01\xff\xf0STAT\r\n",
		"\xff\xffname\r\n",
		strings.Repeat("x", 5000) + "\r\nNOOP\r\n",
		"\r\n\r\n",
		"no newline",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lr := lineReader{r: bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16), max: 64}
		for i := 0; i <= len(data); i++ {
			line, err := lr.readLine()
			if err == errLineTooLong {
				continue
			}
			if err != nil {
				return
			}
			if len(line) > 64 {
				t.Fatalf("line of %d bytes over the limit", len(line))
			}
			if strings.ContainsAny(line, "\n") {
				t.Fatalf("line %q contains LF", line)
			}
		}
		if _, err := lr.readLine(); err != io.EOF {
			t.Fatalf("reader made no progress: %v", err)
		}
	})
}

// FuzzResolvePath checks that no client path resolves outside "/".
func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"", ".", "..", "../../etc/passwd", "/a/../../b", "a//b/./c/", "/", "\x00", "a\\..\\b", "...", "//"} {
		f.Add("/", s)
		f.Add("/home/x", s)
	}
	f.Fuzz(func(t *testing.T, cwd, p string) {
		cwd, ok := resolvePath("/", cwd)
		if !ok {
			return
		}
		got, ok := resolvePath(cwd, p)
		if !ok {
			if !strings.ContainsRune(p, 0) {
				t.Fatalf("rejected %q without a NUL", p)
			}
			return
		}
		if !strings.HasPrefix(got, "/") || path.Clean(got) != got {
			t.Fatalf("resolvePath(%q, %q) = %q: not clean and absolute", cwd, p, got)
		}
		for _, el := range strings.Split(got, "/") {
			if el == ".." {
				t.Fatalf("resolvePath(%q, %q) = %q contains ..", cwd, p, got)
			}
		}
	})
}

// FuzzParseCommands checks the parsers of PORT, EPRT, MFMT time-vals and
// MLST fact lists never panic and return only valid values.
func FuzzParseCommands(f *testing.F) {
	for _, s := range []string{"127,0,0,1,4,1", "1,2,3,4,5", "|1|127.0.0.1|1025|", "|2|::1|2000|", "!1!1.2.3.4!5!", "|3|x|1|", "20200101000000", "20200101000000.123", "type;size;modify;", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ap, err := parsePORT(s); err == nil && (!ap.Addr().Is4() || ap.Port() == 0) {
			t.Fatalf("parsePORT(%q) = %v", s, ap)
		}
		if ap, err := parseEPRT(s); err == nil && (!ap.IsValid() || ap.Port() == 0) {
			t.Fatalf("parseEPRT(%q) = %v", s, ap)
		}
		if tv, err := parseTimeVal(s); err == nil && tv.Location().String() != "UTC" {
			t.Fatalf("parseTimeVal(%q) not UTC", s)
		}
		if fs := parseFacts(s); fs&^allFacts != 0 {
			t.Fatalf("parseFacts(%q) = %b", s, fs)
		}
		_ = listingTarget(s)
	})
}

// FuzzASCIIRoundTrip checks that TYPE A conversion is lossless for text
// without bare CRs, whatever the read sizes.
func FuzzASCIIRoundTrip(f *testing.F) {
	for _, s := range []string{"a\nb\n", "\n\n\n", "no newline", "", "x\r\ny"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var wire bytes.Buffer
		aw := newASCIIWriter(&wire)
		aw.Write([]byte(s))
		aw.Flush()
		if bytes.Contains(bytes.ReplaceAll(wire.Bytes(), []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("bare LF on the wire for %q: %q", s, wire.Bytes())
		}
		back, err := io.ReadAll(newASCIIReader(iotest.HalfReader(&wire)))
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ReplaceAll(s, "\r\n", "\n")
		if !strings.Contains(s, "\r") && string(back) != want {
			t.Fatalf("round trip of %q gave %q", s, back)
		}
	})
}
