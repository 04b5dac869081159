package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
)

// runProfile runs one workload against cloudftpd started inside this
// process, with a CPU profile around the workload and a heap profile at its
// end (for idle: while the sessions are held). The CPU profile holds the
// generator's work too; the server's is under internal/... and crypto/tls
// server-side functions.
func runProfile(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: ftpbench profile WORKLOAD [run flags] [--root DIR] [--cpuprofile F] [--memprofile F]")
		return 2
	}
	workload := args[0]
	w := newWorkloadFlags("profile "+workload, stderr)
	root := w.fs.String("root", os.TempDir(), "directory for the server's files (use a tmpfs)")
	cpuFile := w.fs.String("cpuprofile", "cpu.pprof", "CPU profile to write")
	memFile := w.fs.String("memprofile", "heap.pprof", "heap profile to write")
	if err := w.fs.Parse(args[1:]); err != nil {
		return 2
	}
	if workload == "idle" {
		runtime.MemProfileRate = 1 // every allocation: exact bytes per session
	}
	dir, err := os.MkdirTemp(*root, "ftpbench-profile-")
	if err != nil {
		fmt.Fprintln(stderr, "ftpbench profile:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := startInproc(dir, "")
	if err != nil {
		fmt.Fprintln(stderr, "ftpbench profile:", err)
		return 1
	}
	defer srv.close()
	if err := prepareHome(srv.Home, workload, w); err != nil {
		fmt.Fprintln(stderr, "ftpbench profile:", err)
		return 1
	}
	t := srv.target(w.tls)
	w.addr, w.user, w.pass, w.server, w.pid = t.Addr, t.User, t.Pass, "cloudftpd-inproc", 0

	writeHeap := func() {
		runtime.GC()
		f, err := os.Create(*memFile)
		if err != nil {
			fmt.Fprintln(stderr, "ftpbench profile:", err)
			return
		}
		defer f.Close()
		pprof.Lookup("heap").WriteTo(f, 0)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(stdout, "memstats: goroutines=%d heap_inuse=%d KiB stack_inuse=%d KiB sys=%d KiB\n",
			runtime.NumGoroutine(), ms.HeapInuse>>10, ms.StackInuse>>10, ms.Sys>>10)
	}
	var held func()
	var before runtime.MemStats
	if workload == "idle" {
		runtime.GC()
		runtime.ReadMemStats(&before)
		fdsBefore := countFDs()
		held = func() {
			fmt.Fprintf(stdout, "file descriptors per session (server and generator together): %.2f\n",
				float64(countFDs()-fdsBefore)/float64(w.sessions))
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			n := uint64(w.sessions)
			fmt.Fprintf(stdout, "per session (server and generator together): heap_inuse %.1f KiB, stack_inuse %.1f KiB, goroutines %.2f\n",
				float64(ms.HeapInuse-before.HeapInuse)/1024/float64(n),
				float64(ms.StackInuse-before.StackInuse)/1024/float64(n),
				float64(runtime.NumGoroutine())/float64(n))
			writeHeap()
		}
	}
	cf, err := os.Create(*cpuFile)
	if err != nil {
		fmt.Fprintln(stderr, "ftpbench profile:", err)
		return 1
	}
	defer cf.Close()
	if err := pprof.StartCPUProfile(cf); err != nil {
		fmt.Fprintln(stderr, "ftpbench profile:", err)
		return 1
	}
	rs, err := w.measure(workload, held)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(stderr, "ftpbench profile:", err)
		return 1
	}
	if held == nil {
		writeHeap()
	}
	fmt.Fprintf(stdout, "profiles: %s %s (go tool pprof -top %s)\n", *cpuFile, *memFile, *cpuFile)
	return emit(rs, w.server, w.round, w.out, stdout, stderr)
}

// prepareHome creates what a workload reads.
func prepareHome(home, workload string, w *workloadFlags) error {
	switch workload {
	case "download":
		if w.size <= 0 {
			return fmt.Errorf("download needs --size")
		}
		return makeFile(filepath.Join(home, w.file), w.size)
	case "list":
		if w.dir == "" {
			w.dir = "many"
		}
		return makeFiles(filepath.Join(home, w.dir), max(w.lines, 1), 100)
	case "sessions":
		if w.dir == "" {
			w.dir = "small"
		}
		return makeFiles(filepath.Join(home, w.dir), 10, 100)
	}
	return nil
}

// countFDs is the number of open file descriptors of this process.
func countFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}
