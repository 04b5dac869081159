package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is one measurement, written as one JSON line.
type result struct {
	Workload string         `json:"workload"`
	Server   string         `json:"server"`
	Round    int            `json:"round"`
	Metric   string         `json:"metric"`
	Value    float64        `json:"value"`
	Better   string         `json:"better"` // "higher" or "lower"
	Detail   map[string]any `json:"detail,omitempty"`
	Time     time.Time      `json:"time"`
}

const mib = 1 << 20

// sources hands out source addresses in turn, so many connections (and
// their TIME_WAITs) spread over 127.0.0.x instead of exhausting one
// address's ephemeral ports.
type sources struct {
	addrs []*net.TCPAddr
	next  atomic.Uint64
}

// parseSources reads "" (kernel's choice), "127.0.0.1" or a range
// "127.0.0.2-127.0.0.200" (last octet only).
func parseSources(s string) (*sources, error) {
	src := &sources{}
	if s == "" {
		return src, nil
	}
	from, to, isRange := cutByte(s, '-')
	a := net.ParseIP(from).To4()
	if a == nil {
		return nil, fmt.Errorf("source address %q: not an IPv4 address", from)
	}
	last := a[3]
	if isRange {
		b := net.ParseIP(to).To4()
		if b == nil || !bytes.Equal(a[:3], b[:3]) || b[3] < a[3] {
			return nil, fmt.Errorf("source range %q: want a.b.c.x-a.b.c.y with x <= y", s)
		}
		last = b[3]
	}
	for i := int(a[3]); i <= int(last); i++ {
		ip := net.IPv4(a[0], a[1], a[2], byte(i))
		src.addrs = append(src.addrs, &net.TCPAddr{IP: ip})
	}
	return src, nil
}

func cutByte(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// pick returns the next source address, or nil for the kernel's choice.
func (s *sources) pick() *net.TCPAddr {
	if s == nil || len(s.addrs) == 0 {
		return nil
	}
	return s.addrs[int(s.next.Add(1)-1)%len(s.addrs)]
}

// openDevNull is the download sink: splicing into /dev/null costs the
// generator almost nothing.
func openDevNull() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_WRONLY, 0) }

// download fetches name once and reports MiB/s.
func download(t *target, name string, wantSize int64) (result, error) {
	c, err := login(t, nil)
	if err != nil {
		return result{}, err
	}
	defer c.quit()
	sink, err := openDevNull()
	if err != nil {
		return result{}, err
	}
	defer sink.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	n, err := c.retr(name, sink, buf)
	el := time.Since(start)
	if err != nil {
		return result{}, err
	}
	if wantSize > 0 && n != wantSize {
		return result{}, fmt.Errorf("RETR %s: got %d bytes, want %d", name, n, wantSize)
	}
	r := throughput(n, el)
	if t.TLS {
		r.Detail["tls_resumed"] = c.resumed
		r.Detail["tls_cipher"] = c.cipher
	}
	return r, nil
}

func throughput(n int64, el time.Duration) result {
	return result{
		Metric: "MiB/s",
		Value:  float64(n) / mib / el.Seconds(),
		Better: "higher",
		Detail: map[string]any{"bytes": n, "seconds": el.Seconds()},
	}
}

// pattern is an upload source of size bytes cycling through a random
// buffer, written in large chunks.
type pattern struct {
	buf  []byte
	size int64
}

func newPattern(size int64) *pattern {
	b := make([]byte, 1<<20)
	rand.Read(b)
	return &pattern{buf: b, size: size}
}

func (p *pattern) Read(b []byte) (int, error) { // io.Reader for completeness
	if p.size <= 0 {
		return 0, io.EOF
	}
	n := copy(b, p.buf[:min(int64(len(p.buf)), p.size)])
	p.size -= int64(n)
	return n, nil
}

func (p *pattern) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for p.size > 0 {
		chunk := p.buf[:min(int64(len(p.buf)), p.size)]
		n, err := w.Write(chunk)
		total += int64(n)
		p.size -= int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// upload sends size bytes as name, from srcFile with sendfile on a plain
// connection when given, else from memory; then deletes the file (not
// timed) to keep the tmpfs small.
func upload(t *target, name string, size int64, srcFile string, keep bool) (result, error) {
	c, err := login(t, nil)
	if err != nil {
		return result{}, err
	}
	defer c.quit()
	var src io.Reader
	if srcFile != "" && !t.TLS {
		f, err := os.Open(srcFile)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		src = io.LimitReader(f, size)
	} else {
		src = newPattern(size)
	}
	start := time.Now()
	n, err := c.stor(name, src)
	el := time.Since(start)
	if err != nil {
		return result{}, err
	}
	if n != size {
		return result{}, fmt.Errorf("STOR %s: sent %d bytes, want %d", name, n, size)
	}
	r := throughput(n, el)
	if t.TLS {
		r.Detail["tls_resumed"] = c.resumed
		r.Detail["tls_cipher"] = c.cipher
	}
	if !keep {
		if _, err := c.cmd(250, "DELE ", name); err != nil {
			return r, fmt.Errorf("removing the upload: %w", err)
		}
	}
	return r, nil
}

// sessionsPerSecond runs workers that each loop connect, login, EPSV+LIST
// dir, QUIT until d has passed.
func sessionsPerSecond(t *target, src *sources, workers int, d time.Duration, dir string) (result, error) {
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for time.Now().Before(deadline) {
				if err := oneSession(t, src.pick(), dir, buf); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	r := result{
		Metric: "sessions/s",
		Value:  float64(ok.Load()) / el.Seconds(),
		Better: "higher",
		Detail: map[string]any{"sessions": ok.Load(), "failed": failed.Load(), "seconds": el.Seconds(), "workers": workers},
	}
	if e := firstErr.Load(); e != nil {
		r.Detail["first_error"] = e
	}
	if ok.Load() == 0 || failed.Load() > ok.Load()/100 {
		return r, fmt.Errorf("sessions: %d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	return r, nil
}

func oneSession(t *target, src *net.TCPAddr, dir string, buf []byte) error {
	c, err := login(t, src)
	if err != nil {
		return err
	}
	if _, lines, err := c.list("LIST", dir, buf); err != nil {
		c.close()
		return err
	} else if lines == 0 {
		c.close()
		return errors.New("LIST: empty listing")
	}
	return c.quit()
}

// idleSessions logs in n sessions and holds them; the server's memory is
// the PSS of pid and all its descendants, after minus before, per session.
// held, when set, runs while the sessions are open (heap profiles).
func idleSessions(t *target, src *sources, n, concurrency int, pid int, settle time.Duration, held func()) (result, error) {
	var before treeMem
	var err error
	if pid > 0 {
		if before, err = pssTree(pid); err != nil {
			return result{}, err
		}
	}
	conns := make([]*client, n)
	var firstErr atomic.Value
	var failed atomic.Int64
	open := func(from, to int) {
		forEachIndex(from, to, concurrency, func(i int) {
			var c *client
			var err error
			for try := 0; try < 3; try++ {
				if c, err = login(t, src.pick()); err == nil {
					break
				}
				time.Sleep(time.Duration(50*(try+1)) * time.Millisecond)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			conns[i] = c
		})
	}
	start := time.Now()
	// Half the sessions first: the memory added by the second half is the
	// marginal cost of a session, free of one-time costs (the first
	// login's password hashing, runtime start-up).
	half := n / 2
	open(0, half)
	defer closeAll(conns, concurrency)
	var mid treeMem
	if pid > 0 && failed.Load() == 0 && half > 0 {
		time.Sleep(settle)
		if mid, err = pssTree(pid); err != nil {
			return result{}, err
		}
	}
	open(half, n)
	loginTime := time.Since(start)
	if mid.Procs > 0 {
		loginTime -= settle
	}
	if f := failed.Load(); f > 0 {
		return result{}, fmt.Errorf("idle: %d of %d logins failed (first: %v)", f, n, firstErr.Load())
	}
	time.Sleep(settle)
	if held != nil {
		held()
	}
	r := result{
		Metric: "KiB/session",
		Better: "lower",
		Detail: map[string]any{"sessions": n, "login_seconds": loginTime.Seconds()},
	}
	if pid > 0 {
		after, err := pssTree(pid)
		if err != nil {
			return result{}, err
		}
		r.Value = float64(after.PssKiB-before.PssKiB) / float64(n)
		r.Detail["pss_before_kib"] = before.PssKiB
		r.Detail["pss_after_kib"] = after.PssKiB
		r.Detail["rss_after_kib"] = after.RssKiB
		r.Detail["processes_before"] = before.Procs
		r.Detail["processes_after"] = after.Procs
		if half > 0 {
			r.Detail["marginal_kib"] = float64(after.PssKiB-mid.PssKiB) / float64(n-half)
		}
	}
	return r, nil
}

func closeAll(conns []*client, concurrency int) {
	forEachIndex(0, len(conns), concurrency, func(i int) {
		if c := conns[i]; c != nil {
			c.t = &target{Timeout: 5 * time.Second}
			c.quit()
		}
	})
}

// forEachIndex calls fn(i) for every i in [from, to) on workers goroutines,
// each taking the next index, and returns when all are done.
func forEachIndex(from, to, workers int, fn func(i int)) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// listing times one LIST or MLSD of dir.
func listing(t *target, verb, dir string, wantLines int) (result, error) {
	c, err := login(t, nil)
	if err != nil {
		return result{}, err
	}
	defer c.quit()
	buf := make([]byte, 256<<10)
	start := time.Now()
	n, lines, err := c.list(verb, dir, buf)
	el := time.Since(start)
	if err != nil {
		return result{}, err
	}
	if lines < wantLines {
		return result{}, fmt.Errorf("%s %s: %d lines, want at least %d", verb, dir, lines, wantLines)
	}
	return result{
		Metric: "s",
		Value:  el.Seconds(),
		Better: "lower",
		Detail: map[string]any{"bytes": n, "lines": lines},
	}, nil
}

// smallFiles uploads files files of size bytes over parallel sessions into
// a new directory dir, then downloads them all; two results (files/s).
func smallFiles(t *target, dir string, files, size, parallel int) (up, down result, err error) {
	cs := make([]*client, parallel)
	for i := range cs {
		if cs[i], err = login(t, nil); err != nil {
			return up, down, err
		}
		defer cs[i].quit()
	}
	if _, err = cs[0].cmd(257, "MKD ", dir); err != nil {
		return up, down, err
	}
	data := make([]byte, size)
	rand.Read(data)
	sink, err := openDevNull()
	if err != nil {
		return up, down, err
	}
	defer sink.Close()

	phase := func(store bool) (time.Duration, error) {
		errs := make([]error, parallel)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := cs[w]
				rd := bytes.NewReader(nil)
				buf := make([]byte, 64<<10)
				for j := w; j < files; j += parallel {
					name := fmt.Sprintf("%s/f%05d", dir, j)
					if store {
						rd.Reset(data)
						n, err := c.stor(name, onlyReader{rd})
						if err == nil && n != int64(size) {
							err = fmt.Errorf("STOR %s: %d bytes", name, n)
						}
						if err != nil {
							errs[w] = err
							return
						}
					} else {
						n, err := c.retr(name, onlyWriter{io.Discard}, buf)
						if err == nil && n != int64(size) {
							err = fmt.Errorf("RETR %s: %d bytes, want %d", name, n, size)
						}
						if err != nil {
							errs[w] = err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start), errors.Join(errs...)
	}
	mk := func(el time.Duration) result {
		return result{
			Metric: "files/s",
			Value:  float64(files) / el.Seconds(),
			Better: "higher",
			Detail: map[string]any{"files": files, "file_bytes": size, "parallel": parallel, "seconds": el.Seconds()},
		}
	}
	el, err := phase(true)
	if err != nil {
		return up, down, err
	}
	up = mk(el)
	if el, err = phase(false); err != nil {
		return up, down, err
	}
	down = mk(el)
	return up, down, nil
}

// ceiling measures raw loopback TCP throughput: a child process (this
// program, "sendfile-serve") sends path over one connection with blocking
// sendfile(2) in large chunks, the leanest sender there is; the same
// reader as the FTP downloads receives it. Sender and reader are separate
// processes, as they are with a server.
func ceiling(path string) (result, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return result{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(exe, "sendfile-serve", "--file", path)
	cmd.Env = append(os.Environ(), childEnv+"=1") // lets a test binary act as the child
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return result{}, fmt.Errorf("sendfile-serve: %w", err)
	}
	sink, err := openDevNull()
	if err != nil {
		return result{}, err
	}
	defer sink.Close()
	start := time.Now()
	c, err := net.Dial("tcp", strings.TrimSpace(addr))
	if err != nil {
		return result{}, err
	}
	n, err := copyDiscard(sink, c, make([]byte, 256<<10))
	el := time.Since(start)
	c.Close()
	if err != nil {
		return result{}, err
	}
	if n != fi.Size() {
		return result{}, fmt.Errorf("ceiling: read %d bytes of %d", n, fi.Size())
	}
	return throughput(n, el), nil
}

// childEnv marks the ceiling's child process.
const childEnv = "FTPBENCH_CHILD"

// sendfileServe is the ceiling's sender: it prints its address, accepts one
// connection and sends path with blocking sendfile(2).
func sendfileServe(path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintln(stdout, ln.Addr().String())
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	// File() returns a duplicate descriptor in blocking mode.
	cf, err := c.(*net.TCPConn).File()
	if err != nil {
		return err
	}
	defer cf.Close()
	var off int64
	for off < fi.Size() {
		if _, err := syscall.Sendfile(int(cf.Fd()), int(f.Fd()), &off, int(min(fi.Size()-off, 1<<30))); err != nil {
			if err == syscall.EINTR || err == syscall.EAGAIN {
				continue
			}
			return err
		}
	}
	return nil
}

// makeFile writes a file of size bytes (random 1 MiB pattern repeated).
func makeFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := newPattern(size).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// makeFiles creates count files of size bytes in dir (a listing target).
func makeFiles(dir string, count, size int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data := make([]byte, size)
	for i := range count {
		if err := os.WriteFile(fmt.Sprintf("%s/file-%06d.dat", dir, i), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
