package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// treeMem is the memory of a process and all its descendants.
type treeMem struct {
	PssKiB int64 // proportional set size: shared pages split between sharers
	RssKiB int64
	Procs  int
}

// pssTree sums Pss and Rss (from /proc/PID/smaps_rollup) over pid and every
// descendant: vsftpd runs two processes per session below its listener.
func pssTree(pid int) (treeMem, error) {
	children, err := childMap()
	if err != nil {
		return treeMem{}, err
	}
	var m treeMem
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		queue = append(queue, children[p]...)
		pss, rss, err := rollup(p)
		if err != nil {
			if p == pid {
				return treeMem{}, err
			}
			continue // exited meanwhile
		}
		m.PssKiB += pss
		m.RssKiB += rss
		m.Procs++
	}
	return m, nil
}

// childMap maps each pid to its children, from /proc/*/stat.
func childMap() (map[int][]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := make(map[int][]int)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parens.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	return children, nil
}

func rollup(pid int) (pss, rss int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "Pss:"):
			dst = &pss
		case strings.HasPrefix(line, "Rss:"):
			dst = &rss
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			*dst, _ = strconv.ParseInt(fs[1], 10, 64)
		}
	}
	return pss, rss, sc.Err()
}
