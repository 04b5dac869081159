package batch

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBatches: concurrent submits share commits, each sees its commit's
// error, and no batch exceeds maxBatch.
func TestBatches(t *testing.T) {
	var mu sync.Mutex
	var commits, largest, total int
	release := make(chan struct{})
	boom := errors.New("boom")
	b := New(4, func(vs []int) error {
		<-release
		mu.Lock()
		defer mu.Unlock()
		commits++
		total += len(vs)
		largest = max(largest, len(vs))
		for _, v := range vs {
			if v == 13 {
				return boom
			}
		}
		return nil
	})
	defer b.Close()
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Submit(context.Background(), i)
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them queue behind the first commit
	close(release)
	wg.Wait()
	if total != n {
		t.Fatalf("committed %d values, want %d", total, n)
	}
	if largest > 4 {
		t.Errorf("a batch of %d, maxBatch is 4", largest)
	}
	if commits >= n {
		t.Errorf("%d commits for %d submits: nothing was batched", commits, n)
	}
	if !errors.Is(errs[13], boom) {
		t.Errorf("Submit(13) = %v, want boom", errs[13])
	}
	if errs[0] != nil && !errors.Is(errs[0], boom) {
		t.Errorf("Submit(0) = %v", errs[0])
	}
}

func TestContextAndClose(t *testing.T) {
	release := make(chan struct{})
	b := New(8, func([]string) error { <-release; return nil })

	// Handed over, then the caller gives up: it may still be written.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := b.Submit(ctx, "a")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "may still be written") {
		t.Errorf("Submit during a stuck commit = %v", err)
	}
	// Never handed over (the writer is stuck in the commit): the bare
	// context error.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := b.Submit(ctx2, "b"); !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "may still") {
		t.Errorf("Submit with a cancelled context = %v", err)
	}
	close(release)
	b.Close()
	b.Close()
	if err := b.Submit(context.Background(), "c"); !errors.Is(err, ErrClosed) {
		t.Errorf("Submit after Close = %v, want ErrClosed", err)
	}
}
