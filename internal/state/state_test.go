package state

import (
	"context"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/events/delivery/outboxtest"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = outboxtest.T0

// TestOutbox runs the outbox conformance suite on SQLite, each case in a
// state directory of its own; reopening is a restart of the process.
func TestOutbox(t *testing.T) {
	outboxtest.Run(t, outboxtest.Harness{
		Open: func(t *testing.T) (outboxtest.Store, func(t *testing.T) outboxtest.Store) {
			dir := t.TempDir()
			return open(t, dir), func(t *testing.T) outboxtest.Store { return open(t, dir) }
		},
		Rows: func(t *testing.T, s outboxtest.Store) (n, lo, hi int64) {
			t.Helper()
			if err := s.(*Store).db.QueryRow(`SELECT COUNT(*), COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM outbox`).Scan(&n, &lo, &hi); err != nil {
				t.Fatal(err)
			}
			return n, lo, hi
		},
		ErrUnknownSink: ErrUnknownSink,
		ErrClosed:      ErrClosed,
	})
}

// TestOpenPragmas: the durability settings are in force on the pool's
// connections.
func TestOpenPragmas(t *testing.T) {
	s := open(t, t.TempDir())
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "10000"},
	} {
		var got string
		if err := s.db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
		}
	}
}
