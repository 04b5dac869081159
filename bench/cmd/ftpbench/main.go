// Command ftpbench is cloudftpd's load generator and report writer. It
// speaks FTP/FTPS itself over raw connections (replies parsed only as far as
// the code, buffers reused, downloads spliced into /dev/null, uploads sent
// with sendfile) so that on a small machine the server, not the generator,
// is what gets measured.
//
//	ftpbench run WORKLOAD [flags]   measure one workload against one server
//	ftpbench ceiling --file F       raw loopback sendfile throughput
//	ftpbench mkfile --path P --size N / mkfiles --dir D --count N
//	ftpbench mkbucket --endpoint URL --bucket B   create an S3 bucket
//	ftpbench machine                describe this machine (JSON)
//	ftpbench render                 results -> docs/BENCHMARKS.md + SVG chart
//	ftpbench profile WORKLOAD       run a workload against an in-process
//	                                cloudftpd with CPU and heap profiles
//
// Workloads: download, upload, sessions, idle, list, smallfiles, s3. Results
// are JSON lines (one per measurement) appended to --out. bench/compare.sh
// drives it against cloudftpd and vsftpd in alternation.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: ftpbench run|ceiling|mkfile|mkfiles|mkbucket|machine|render|profile ... (see bench/README.md)")
		return 2
	}
	switch args[0] {
	case "run":
		return runWorkload(args[1:], stdout, stderr, nil)
	case "profile":
		return runProfile(args[1:], stdout, stderr)
	case "ceiling":
		return runCeiling(args[1:], stdout, stderr)
	case "sendfile-serve": // the ceiling's child process
		fs := flag.NewFlagSet("sendfile-serve", flag.ContinueOnError)
		file := fs.String("file", "", "file to send")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := sendfileServe(*file, stdout); err != nil {
			fmt.Fprintln(stderr, "ftpbench sendfile-serve:", err)
			return 1
		}
		return 0
	case "mkfile", "mkfiles":
		return runMake(args[0], args[1:], stderr)
	case "mkbucket":
		return runMkbucket(args[1:], stderr)
	case "machine":
		return runMachine(args[1:], stdout, stderr)
	case "render":
		return runRender(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "ftpbench: unknown command %q\n", args[0])
	return 2
}

// workloadFlags are the flags of `run` and `profile`.
type workloadFlags struct {
	fs                   *flag.FlagSet
	addr, user, pass     string
	tls                  bool
	serverName           string
	server, name, out    string
	round                int
	timeout              time.Duration
	file, srcFile, dir   string
	size                 int64
	keep                 bool
	workers, sessions    int
	concurrency          int
	duration, settle     time.Duration
	src                  string
	pid                  int
	verb                 string
	lines                int
	files, fileSize, par int
}

func newWorkloadFlags(name string, stderr io.Writer) *workloadFlags {
	w := &workloadFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs := w.fs
	fs.SetOutput(stderr)
	fs.StringVar(&w.addr, "addr", "127.0.0.1:2121", "server control address")
	fs.StringVar(&w.user, "user", "bench", "user name")
	fs.StringVar(&w.pass, "pass", "", "password")
	fs.BoolVar(&w.tls, "tls", false, "explicit FTPS: AUTH TLS, PROT P, TLS 1.3, resumed data sessions")
	fs.StringVar(&w.serverName, "servername", "localhost", "TLS server name (SNI and session-cache key)")
	fs.StringVar(&w.server, "server", "cloudftpd", "server label for the results")
	fs.StringVar(&w.name, "name", "", "workload label for the results (default: derived)")
	fs.StringVar(&w.out, "out", "", "append the result as a JSON line to this file")
	fs.IntVar(&w.round, "round", 1, "round number for the results")
	fs.DurationVar(&w.timeout, "timeout", 60*time.Second, "limit on every single wait for the server")
	fs.StringVar(&w.file, "file", "big.bin", "download: remote file")
	fs.Int64Var(&w.size, "size", 0, "download: expected size; upload, s3: bytes to send")
	fs.StringVar(&w.srcFile, "src-file", "", "upload, s3: local file to send with sendfile (plain FTP); default: a pattern from memory")
	fs.BoolVar(&w.keep, "keep", false, "upload: keep the uploaded file")
	fs.StringVar(&w.dir, "dir", "", "sessions/list: directory to list; smallfiles: directory to create")
	fs.IntVar(&w.workers, "workers", 8, "sessions: parallel workers")
	fs.DurationVar(&w.duration, "duration", 10*time.Second, "sessions: how long to run")
	fs.IntVar(&w.sessions, "sessions", 1000, "idle: sessions to hold")
	fs.IntVar(&w.concurrency, "concurrency", 16, "idle: logins in flight")
	fs.DurationVar(&w.settle, "settle", 2*time.Second, "idle: wait after the last login before measuring")
	fs.IntVar(&w.pid, "pid", 0, "idle: server process whose tree's PSS is measured; s3: server process whose peak RSS is measured")
	fs.StringVar(&w.src, "src", "", "sessions/idle: source addresses, e.g. 127.0.0.2-127.0.0.200")
	fs.StringVar(&w.verb, "verb", "LIST", "list: LIST or MLSD")
	fs.IntVar(&w.lines, "lines", 1, "list: minimum lines expected")
	fs.IntVar(&w.files, "files", 2000, "smallfiles: number of files")
	fs.IntVar(&w.fileSize, "file-size", 4096, "smallfiles: bytes per file")
	fs.IntVar(&w.par, "parallel", 4, "smallfiles: parallel sessions")
	return w
}

func (w *workloadFlags) target() *target {
	return &target{Addr: w.addr, User: w.user, Pass: w.pass, TLS: w.tls, ServerName: w.serverName, Timeout: w.timeout}
}

// measure runs one workload; held is passed to idle (profiles).
func (w *workloadFlags) measure(workload string, held func()) ([]result, error) {
	t := w.target()
	prefix := ""
	if w.tls {
		prefix = "ftps-"
	}
	label := func(def string) string {
		if w.name != "" {
			return w.name
		}
		return def
	}
	var rs []result
	var r result
	var err error
	switch workload {
	case "download":
		r, err = download(t, w.file, w.size)
		r.Workload = label(prefix + "download")
	case "upload":
		if w.size <= 0 {
			return nil, fmt.Errorf("upload needs --size")
		}
		name := fmt.Sprintf("upload-%s-%d-%d.bin", w.server, w.round, time.Now().UnixNano())
		r, err = upload(t, name, w.size, w.srcFile, w.keep)
		r.Workload = label(prefix + "upload")
	case "sessions":
		src, perr := parseSources(w.src)
		if perr != nil {
			return nil, perr
		}
		r, err = sessionsPerSecond(t, src, w.workers, w.duration, w.dir)
		r.Workload = label(prefix + "sessions")
	case "idle":
		src, perr := parseSources(w.src)
		if perr != nil {
			return nil, perr
		}
		r, err = idleSessions(t, src, w.sessions, w.concurrency, w.pid, w.settle, held)
		r.Workload = label(fmt.Sprintf("idle-%d", w.sessions))
	case "list":
		verb := strings.ToUpper(w.verb)
		r, err = listing(t, verb, w.dir, w.lines)
		r.Workload = label(strings.ToLower(verb))
	case "smallfiles":
		dir := w.dir
		if dir == "" {
			dir = fmt.Sprintf("small-%s-%d-%d", w.server, w.round, time.Now().UnixNano())
		}
		up, down, serr := smallFiles(t, dir, w.files, w.fileSize, w.par)
		if serr != nil {
			return nil, serr
		}
		up.Workload, down.Workload = prefix+"smallfiles-up", prefix+"smallfiles-down"
		rs = append(rs, up, down)
	case "s3":
		if w.size <= 0 {
			return nil, fmt.Errorf("s3 needs --size")
		}
		name := fmt.Sprintf("s3-%s-%d-%d.bin", w.server, w.round, time.Now().UnixNano())
		if rs, err = s3Transfer(t, name, w.size, w.srcFile, w.pid); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown workload %q (want download, upload, sessions, idle, list, smallfiles, s3)", workload)
	}
	if err != nil {
		return nil, err
	}
	if rs == nil {
		rs = []result{r}
	}
	return rs, nil
}

func runWorkload(args []string, stdout, stderr io.Writer, held func()) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: ftpbench run WORKLOAD [flags]")
		return 2
	}
	w := newWorkloadFlags("run "+args[0], stderr)
	if err := w.fs.Parse(args[1:]); err != nil {
		return 2
	}
	rs, err := w.measure(args[0], held)
	if err != nil {
		fmt.Fprintf(stderr, "ftpbench: %s against %s (%s): %v\n", args[0], w.server, w.addr, err)
		return 1
	}
	return emit(rs, w.server, w.round, w.out, stdout, stderr)
}

// emit stamps, prints and appends results.
func emit(rs []result, server string, round int, out string, stdout, stderr io.Writer) int {
	var f *os.File
	if out != "" {
		var err error
		if f, err = os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			fmt.Fprintln(stderr, "ftpbench:", err)
			return 1
		}
		defer f.Close()
	}
	for _, r := range rs {
		r.Server, r.Round, r.Time = server, round, time.Now().UTC()
		b, err := json.Marshal(r)
		if err != nil {
			fmt.Fprintln(stderr, "ftpbench:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%-18s %-10s round %d: %10.2f %s\n", r.Workload, r.Server, r.Round, r.Value, r.Metric)
		if f != nil {
			if _, err := f.Write(append(b, '\n')); err != nil {
				fmt.Fprintln(stderr, "ftpbench:", err)
				return 1
			}
		}
	}
	return 0
}

func runCeiling(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "file to send (on tmpfs)")
	out := fs.String("out", "", "append the result as a JSON line to this file")
	round := fs.Int("round", 1, "round number")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "ftpbench ceiling: --file is required")
		return 2
	}
	r, err := ceiling(*file)
	if err != nil {
		fmt.Fprintln(stderr, "ftpbench ceiling:", err)
		return 1
	}
	r.Workload = "download"
	return emit([]result{r}, "ceiling", *round, *out, stdout, stderr)
}

func runMake(cmd string, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("path", "", "mkfile: file to write")
	dir := fs.String("dir", "", "mkfiles: directory to fill")
	size := fs.Int64("size", 0, "bytes per file")
	count := fs.Int("count", 0, "mkfiles: number of files")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	switch {
	case cmd == "mkfile" && *path != "":
		err = makeFile(*path, *size)
	case cmd == "mkfiles" && *dir != "" && *count > 0:
		err = makeFiles(*dir, *count, int(*size))
	default:
		fmt.Fprintln(stderr, "usage: ftpbench mkfile --path P --size N | mkfiles --dir D --count N [--size N]")
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "ftpbench %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
