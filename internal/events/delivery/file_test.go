package delivery

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func parseAudit(t *testing.T, path string) []events.Event {
	t.Helper()
	var out []events.Event
	for i, line := range readLines(t, path) {
		var e events.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%s line %d: %v: %q", path, i+1, err, line)
		}
		out = append(out, e)
	}
	return out
}

// TestAuditLog: every event, of every type, becomes one JSON line that
// parses back to the event recorded; after logrotate moves the file,
// Reopen sends new events to a new file and none are lost or doubled.
func TestAuditLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	store := openStore(t, filepath.Join(dir, "state"))
	var logs logBuffer
	d, err := New(context.Background(), store, events.Config{StateDir: "x", Sinks: []events.SinkConfig{
		{Name: "audit", Kind: events.KindAudit, Path: path},
	}}, testOptions(&logs))
	if err != nil {
		t.Fatal(err)
	}
	var recorded []events.Event
	for _, typ := range events.Types {
		recorded = append(recorded, events.Event{
			Type: typ, Session: "s1", User: "bob", Client: "198.51.100.7:50123", Path: "/in/a & b <c>.csv",
			Size: 10, Duration: 2500 * time.Microsecond, Result: events.ResultOK, SHA256: "00ff",
			ControlTLS: events.TLS{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256"},
		})
	}
	run(t, d)
	ids := record(t, d, recorded...)
	eventually(t, "audit lines", func() bool { return stats(d, "audit").Delivered == uint64(len(ids)) })
	got := parseAudit(t, path)
	if len(got) != len(ids) {
		t.Fatalf("%d lines, want %d", len(got), len(ids))
	}
	for i, e := range got {
		want := recorded[i]
		want.ID, want.Schema, want.Time, want.Millis = ids[i], events.SchemaVersion, e.Time, 2.5
		if e != want {
			t.Errorf("line %d:\n got %+v\nwant %+v", i+1, e, want)
		}
	}
	if line := readLines(t, path)[0]; !strings.Contains(line, `"/in/a & b <c>.csv"`) {
		t.Errorf("paths are HTML-escaped in the audit log: %s", line)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
		t.Errorf("audit log mode %v, want 0640", st.Mode().Perm())
	}

	// logrotate: move, then signal.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	more := record(t, d, uploads(3)...)
	eventually(t, "the next 3 lines", func() bool { return stats(d, "audit").Delivered == uint64(len(ids)+3) })
	if err := d.Reopen(); err != nil {
		t.Fatal(err)
	}
	after := record(t, d, uploads(2)...)
	eventually(t, "2 lines in the new file", func() bool {
		_, err := os.Stat(path)
		return err == nil && len(readLines(t, path)) == 2
	})
	var old []string
	for _, e := range parseAudit(t, path+".1") {
		old = append(old, e.ID)
	}
	if !slices.Equal(old, append(ids, more...)) {
		t.Errorf("rotated file has %d events, want the %d written before Reopen", len(old), len(ids)+3)
	}
	var cur []string
	for _, e := range parseAudit(t, path) {
		cur = append(cur, e.ID)
	}
	if !slices.Equal(cur, after) {
		t.Errorf("new file has %v, want %v", cur, after)
	}
}

// TestAuditTornLine: a file ending mid-line (a write cut short) gets
// that line ended before the next event, so every event still parses.
func TestAuditTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte(`{"schema":1}`+"\n"+`{"schema":1,"id":"torn`), 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := OpenAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := uploads(1)[0]
	e.Stamp(time.Now())
	if n, err := s.Deliver(context.Background(), []events.Event{e}); n != 1 || err != nil {
		t.Fatalf("Deliver = %d, %v", n, err)
	}
	lines := readLines(t, path)
	if len(lines) != 3 || lines[1] != `{"schema":1,"id":"torn` {
		t.Fatalf("lines = %q", lines)
	}
	var back events.Event
	if err := json.Unmarshal([]byte(lines[2]), &back); err != nil || back.ID != e.ID {
		t.Fatalf("last line %q: %v", lines[2], err)
	}
}

func TestXferlogLine(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // 13:00 in loc
	for _, tc := range []struct {
		name string
		e    events.Event
		want string
	}{
		{"upload", events.Event{Type: events.UploadCommitted, Time: at, Duration: 2600 * time.Millisecond, Client: "198.51.100.7:50123",
			Size: 1048576, Path: "/in/report 2026.csv", User: "alice", Result: events.ResultOK},
			"Sun Mar  1 13:00:00 2026 3 198.51.100.7 1048576 /in/report_2026.csv b _ i r alice ftp 0 * c"},
		{"failed upload, under a second", events.Event{Type: events.UploadFailed, Time: at, Duration: 20 * time.Millisecond, Client: "[2001:db8::1]:2121",
			Size: 99, Path: "/in/x", User: "alice", Result: events.ResultAborted},
			"Sun Mar  1 13:00:00 2026 1 2001:db8::1 99 /in/x b _ i r alice ftp 0 * i"},
		{"anonymous ascii download", events.Event{Type: events.DownloadDone, Time: at.Add(9 * 24 * time.Hour), Duration: time.Minute, Client: "203.0.113.9",
			Size: 5, Path: "/pub/README", User: "guest@example.com", Anonymous: true, TransferType: "ascii", Result: events.ResultOK},
			"Tue Mar 10 13:00:00 2026 60 203.0.113.9 5 /pub/README a _ o a guest@example.com ftp 0 * c"},
		{"unfinished download, odd name", events.Event{Type: events.DownloadDone, Time: at, Duration: time.Second, Client: "::ffff:198.51.100.7",
			Size: 0, Path: "/a\tb\nc", User: "bo b", Result: events.ResultFailed},
			"Sun Mar  1 13:00:00 2026 1 ::ffff:198.51.100.7 0 /a_b_c b _ o r bo_b ftp 0 * i"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(XferlogLine(nil, &tc.e, loc))
			if got != tc.want {
				t.Fatalf("line\n got %q\nwant %q", got, tc.want)
			}
			// Field by field, as xferlog(5) numbers them (current-time
			// is the first five tokens).
			f := strings.Fields(got)
			if len(f) != 18 {
				t.Fatalf("%d fields, want 18: %q", len(f), f)
			}
			if _, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", strings.Join(f[:5], " "), loc); err != nil {
				t.Errorf("current-time %q: %v", f[:5], err)
			}
			dir := map[events.Type]string{events.UploadCommitted: "i", events.UploadFailed: "i", events.DownloadDone: "o"}[tc.e.Type]
			for _, fc := range []struct{ name, got, want string }{
				{"remote-host", f[6], clientHost(tc.e.Client)},
				{"transfer-time", f[5], strconv.FormatInt(max(int64(tc.e.Duration.Round(time.Second)/time.Second), 1), 10)},
				{"file-size", f[7], strconv.FormatInt(tc.e.Size, 10)},
				{"filename", f[8], strings.Map(func(r rune) rune { return map[bool]rune{true: '_', false: r}[r <= ' '] }, tc.e.Path)},
				{"transfer-type", f[9], map[bool]string{true: "a", false: "b"}[tc.e.TransferType == "ascii"]},
				{"special-action-flag", f[10], "_"},
				{"direction", f[11], dir},
				{"access-mode", f[12], map[bool]string{true: "a", false: "r"}[tc.e.Anonymous]},
				{"username", f[13], strings.ReplaceAll(tc.e.User, " ", "_")},
				{"service-name", f[14], "ftp"},
				{"authentication-method", f[15], "0"},
				{"authenticated-user-id", f[16], "*"},
				{"completion-status", f[17], map[bool]string{true: "c", false: "i"}[tc.e.Result == events.ResultOK && tc.e.Type != events.UploadFailed]},
			} {
				if fc.got != fc.want {
					t.Errorf("%s = %q, want %q", fc.name, fc.got, fc.want)
				}
			}
		})
	}
}

// TestXferlogSink: an xferlog sink gets only transfers, whatever else
// is recorded.
func TestXferlogSink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xferlog")
	store := openStore(t, filepath.Join(dir, "state"))
	var logs logBuffer
	d, err := New(context.Background(), store, events.Config{StateDir: "x", Sinks: []events.SinkConfig{
		{Name: "x", Kind: events.KindXferlog, Path: path},
	}}, testOptions(&logs))
	if err != nil {
		t.Fatal(err)
	}
	run(t, d)
	record(t, d,
		events.Event{Type: events.LoginOK, User: "alice", Client: "198.51.100.7"},
		events.Event{Type: events.UploadCommitted, User: "alice", Client: "198.51.100.7", Path: "/a", Size: 3, Result: events.ResultOK},
		events.Event{Type: events.Delete, User: "alice", Path: "/a"},
		events.Event{Type: events.DownloadDone, User: "alice", Client: "198.51.100.7", Path: "/b", Size: 4, Result: events.ResultOK},
	)
	eventually(t, "2 lines", func() bool {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), "\n") == 2
	})
	sc := bufio.NewScanner(strings.NewReader(strings.Join(readLines(t, path), "\n")))
	var dirs []string
	for sc.Scan() {
		dirs = append(dirs, strings.Fields(sc.Text())[11])
	}
	if !slices.Equal(dirs, []string{"i", "o"}) {
		t.Errorf("directions %v, want [i o]", dirs)
	}
}
