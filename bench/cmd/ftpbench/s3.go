package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// s3Transfer is the S3 workload, run against a cloudftpd whose storage is
// an S3 bucket: it uploads size bytes as name while watching the server
// process pid's memory, downloads the object back, and deletes it (not
// timed). Three results: "s3-upload" and "s3-download" throughput, and
// "s3-upload-rss", the server's peak RSS during the upload in MiB.
func s3Transfer(t *target, name string, size int64, srcFile string, pid int) ([]result, error) {
	if pid <= 0 {
		return nil, errors.New("s3 needs --pid, the cloudftpd process whose memory is measured")
	}
	w, err := watchRSS(pid, 20*time.Millisecond)
	if err != nil {
		return nil, err
	}
	up, err := upload(t, name, size, srcFile, true)
	mem := w.stop()
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	up.Workload = "s3-upload"
	mem.Workload = "s3-upload-rss"
	down, err := download(t, name, size)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	down.Workload = "s3-download"
	if err := remove(t, name); err != nil {
		return nil, err
	}
	return []result{up, down, mem}, nil
}

// remove deletes name in a session of its own.
func remove(t *target, name string) error {
	c, err := login(t, nil)
	if err != nil {
		return err
	}
	defer c.quit()
	if _, err := c.cmd(250, "DELE ", name); err != nil {
		return fmt.Errorf("removing %s: %w", name, err)
	}
	return nil
}

// rssWatch follows a process's resident memory during a measurement.
//
// The peak comes from the kernel's VmHWM ("high water mark" of VmRSS in
// /proc/PID/status), reset just before the measurement by writing 5 to
// /proc/PID/clear_refs (Linux 4.0+), so that it covers the measurement
// only. When the reset is not allowed (another user's process), the peak
// is the largest VmRSS seen by sampling every interval instead, which can
// miss short spikes; the result says which.
type rssWatch struct {
	pid    int
	reset  bool
	before int64 // VmRSS at the start, KiB
	stopc  chan struct{}
	done   sync.WaitGroup

	mu      sync.Mutex
	sampled int64 // largest VmRSS sampled, KiB
}

func watchRSS(pid int, every time.Duration) (*rssWatch, error) {
	w := &rssWatch{pid: pid, stopc: make(chan struct{})}
	w.reset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	st, err := procStatus(pid)
	if err != nil {
		return nil, err
	}
	w.before, w.sampled = st["VmRSS"], st["VmRSS"]
	w.done.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-w.stopc:
				return
			case <-tick.C:
			}
			if st, err := procStatus(pid); err == nil {
				w.mu.Lock()
				w.sampled = max(w.sampled, st["VmRSS"])
				w.mu.Unlock()
			}
		}
	})
	return w, nil
}

// stop ends the sampling and returns the peak as a result (MiB, lower is
// better).
func (w *rssWatch) stop() result {
	close(w.stopc)
	w.done.Wait()
	r := result{
		Metric: "peak RSS (MiB)",
		Better: "lower",
		Detail: map[string]any{"rss_before_kib": w.before, "sampled_max_kib": w.sampled},
	}
	peak, source := w.sampled, "VmRSS sampled every 20 ms (VmHWM could not be reset)"
	if st, err := procStatus(w.pid); err == nil {
		r.Detail["vmhwm_kib"] = st["VmHWM"]
		if w.reset {
			peak, source = st["VmHWM"], "VmHWM reset before the upload"
		}
	}
	r.Detail["source"] = source
	r.Value = float64(peak) / 1024
	return r
}

// procStatus reads the "kB" fields of /proc/PID/status (VmRSS, VmHWM, ...)
// in KiB.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		v, isKB := bytes.CutSuffix(bytes.TrimSpace(v), []byte(" kB"))
		if !isKB {
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err == nil {
			m[string(k)] = n
		}
	}
	return m, sc.Err()
}

// runMkbucket creates a bucket on an S3-compatible server (compare.sh's
// versitygw), with credentials from the standard AWS chain (environment
// variables). An existing bucket is fine.
func runMkbucket(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkbucket", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "server URL, e.g. http://127.0.0.1:7070")
	bucket := fs.String("bucket", "", "bucket to create")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *endpoint == "" || *bucket == "" {
		fmt.Fprintln(stderr, "usage: ftpbench mkbucket --endpoint URL --bucket NAME")
		return 2
	}
	if err := mkbucket(context.Background(), *endpoint, *bucket); err != nil {
		fmt.Fprintln(stderr, "ftpbench mkbucket:", err)
		return 1
	}
	return 0
}

func mkbucket(ctx context.Context, endpoint, bucket string) error {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"))
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
	_, err = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
	// A bucket left by the previous round (the gateway restarted on the
	// same directory). Single-account versitygw owns every bucket.
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "BucketAlreadyOwnedByYou" || ae.ErrorCode() == "BucketAlreadyExists") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create bucket %s at %s: %w", bucket, endpoint, err)
	}
	return nil
}
