package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// writeHook writes an executable /bin/sh script.
func writeHook(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func commandDispatcher(t *testing.T, hook string, concurrency int, timeout time.Duration, logs *logBuffer) *Dispatcher {
	t.Helper()
	store := openStore(t, t.TempDir())
	d, err := New(context.Background(), store, events.Config{StateDir: "x", Sinks: []events.SinkConfig{
		fast(events.SinkConfig{Name: "hook", Kind: events.KindCommand, Command: []string{hook, "arg one"}, Concurrency: concurrency, Timeout: timeout}),
	}}, testOptions(logs))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCommandHookFields: the hook gets its arguments unsplit, the event's
// JSON on stdin and every documented CLOUDFTPD_* variable, set even when
// empty; cloudftpd's own CLOUDFTPD_* variables are not passed on.
func TestCommandHookFields(t *testing.T) {
	out := t.TempDir()
	t.Setenv("CLOUDFTPD_OBJECT", "inherited, must not reach the hook")
	hook := writeHook(t, t.TempDir(), `set -eu
f="`+out+`/$CLOUDFTPD_EVENT_ID"
cat > "$f.json"
printf '%s\n' "$1" > "$f.args"
env | grep '^CLOUDFTPD_' | sort > "$f.env"
`)
	var logs logBuffer
	d := commandDispatcher(t, hook, 1, 10*time.Second, &logs)
	run(t, d)
	e := events.Event{
		Type: events.UploadCommitted, Session: "sess-1", User: "partner-acme", Client: "198.51.100.7:40000", Listener: "0.0.0.0:21",
		Path: "/incoming/a b.csv", Size: 1234, SHA256: "e3b0c442", Storage: "local", Object: "/srv/ftp/acme/incoming/a b.csv",
		Result: events.ResultOK, Duration: 1500 * time.Millisecond, ControlTLS: events.TLS{Version: "TLS 1.3"},
	}
	id := record(t, d, e)[0]
	f := filepath.Join(out, id)
	eventually(t, "the hook's output", func() bool { _, err := os.Stat(f + ".env"); return err == nil })
	eventually(t, "delivered", func() bool { return stats(d, "hook").Delivered == 1 })

	var in events.Event
	b, _ := os.ReadFile(f + ".json")
	if err := json.Unmarshal(b, &in); err != nil || in.ID != id || in.Path != e.Path || in.SHA256 != e.SHA256 {
		t.Errorf("stdin %q: %v", b, err)
	}
	if b, _ := os.ReadFile(f + ".args"); string(b) != "arg one\n" {
		t.Errorf("$1 = %q, want the argument unsplit", b)
	}
	env := map[string]string{}
	b, _ = os.ReadFile(f + ".env")
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	want := map[string]string{
		"CLOUDFTPD_EVENT_ID": id, "CLOUDFTPD_EVENT_TYPE": "upload.committed", "CLOUDFTPD_SESSION": "sess-1",
		"CLOUDFTPD_USER": "partner-acme", "CLOUDFTPD_ANONYMOUS": "", "CLOUDFTPD_CLIENT": "198.51.100.7:40000",
		"CLOUDFTPD_LISTENER": "0.0.0.0:21", "CLOUDFTPD_PATH": "/incoming/a b.csv", "CLOUDFTPD_OLD_PATH": "",
		"CLOUDFTPD_SIZE": "1234", "CLOUDFTPD_SHA256": "e3b0c442", "CLOUDFTPD_STORAGE": "local",
		"CLOUDFTPD_OBJECT": "/srv/ftp/acme/incoming/a b.csv", "CLOUDFTPD_RESULT": "ok", "CLOUDFTPD_REASON": "",
		"CLOUDFTPD_DURATION_MS": "1500", "CLOUDFTPD_TLS": "TLS 1.3",
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("%s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, env["CLOUDFTPD_EVENT_TIME"]); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("CLOUDFTPD_EVENT_TIME = %q: %v", env["CLOUDFTPD_EVENT_TIME"], err)
	}
	var names []string
	for k := range env {
		names = append(names, k)
	}
	slices.Sort(names)
	wantNames := slices.Clone(EnvVars)
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("hook's CLOUDFTPD_ variables %v, want exactly %v", names, wantNames)
	}
}

// TestCommandHookTimeout: a hook that hangs (with a child of its own) is
// killed, process group and all, at its timeout, logged and counted as
// failed and not run again; the next event's hook still runs. A hook that
// exits non-zero is logged with its stderr, and not run again either.
func TestCommandHookTimeout(t *testing.T) {
	out := t.TempDir()
	hook := writeHook(t, t.TempDir(), `
case "$CLOUDFTPD_PATH" in
/hang) sleep 60 & echo $! > "`+out+`/grandchild"; echo started >> "`+out+`/hang.runs"; wait ;;
/fail) echo "disk on fire" >&2; exit 3 ;;
esac
echo ran > "`+out+`/$CLOUDFTPD_EVENT_ID"
`)
	var logs logBuffer
	d := commandDispatcher(t, hook, 1, time.Second, &logs)
	run(t, d)
	ids := record(t, d,
		events.Event{Type: events.UploadCommitted, Path: "/hang"},
		events.Event{Type: events.UploadCommitted, Path: "/fail"},
		events.Event{Type: events.UploadCommitted, Path: "/next"},
	)
	eventually(t, "the hook after the hanging one", func() bool { _, err := os.Stat(filepath.Join(out, ids[2])); return err == nil })
	eventually(t, "3 delivered", func() bool { return stats(d, "hook").Delivered == 3 })
	if st := stats(d, "hook"); st.Failed != 2 || st.Retried != 0 {
		t.Errorf("stats = %+v; want 2 failed, none retried", st)
	}
	b, _ := os.ReadFile(filepath.Join(out, "grandchild"))
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("grandchild pid %q", b)
	}
	eventually(t, "the hook's child killed with its group", func() bool { return gone(pid) })
	if b, _ := os.ReadFile(filepath.Join(out, "hang.runs")); string(b) != "started\n" {
		t.Errorf("hanging hook ran %q, want once", b)
	}
	logText := logs.String()
	if !strings.Contains(logText, "hook killed at its timeout") || !strings.Contains(logText, "timeout=1s") {
		t.Errorf("no timeout log line:\n%s", logText)
	}
	if !strings.Contains(logText, `hook failed; not run again`) || !strings.Contains(logText, "exit status 3") || !strings.Contains(logText, "disk on fire") {
		t.Errorf("no failure log line with exit status and stderr:\n%s", logText)
	}
}

// gone reports whether pid has exited (a zombie waiting for a parent that
// is not ours counts as gone).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

// TestCommandHookStartFailureRetried: a hook that cannot start did
// nothing, so it is retried with backoff until it can.
func TestCommandHookStartFailureRetried(t *testing.T) {
	out := t.TempDir()
	hook := writeHook(t, t.TempDir(), `echo ran > "`+out+`/$CLOUDFTPD_EVENT_ID"`+"\n")
	var logs logBuffer
	d := commandDispatcher(t, hook, 1, 10*time.Second, &logs)
	if err := os.Chmod(hook, 0o644); err != nil { // found at start, not executable now
		t.Fatal(err)
	}
	run(t, d)
	id := record(t, d, events.Event{Type: events.UploadCommitted, Path: "/a"})[0]
	eventually(t, "retries", func() bool { return stats(d, "hook").Retried >= 2 })
	if !strings.Contains(logs.String(), "permission denied") {
		t.Errorf("retry log does not say why:\n%s", logs.String())
	}
	os.Chmod(hook, 0o755)
	eventually(t, "the hook ran", func() bool { _, err := os.Stat(filepath.Join(out, id)); return err == nil })
	if st := stats(d, "hook"); st.Failed != 0 {
		t.Errorf("stats = %+v, want no failed run", st)
	}
}

// TestCommandHookConcurrency: with concurrency 3, three hooks run at
// once, never more.
func TestCommandHookConcurrency(t *testing.T) {
	out := t.TempDir()
	hook := writeHook(t, t.TempDir(), `
touch "`+out+`/running.$CLOUDFTPD_EVENT_ID"
sleep 1
ls "`+out+`" | grep -c '^running' > "`+out+`/seen.$CLOUDFTPD_EVENT_ID"
rm "`+out+`/running.$CLOUDFTPD_EVENT_ID"
`)
	var logs logBuffer
	d := commandDispatcher(t, hook, 3, 10*time.Second, &logs)
	ids := record(t, d, uploads(6)...)
	run(t, d)
	eventually(t, "6 runs", func() bool { return stats(d, "hook").Delivered == 6 })
	most := 0
	for _, id := range ids {
		b, _ := os.ReadFile(filepath.Join(out, "seen."+id))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		most = max(most, n)
	}
	if most != 3 {
		t.Errorf("at most %d hooks ran at once, want 3", most)
	}
}
