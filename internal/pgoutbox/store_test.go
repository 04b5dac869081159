package pgoutbox

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
	"github.com/cloudftpd/cloudftpd/internal/events"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery/outboxtest"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgtest"
)

// migrated is a new database of c with the schema, as `cloudftpd db
// migrate` leaves it.
func migrated(t testing.TB, c *pgtest.Cluster) string {
	t.Helper()
	dsn := c.NewDatabase(t)
	applied, err := pgdb.Migrate(context.Background(), pgtest.Pool(t, dsn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "00002_outbox.sql") {
		t.Fatalf("migrate applied %v; want 00002_outbox.sql among them", applied)
	}
	return dsn
}

// node opens a store on a pool of its own, as a separate process would,
// closed when the test ends.
func node(t testing.TB, dsn, name string, lease time.Duration, logs *clienttest.LogBuffer) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := Options{Node: name, Lease: lease}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	s, err := Open(ctx, pgtest.Pool(t, dsn), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func count(t *testing.T, s *Store, query string) (n int64) {
	t.Helper()
	if err := s.pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStore runs the outbox conformance suite internal/state runs too,
// against a real PostgreSQL: each case on a database of its own, where
// reopening is a restarted node and a second node shares the tables.
func TestStore(t *testing.T) {
	c := pgtest.Start(t)
	outboxtest.Run(t, outboxtest.Harness{
		Open: func(t *testing.T) (outboxtest.Store, func(t *testing.T) outboxtest.Store) {
			dsn := migrated(t, c)
			return node(t, dsn, "n1", 0, nil), func(t *testing.T) outboxtest.Store { return node(t, dsn, "n1-again", 0, nil) }
		},
		Second: func(t *testing.T, s outboxtest.Store) outboxtest.Store {
			// On a pool of its own, to the same database, as another process.
			return node(t, s.(*Store).pool.Config().ConnString(), "n2", 0, nil)
		},
		Rows: func(t *testing.T, s outboxtest.Store) (n, lo, hi int64) {
			ps := s.(*Store)
			return count(t, ps, `SELECT COUNT(*) FROM cloudftpd_outbox`), count(t, ps, `SELECT COALESCE(MIN(seq), 0) FROM cloudftpd_outbox`),
				count(t, ps, `SELECT COALESCE(MAX(seq), 0) FROM cloudftpd_outbox`)
		},
		Commits: func(t *testing.T, s outboxtest.Store) int64 {
			return count(t, s.(*Store), `SELECT COUNT(DISTINCT xmin::text) FROM cloudftpd_outbox`)
		},
		ErrUnknownSink: ErrUnknownSink,
		ErrClosed:      ErrClosed,
	})
	t.Run("NoSchema", func(t *testing.T) {
		_, err := Open(context.Background(), pgtest.Pool(t, c.NewDatabase(t)), Options{})
		if err == nil || !strings.Contains(err.Error(), "cloudftpd db migrate") {
			t.Fatalf("Open on a database never migrated: %v; want an error saying to run db migrate", err)
		}
	})
}

// TestLease: one node at a time delivers a sink. The holder keeps it
// past its lease by renewing; the other gets no events and the time to
// look again, may not record failures nor forget the sink; a clean Close
// hands the sink over at once, from the cursor.
func TestLease(t *testing.T) {
	c := pgtest.Start(t)
	dsn := migrated(t, c)
	ctx := context.Background()
	const lease = 600 * time.Millisecond
	var logs clienttest.LogBuffer
	a, b := node(t, dsn, "node-a", lease, &logs), node(t, dsn, "node-b", lease, &logs)
	a.Register(ctx, "hook")
	all := outboxtest.IDs(outboxtest.AppendN(t, b, 0, 4)) // appended on b, delivered by a: the table is shared

	if got := outboxtest.Pending(t, a, "hook", time.Now()); !slices.Equal(got, all) {
		t.Fatalf("holder's pending = %v, want %v", got, all)
	}
	now := time.Now()
	got, retry, err := b.Pending(ctx, "hook", 100, now)
	if err != nil || len(got) != 0 || retry.Before(now.Add(lease/2)) || retry.After(now.Add(lease+time.Second)) {
		t.Fatalf("other node's pending = %v, retry in %v, %v; want none, retry within the lease (%v)", outboxtest.IDs(got), retry.Sub(now), err, lease)
	}
	if err := b.MarkFailed(ctx, "hook", all[0], errors.New("x"), now); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("MarkFailed by a node without the lease: %v, want ErrLeaseLost", err)
	}
	if _, err := b.Forget(ctx, "hook"); !errors.Is(err, events.ErrSinkInUse) {
		t.Fatalf("Forget of a sink another node holds: %v, want events.ErrSinkInUse", err)
	}
	// Three leases later, a still holds it: renewed in the background.
	time.Sleep(3 * lease)
	if got, _, _ := b.Pending(ctx, "hook", 100, time.Now()); len(got) != 0 {
		t.Fatalf("the other node got %d events while the holder was alive", len(got))
	}
	if err := a.MarkDelivered(ctx, "hook", all[1], time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var took []string
	for time.Since(start) < 5*time.Second && took == nil {
		took = outboxtest.Pending(t, b, "hook", time.Now())
		time.Sleep(10 * time.Millisecond)
	}
	if !slices.Equal(took, all[2:]) {
		t.Fatalf("after the holder closed: pending = %v, want the rest from the cursor %v", took, all[2:])
	}
	t.Logf("handed over in %v (lease %v)", time.Since(start), lease)
	if !strings.Contains(logs.String(), "handed over") {
		t.Errorf("no log line for the handover:\n%s", logs.String())
	}
}
