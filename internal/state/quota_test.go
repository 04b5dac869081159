package state

import (
	"context"
	"testing"
	"time"
)

// TestUsageRoundTrip writes usage, reads it back after reopening, and
// replaces a row.
func TestUsageRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	if _, ok, err := s.UsageOf(ctx, "alice"); ok || err != nil {
		t.Fatalf("UsageOf before any write = ok %v, %v; want no row", ok, err)
	}
	rows := []Usage{
		{User: "bob", Bytes: 5, Files: 1},
		{User: "alice", Bytes: 10 << 30, Files: 1000, Scanned: t0},
	}
	if err := s.PutUsage(ctx, rows, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, dir)
	u, ok, err := s.UsageOf(ctx, "alice")
	if err != nil || !ok {
		t.Fatalf("UsageOf(alice) = ok %v, %v", ok, err)
	}
	want := Usage{User: "alice", Bytes: 10 << 30, Files: 1000, Scanned: t0, Updated: t0.Add(time.Second)}
	if !u.Scanned.Equal(want.Scanned) || !u.Updated.Equal(want.Updated) || u.Bytes != want.Bytes || u.Files != want.Files || u.Stale {
		t.Errorf("UsageOf(alice) = %+v, want %+v", u, want)
	}
	if err := s.PutUsage(ctx, []Usage{{User: "alice", Bytes: 7, Files: 2}}, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	all, err := s.AllUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].User != "alice" || all[0].Bytes != 7 || all[0].Files != 2 || !all[0].Scanned.IsZero() || all[1].User != "bob" {
		t.Errorf("AllUsage = %+v", all)
	}
}

// TestUsageClaim: a claim that was never released (a crash) makes the
// next claim mark every row stale; a released one leaves them alone.
func TestUsageClaim(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	if rec, err := s.ClaimUsage(ctx, t0); err != nil || rec {
		t.Fatalf("first ClaimUsage = %v, %v; want false", rec, err)
	}
	if err := s.PutUsage(ctx, []Usage{{User: "alice", Bytes: 1, Files: 1}}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseUsage(ctx); err != nil {
		t.Fatal(err)
	}
	if rec, err := s.ClaimUsage(ctx, t0); err != nil || rec {
		t.Fatalf("ClaimUsage after a release = %v, %v; want false", rec, err)
	}
	if u, _, _ := s.UsageOf(ctx, "alice"); u.Stale {
		t.Fatalf("row stale after a clean release: %+v", u)
	}
	// Not released: the holder "crashed".
	if rec, err := s.ClaimUsage(ctx, t0); err != nil || !rec {
		t.Fatalf("ClaimUsage after a crash = %v, %v; want true", rec, err)
	}
	if u, _, _ := s.UsageOf(ctx, "alice"); !u.Stale {
		t.Fatalf("row not stale after a crash: %+v", u)
	}
	// A new figure clears it.
	if err := s.PutUsage(ctx, []Usage{{User: "alice", Bytes: 2, Files: 1}}, t0); err != nil {
		t.Fatal(err)
	}
	if u, _, _ := s.UsageOf(ctx, "alice"); u.Stale || u.Bytes != 2 {
		t.Fatalf("row after a new figure: %+v", u)
	}
}
