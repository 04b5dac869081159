package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// runMachine prints a JSON object describing this machine, plus any
// --set key=value pairs (versions, commands) the caller adds.
func runMachine(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("machine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sets stringList
	fs.Var(&sets, "set", "extra key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	m := machineInfo()
	for _, kv := range sets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(stderr, "ftpbench machine: --set %q: want key=value\n", kv)
			return 2
		}
		m[k] = v
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return 0
}

// stringList collects repeated string flags.
type stringList []string

func (h *stringList) String() string     { return strings.Join(*h, ",") }
func (h *stringList) Set(v string) error { *h = append(*h, v); return nil }

func machineInfo() map[string]string {
	m := map[string]string{
		"cores":      fmt.Sprint(runtime.NumCPU()),
		"go":         runtime.Version(),
		"date":       time.Now().UTC().Format("2006-01-02 15:04 MST"),
		"cpu":        "unknown",
		"kernel":     "unknown",
		"os":         "unknown",
		"memory_gib": "unknown",
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			m["memory_gib"] = fmt.Sprintf("%.1f", float64(kib)/(1<<20))
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m["kernel"] = cString(u.Sysname[:]) + " " + cString(u.Release[:]) + " " + cString(u.Machine[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PRETTY_NAME="); ok {
				m["os"] = strings.Trim(v, `"`)
			}
		}
	}
	return m
}

func cString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// stat is the summary of one workload on one server over the rounds.
type stat struct {
	median, min, max float64
	n                int
	metric, better   string
}

func summarize(rs []result) map[[2]string]*stat {
	vals := make(map[[2]string][]float64)
	meta := make(map[[2]string]result)
	for _, r := range rs {
		k := [2]string{r.Workload, r.Server}
		vals[k] = append(vals[k], r.Value)
		meta[k] = r
	}
	out := make(map[[2]string]*stat)
	for k, v := range vals {
		slices.Sort(v)
		med := v[len(v)/2]
		if len(v)%2 == 0 {
			med = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		out[k] = &stat{median: med, min: v[0], max: v[len(v)-1], n: len(v), metric: meta[k].Metric, better: meta[k].Better}
	}
	return out
}

// peer is another server of the comparison: one column of the report.
type peer struct{ server, label string }

// peers are the other servers, in the order of the report's columns.
// Results of a variant ("vsftpd-sha512") go in the column of the server
// whose name prefixes it.
var peers = []peer{{"vsftpd", "vsftpd"}, {"pureftpd", "Pure-FTPd"}, {"sftpgo", "SFTPGo"}}

// ref is one result that cloudftpd's is compared with: a server's (or the
// ceiling's) median of a workload.
type ref struct{ server, workload string }

// row is one line of the report: cloudftpd's workload against the best of
// its references (by default every peer's result of the same workload),
// or against an absolute bound only.
type row struct {
	title    string
	workload string // cloudftpd's
	// refs are the results to compare with; the best measured one is the
	// reference. nil means every peer on the same workload; noRefs means
	// an absolute bound only (absMax).
	refs      []ref
	noRefs    bool
	refLabel  string // how the report names a single reference (default: the server)
	target    float64
	targetTxt string
	// absMax, when > 0, is an absolute bound on cloudftpd's median too.
	absMax float64
}

// peerRefs is every peer on workload w.
func peerRefs(w string) []ref {
	rs := make([]ref, len(peers))
	for i, p := range peers {
		rs[i] = ref{p.server, w}
	}
	return rs
}

func (r row) references() []ref {
	switch {
	case r.noRefs:
		return nil
	case r.refs == nil:
		return peerRefs(r.workload)
	}
	return r.refs
}

func reportRows(meta map[string]string) []row {
	g := func(k, def string) string {
		if v := meta[k]; v != "" {
			return v
		}
		return def
	}
	big, list := g("big", "2 GiB"), g("list_files", "100,000")
	sha := []ref{{"vsftpd-sha512", "sessions"}, {"pureftpd-sha512", "sessions"}}
	mlsd := []ref{{"vsftpd", "list"}, {"pureftpd", "mlsd"}, {"sftpgo", "mlsd"}}
	// Targets are issue 17's (ratio to the best other server); where it
	// sets none (listings), the earlier target stands, now against the best.
	return []row{
		{title: "Download " + big + " (FTP, tmpfs)", workload: "download", target: 1.0, targetTxt: "≥ 1.0x the best"},
		{title: "Download " + big + " vs raw sendfile ceiling", workload: "download", refs: []ref{{"ceiling", "download"}}, refLabel: "raw sendfile", target: 0.9, targetTxt: "≥ 0.9x ceiling"},
		{title: "Upload " + big + " (FTP, tmpfs)", workload: "upload", target: 1.2, targetTxt: "≥ 1.2x"},
		{title: "Download " + big + " (FTPS, PROT P, TLS 1.3)", workload: "ftps-download", target: 1.2, targetTxt: "≥ 1.2x"},
		{title: "Upload " + big + " (FTPS, PROT P, TLS 1.3)", workload: "ftps-upload", target: 1.2, targetTxt: "≥ 1.2x"},
		{title: "Sessions/s (" + g("workers", "8") + " workers: login, EPSV+LIST, QUIT)", workload: "sessions", target: 1.5, targetTxt: "≥ 1.5x"},
		{title: "Sessions/s, peers' accounts with SHA-512 crypt", workload: "sessions", refs: sha},
		{title: "Memory per idle session, " + g("idle_small", "1000") + " sessions", workload: "idle-" + g("idle_small", "1000")},
		{title: "Memory per idle session, " + g("idle_large", "10000") + " sessions", workload: "idle-" + g("idle_large", "10000"), targetTxt: "≤ 8 KiB", absMax: 8},
		{title: "LIST of " + list + " files", workload: "list", target: 0.5, targetTxt: "≤ 0.5x the best"},
		{title: "MLSD of " + list + " files (vsftpd: LIST)", workload: "mlsd", refs: mlsd, target: 0.5, targetTxt: "≤ 0.5x the best"},
		{title: g("small_files", "2,000") + " × " + g("small_size", "4 KiB") + " uploads, 4 sessions", workload: "smallfiles-up", target: 1.2, targetTxt: "≥ 1.2x"},
		{title: g("small_files", "2,000") + " × " + g("small_size", "4 KiB") + " downloads, 4 sessions", workload: "smallfiles-down", target: 1.2, targetTxt: "≥ 1.2x"},
		// S3: against SFTPGo's S3 backend (the only peer with one), and
		// against cloudftpd on local disk in the same run: the ratio then
		// is the cost of going through S3 (HTTP, the gateway's disk writes).
		{title: "S3 backend: upload " + big + " (versitygw on tmpfs)", workload: "s3-upload", refs: []ref{{"sftpgo", "s3-upload"}}, target: 1.2, targetTxt: "≥ 1.2x SFTPGo"},
		{title: "S3 backend: download " + big + " (versitygw on tmpfs)", workload: "s3-download", refs: []ref{{"sftpgo", "s3-download"}}, target: 1.2, targetTxt: "≥ 1.2x SFTPGo"},
		{title: "S3 backend: upload " + big + " vs local disk", workload: "s3-upload", refs: []ref{{"cloudftpd", "upload"}}, refLabel: "cloudftpd, local disk"},
		{title: "S3 backend: download " + big + " vs local disk", workload: "s3-download", refs: []ref{{"cloudftpd", "download"}}, refLabel: "cloudftpd, local disk"},
		{title: "S3 backend: peak RSS uploading " + big, workload: "s3-upload-rss", refs: []ref{{"sftpgo", "s3-upload-rss"}}, targetTxt: "≤ 150 MiB", absMax: 150},
	}
}

// verdict compares cloudftpd with the best reference; advantage is how
// many times better cloudftpd is (ratio for "higher", 1/ratio for "lower").
type verdict struct {
	c, ref        *stat
	best          ref // the reference that was best, when measured
	ratio         float64
	advantage     float64
	targetAdv     float64
	met, measured bool
}

// better reports whether a is better than b for the metric's direction.
func better(a, b *stat) bool {
	if a.better == "lower" {
		return a.median < b.median
	}
	return a.median > b.median
}

func judge(r row, sum map[[2]string]*stat) verdict {
	var v verdict
	v.c = sum[[2]string{r.workload, "cloudftpd"}]
	refs := r.references()
	if len(refs) == 0 {
		v.measured = v.c != nil && v.c.median > 0
		v.met = v.measured && v.c.median <= r.absMax
		return v
	}
	for _, rf := range refs {
		s := sum[[2]string{rf.workload, rf.server}]
		if s == nil || s.median == 0 {
			continue
		}
		if v.ref == nil || better(s, v.ref) {
			v.ref, v.best = s, rf
		}
	}
	if v.c == nil || v.ref == nil || v.c.median == 0 {
		return v
	}
	v.measured = true
	v.ratio = v.c.median / v.ref.median
	if v.c.better == "lower" {
		v.advantage = 1 / v.ratio
		if r.target > 0 {
			v.targetAdv = 1 / r.target
		}
		v.met = r.target == 0 || v.ratio <= r.target
	} else {
		v.advantage = v.ratio
		v.targetAdv = r.target
		v.met = r.target == 0 || v.ratio >= r.target
	}
	if r.absMax > 0 && v.c.median > r.absMax {
		v.met = false
	}
	return v
}

// serverLabel names a result's server in the report.
func serverLabel(server string) string {
	for _, p := range peers {
		if server == p.server {
			return p.label
		}
		if v, ok := strings.CutPrefix(server, p.server+"-"); ok {
			return p.label + " (" + v + ")"
		}
	}
	if server == "ceiling" {
		return "raw sendfile"
	}
	return server
}

// peerCell is what the column of peer p shows for row r: its reference
// result, if the row has one for that server (or a variant of it).
func peerCell(r row, p peer, sum map[[2]string]*stat) string {
	if r.refs != nil || r.noRefs {
		for _, rf := range r.references() {
			if rf.server == p.server || strings.HasPrefix(rf.server, p.server+"-") {
				return fmtStat(sum[[2]string{rf.workload, rf.server}])
			}
		}
		return "–"
	}
	return fmtStat(sum[[2]string{r.workload, p.server}])
}

func runRender(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	resFile := fs.String("results", "", "results (JSON lines)")
	metaFile := fs.String("meta", "", "machine and run description (JSON from `ftpbench machine`)")
	mdFile := fs.String("md", "docs/BENCHMARKS.md", "Markdown report to write")
	svgFile := fs.String("svg", "docs/benchmarks.svg", "SVG chart to write (linked from the report)")
	notesFile := fs.String("notes", "", "Markdown appended as the analysis section (optional)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rs, err := readResults(*resFile)
	if err != nil {
		fmt.Fprintln(stderr, "ftpbench render:", err)
		return 1
	}
	meta := map[string]string{}
	if *metaFile != "" {
		b, err := os.ReadFile(*metaFile)
		if err == nil {
			err = json.Unmarshal(b, &meta)
		}
		if err != nil {
			fmt.Fprintln(stderr, "ftpbench render:", err)
			return 1
		}
	}
	var notes []byte
	if *notesFile != "" {
		if notes, err = os.ReadFile(*notesFile); err != nil {
			fmt.Fprintln(stderr, "ftpbench render:", err)
			return 1
		}
	}
	rows := reportRows(meta)
	sum := summarize(rs)
	svgRel, err := filepath.Rel(filepath.Dir(*mdFile), *svgFile)
	if err != nil {
		svgRel = *svgFile
	}
	if err := os.WriteFile(*svgFile, []byte(chart(rows, sum)), 0o644); err != nil {
		fmt.Fprintln(stderr, "ftpbench render:", err)
		return 1
	}
	md := report(rows, sum, rs, meta, filepath.ToSlash(svgRel), string(notes))
	if err := os.WriteFile(*mdFile, []byte(md), 0o644); err != nil {
		fmt.Fprintln(stderr, "ftpbench render:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", *mdFile, *svgFile)
	return 0
}

func readResults(path string) ([]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rs []result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

func fmtVal(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func fmtStat(s *stat) string {
	if s == nil {
		return "–"
	}
	if s.n == 1 {
		return fmtVal(s.median)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtVal(s.median), fmtVal(s.min), fmtVal(s.max))
}

func report(rows []row, sum map[[2]string]*stat, rs []result, meta map[string]string, svg, notes string) string {
	var b strings.Builder
	g := func(k string) string {
		if v := meta[k]; v != "" {
			return v
		}
		return "unknown"
	}
	b.WriteString("# Benchmarks: cloudftpd vs vsftpd, Pure-FTPd and SFTPGo\n\n")
	b.WriteString("<!-- Generated by `go run ./bench/cmd/ftpbench render` from bench/results/; do not edit by hand. -->\n\n")
	fmt.Fprintf(&b, "Measured %s on the same machine, in the same run, against vsftpd %s, Pure-FTPd %s and SFTPGo %s:\n", g("date"), g("vsftpd"), g("pureftpd"), g("sftpgo"))
	fmt.Fprintf(&b, "every workload ran against cloudftpd and each other server in turn (A B C D A B C D ...), %s rounds;\n", g("rounds"))
	fmt.Fprintf(&b, "within a round the transfers, listings and small files ran %s times (still in turn), sessions/s and idle memory once.\n", g("reps"))
	b.WriteString("The table shows the median and, in brackets, the min–max over all samples. The ratio is cloudftpd's median over\n")
	b.WriteString("the best other server's median in the same run (the best of the columns to its left, or the named reference);\n")
	b.WriteString("for \"lower is better\" metrics (time, memory) a ratio below 1 favours cloudftpd.\n\n")
	if n := meta["peer_note"]; n != "" {
		fmt.Fprintf(&b, "**Servers:** %s\n\n", strings.TrimSpace(n))
	}

	b.WriteString("## Machine\n\n")
	fmt.Fprintf(&b, "| | |\n| --- | --- |\n| CPU | %s |\n| cores | %s |\n| memory | %s GiB |\n| kernel | %s |\n| OS | %s |\n| Go | %s |\n| cloudftpd | %s |\n| vsftpd | %s |\n| Pure-FTPd | %s |\n| SFTPGo | %s |\n\n",
		g("cpu"), g("cores"), g("memory_gib"), g("kernel"), g("os"), g("go"), g("cloudftpd"), g("vsftpd"), g("pureftpd"), g("sftpgo"))
	if n := meta["load"]; n != "" {
		fmt.Fprintf(&b, "**Other load:** %s.\n\n", n)
	}
	if n := meta["idle_note"]; n != "" {
		fmt.Fprintf(&b, "**Idle sessions:** %s.\n\n", n)
	}
	if n := meta["interference"]; n != "" {
		fmt.Fprintf(&b, "**Noise:** %s\n\n", n)
	}

	b.WriteString("## Results\n\n")
	fmt.Fprintf(&b, "![cloudftpd's advantage over the best other server per workload, against the targets](%s)\n\n", svg)
	b.WriteString("| workload | metric | cloudftpd |")
	for _, p := range peers {
		b.WriteString(" " + p.label + " |")
	}
	b.WriteString(" best other | ratio | target | met |\n|")
	for range 7 + len(peers) {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range rows {
		v := judge(r, sum)
		metric := "–"
		if v.c != nil {
			metric = v.c.metric
			if v.c.better == "lower" {
				metric += ", lower is better"
			}
		}
		ratio, met := "–", "not measured"
		if v.measured {
			if len(r.references()) > 0 {
				ratio = fmtRatio(v.ratio, r.target)
			}
			switch {
			case r.targetTxt == "":
				met = "(no target)"
			case v.met:
				met = "**yes**"
			default:
				met = "**NO**"
			}
		}
		target := r.targetTxt
		if target == "" {
			target = "–"
		}
		best := "–"
		if v.ref != nil {
			name := serverLabel(v.best.server)
			if r.refLabel != "" {
				name = r.refLabel
			}
			best = name + ": " + fmtVal(v.ref.median)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |", r.title, metric, fmtStat(v.c))
		for _, p := range peers {
			fmt.Fprintf(&b, " %s |", peerCell(r, p, sum))
		}
		fmt.Fprintf(&b, " %s | %s | %s | %s |\n", best, ratio, target, met)
	}
	b.WriteString("\n")

	// Per-run details that matter for reading the numbers.
	b.WriteString("### Details\n\n")
	servers := []string{"cloudftpd"}
	for _, p := range peers {
		servers = append(servers, p.server, p.server+"-sha512")
	}
	for _, k := range []string{"sessions", "idle-" + g("idle_large"), "idle-" + g("idle_small"), "s3-upload-rss"} {
		for _, srv := range servers {
			for _, r := range rs {
				if r.Workload != k || r.Server != srv {
					continue
				}
				fmt.Fprintf(&b, "- %s, %s, round %d: %s\n", k, srv, r.Round, detailText(r.Detail))
			}
		}
	}
	b.WriteString("\n")

	b.WriteString("## How it was measured\n\n")
	b.WriteString(setupText(meta))
	b.WriteString("\n## Reproduce\n\n```sh\n")
	fmt.Fprintf(&b, "%s\n", g("command"))
	b.WriteString("```\n\n")
	b.WriteString("`bench/compare.sh --quick` runs small sizes and one round (about a minute) for iteration;\n")
	b.WriteString("`--only \"list smallfiles\"` picks workloads. Raw results (JSON lines), the servers' configs\n")
	b.WriteString("and logs are left in `bench/results/<date>/`; `bench/README.md` describes the tool.\n")
	b.WriteString("Profiles of cloudftpd alone (the real binary, no vsftpd needed):\n\n```sh\n")
	b.WriteString("sudo bench/profile.sh list            # perf record -g of the server; also download, upload, ftps-*, mlsd, smallfiles, sessions\n")
	b.WriteString("sudo bench/profile.sh --strace list   # syscall counts\n")
	b.WriteString("sudo bench/profile.sh --stat upload   # perf stat: CPU time, context switches\n")
	b.WriteString("go run ./bench/cmd/ftpbench profile idle --sessions 5000 --src 127.0.0.2-127.0.0.60 --root /dev/shm --memprofile heap.pprof\n")
	b.WriteString("go tool pprof -top -sample_index=inuse_space -focus=cloudftpd/internal heap.pprof\n```\n")
	if strings.TrimSpace(notes) != "" {
		b.WriteString("\n## Analysis\n\n")
		b.WriteString(strings.TrimSpace(notes))
		b.WriteString("\n")
	}
	return b.String()
}

// fmtRatio prints two decimals, or three when two would round onto the
// target and hide which side of it the ratio is.
func fmtRatio(ratio, target float64) string {
	if target > 0 && fmt.Sprintf("%.2f", ratio) == fmt.Sprintf("%.2f", target) {
		return fmt.Sprintf("%.3fx", ratio)
	}
	if ratio < 0.1 {
		return fmt.Sprintf("%.3fx", ratio)
	}
	return fmt.Sprintf("%.2fx", ratio)
}

func detailText(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := d[k]
		if f, ok := v.(float64); ok {
			if f == math.Trunc(f) && math.Abs(f) < 1e15 {
				v = int64(f)
			} else {
				v = fmtVal(f)
			}
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	return strings.Join(parts, ", ")
}

func setupText(meta map[string]string) string {
	return `- All servers run on 127.0.0.1 with their files in one home on one tmpfs; the
  generator (` + "`bench/cmd/ftpbench`" + `) runs on the same 2 cores. It speaks FTP
  over raw connections, splices downloads into /dev/null, sends plain uploads from
  the tmpfs file with sendfile and FTPS uploads from memory, so it costs the servers'
  opponent little CPU. Every transfer is timed from the command to the final 226,
  all data received and its size checked; uploads are deleted afterwards (untimed),
  and before each upload a file of the same size is written and deleted on the
  tmpfs so that no server always gets the VM's never-touched pages.
- Logins: cloudftpd, Pure-FTPd and SFTPGo verify the very same argon2id hash
  string (m = 19456 KiB, t = 2, p = 1, written by ` + "`cloudftpd user add`" + `);
  cloudftpd and SFTPGo cache a verified password (cloudftpd for 10 minutes,
  SFTPGo's ` + "`password_caching`" + `, on by default), Pure-FTPd and vsftpd
  verify on every login. vsftpd's account is a system account (PAM, Debian's
  default yescrypt). Idle sessions of vsftpd and Pure-FTPd, and the second
  sessions/s row, use a second account with the same home whose hash is
  SHA-512 crypt (memory does not depend on the hash, and 10,000 logins with a
  memory-hard hash and no cache would take minutes).
- vsftpd (Debian's package, its defaults unless listed):
  ` + "`chroot_local_user=YES`" + `, passive ports from a 1,000-port range,
  ` + "`max_clients`/`max_per_ip`" + ` 20000, transfer log off. FTPS: the same
  self-signed ECDSA P-256 certificate, ` + "`ssl_enable=YES`" + `,
  ` + "`force_local_logins_ssl=YES`, `force_local_data_ssl=YES`" + `,
  ` + "`require_ssl_reuse=YES`" + ` (the default), ` + "`ssl_ciphers=HIGH`" + `.
- Pure-FTPd (Debian's package, not installed: it conflicts with vsftpd's, so
  ` + "`apt-get download`" + ` and ` + "`dpkg-deb -x`" + ` into ` + "`bench/.cache/`" + `;
  the binary runs from there with its command line, not Debian's wrapper):
  virtual users in its own database (` + "`pure-pw useradd`, `pure-pw mkdb`" + `,
  ` + "`-l puredb:FILE`" + `) mapped to the owner of the home and chrooted into
  it (` + "`-A`" + `), the argon2id hash above instead of pure-pw's own (which
  calibrates itself, here to 8 MiB and hundreds of passes), ` + "`-E`" + ` no
  anonymous, ` + "`-H`" + ` no reverse DNS, ` + "`-c 20000 -C 20000`" + ` clients
  in all and per IP (default 50), ` + "`-L 1000000:5`" + ` (listings stop at
  10,000 files by default), passive ports 40000–60999 on the plain listener
  (Pure-FTPd admits at most half as many clients as it has passive ports;
  21,000 ports leave room for 10,000 idle sessions) and a 1,000-port range on
  the FTPS one, ` + "`-I 15`" + ` minutes idle, ` + "`-U 133:022`" + `, ` + "`-f none`" + ` (no
  syslog at all). FTPS: a second process with ` + "`-Y 3`" + ` (TLS required on
  the control and every data connection) and ` + "`-2 cert,key`" + ` (the same
  certificate); its OpenSSL prefers TLS_AES_256_GCM_SHA384, so an OpenSSL
  config for the Pure-FTPd processes only puts TLS_AES_128_GCM_SHA256 first,
  the suite the others negotiate. Its data connections do not resume the
  control connection's TLS session (` + "`tls_resumed`" + ` 0 in every result;
  Pure-FTPd does not require reuse either), so each pays a full handshake.
- SFTPGo (` + "`go build -tags nogcs,noazblob,nobolt,nomysql,nopgsql,nosqlite,noportable`" + `
  of its module at the pinned version; ` + "`go install module@version`" + ` is
  refused because its go.mod has replace directives): FTP only (SFTP, WebDAV,
  HTTP and telemetry listeners off), two bindings, plain (` + "`tls_mode` 0" + `)
  and FTPS (` + "`tls_mode` 1" + `: TLS required on the control and data
  connections, the same certificate), one passive range of 2,000 ports for
  both, users in the memory data provider loaded from a JSON dump at start
  (with all permissions, no uid/gid), ` + "`password_hashing.algo` argon2id" + `
  (with its default, bcrypt, it re-hashes an argon2id password with bcrypt
  at the first login), ` + "`track_quota` 0" + `, defender and rate
  limiters off, ` + "`max_per_host_connections` 0" + ` (default 20),
  ` + "`upload_mode` 0" + ` (its default: writes straight to the target file),
  temporary files on the bench's tmpfs, log level error (no line per login or
  transfer).
- cloudftpd: the same user with all permissions, passive range of 1,000
  ports, log level warn (no per-session or per-transfer log lines), no session
  limits. FTPS: a ` + "`tls = \"required\"`" + ` listener (data protection and
  session reuse required). Its STOR writes a temporary file and renames it over
  the target (the others write the target in place).
- FTPS clients use TLS 1.3, one session cache per control connection and a fixed
  ServerName, so every data connection resumes the control connection's session
  where the server allows it; each result records the resumption and the cipher.
- Sessions/s: 8 workers each loop connect, USER/PASS, TYPE I, EPSV + LIST of a
  10-file directory, QUIT, from source addresses 127.0.0.2–127.0.0.250 in turn.
- Idle sessions: N logged-in sessions held open; the server's memory is the sum of
  Pss from ` + "`/proc/PID/smaps_rollup`" + ` over the server process and all its
  descendants (vsftpd and Pure-FTPd fork processes per session), after the
  logins minus before, divided by N. All servers are restarted before each idle
  measurement. ` + "`marginal_kib`" + ` in the details is the cost of the second
  half of the sessions alone (PSS after all minus PSS after the first half).
- LIST/MLSD: one listing of a directory of empty files, read to the end (vsftpd
  has no MLSD; its LIST stands in).
- Small files: 4 sessions upload 2,000 files of 4 KiB (EPSV, STOR each) into a new
  directory, then download them all; files per second for each phase.
- Ceiling: the same tool, in a child process, sends the download file over one
  loopback TCP connection with one blocking sendfile(2) per GiB; the parent reads
  it the same way as the FTP downloads.
- S3: a second cloudftpd process with ` + "`backend = \"s3\"`" + ` (default
  ` + "`part_size`" + ` 16 MiB and ` + "`concurrency`" + ` 4, path-style), and an
  SFTPGo user whose file system is the same bucket (another prefix,
  path-style, ` + "`upload_part_size`/`download_part_size`" + ` 16 (MiB) and
  ` + "`upload_concurrency`/`download_concurrency`" + ` 4, so both hold the same
  memory for parts), against ` + s3Gateway(meta) + ` on 127.0.0.1, whose POSIX
  backend writes to a tmpfs of its own. The file is uploaded (from the tmpfs
  with sendfile, like the local upload), downloaded back, then deleted.
  Throughput is compared with SFTPGo's, and with cloudftpd on local disk in the
  same run. Peak RSS is the server process's VmHWM (/proc/PID/status), reset by
  writing 5 to /proc/PID/clear_refs just before the upload, read right after
  it; target ≤ 150 MiB with the default part size and concurrency.
`
}

// s3Gateway names the S3 server of the run.
func s3Gateway(meta map[string]string) string {
	if v := meta["s3_gateway"]; v != "" {
		return v
	}
	return "versitygw"
}

// chart draws cloudftpd's advantage (times better than the reference) per
// row on a log scale, with each target as a tick. Green bars met their
// target.
func chart(rows []row, sum map[[2]string]*stat) string {
	type bar struct {
		label, vs   string
		adv, target float64
		met, hasTgt bool
	}
	var bars []bar
	lo, hi := 0.5, 4.0
	for _, r := range rows {
		v := judge(r, sum)
		// The chart compares with other servers: an absolute bound has no
		// "times better", and S3 against local disk is not a contest.
		if !v.measured || len(r.references()) == 0 || v.best.server == "cloudftpd" {
			continue
		}
		vs := serverLabel(v.best.server)
		if r.refLabel != "" {
			vs = r.refLabel
		}
		b := bar{label: r.title, vs: vs, adv: v.advantage, target: v.targetAdv, met: v.met, hasTgt: r.targetTxt != ""}
		bars = append(bars, b)
		for _, x := range []float64{b.adv, b.target} {
			if x > 0 {
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
		}
	}
	lo = math.Pow(2, math.Floor(math.Log2(lo)))
	hi = math.Pow(2, math.Ceil(math.Log2(hi*1.2)))
	const left, width, rowH, top = 400, 420, 26, 40
	height := top + rowH*len(bars) + 50
	x := func(v float64) float64 {
		return left + width*(math.Log2(v)-math.Log2(lo))/(math.Log2(hi)-math.Log2(lo))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", left+width+200, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14" font-weight="bold">cloudftpd vs the best other server: times better (log scale; medians); black tick = target</text>`+"\n")
	for v := lo; v <= hi*1.0001; v *= 2 {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(v), top-5, x(v), top+rowH*len(bars))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%gx</text>`+"\n", x(v), top+rowH*len(bars)+15, v)
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888" stroke-width="1.5"/>`+"\n", x(1), top-5, x(1), top+rowH*len(bars))
	for i, br := range bars {
		y := top + i*rowH
		color := "#4a8"
		if br.hasTgt && !br.met {
			color = "#d55"
		} else if !br.hasTgt {
			color = "#89a"
		}
		x0, x1 := x(1), x(br.adv)
		if x1 < x0 {
			x0, x1 = x1, x0
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, y+15, xmlEscape(br.label))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y+4, math.Max(x1-x0, 1), rowH-8, color)
		tx := math.Max(x(br.adv), x(1))
		if br.target > 0 {
			tx = math.Max(tx, x(br.target)+2)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#333">%.2fx (vs %s)</text>`+"\n", tx+4, y+15, br.adv, xmlEscape(br.vs))
		if br.target > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="3"/>`+"\n", x(br.target), y+1, x(br.target), y+rowH-1)
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">green: target met; red: missed; grey: no target. For time and memory, "times better" is the best other / cloudftpd.</text>`+"\n", 10, height-12)
	b.WriteString("</svg>\n")
	return b.String()
}

func xmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	return r.Replace(s)
}
