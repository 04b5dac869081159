package pgdb

import (
	"context"
	"errors"
	"testing"
	"time"
)

// retryCap is the longest pause TestRetry lets Retry take.
const retryCap = 500 * time.Millisecond

// TestRetry checks the pauses between sessions: doubling from 200ms up
// to maxPause, from 200ms again when failed says the session had worked,
// and no more sessions once ctx ends.
func TestRetry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var starts []time.Time
	reset := map[int]bool{4: true} // the fourth session "had worked"
	done := make(chan struct{})
	go func() {
		defer close(done)
		Retry(ctx, retryCap, func(context.Context) error {
			starts = append(starts, time.Now())
			if len(starts) == 6 {
				cancel()
			}
			return errors.New("down")
		}, func(error) bool { return reset[len(starts)] })
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Retry did not return after ctx ended")
	}
	if len(starts) != 6 {
		t.Fatalf("%d sessions, want 6", len(starts))
	}
	// Pauses after sessions 1..5: 200, 400, 500 (capped), 200 (reset), 400.
	want := []time.Duration{200, 400, 500, 200, 400}
	for i, w := range want {
		got := starts[i+1].Sub(starts[i])
		w *= time.Millisecond
		if got < w || got > w+250*time.Millisecond {
			t.Errorf("pause %d = %v, want %v", i+1, got, w)
		}
	}
}
