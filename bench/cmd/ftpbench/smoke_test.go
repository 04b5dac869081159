package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/s3test"
)

// TestMain lets the test binary stand in for ftpbench when the ceiling
// workload starts its sendfile child (os.Executable is the test binary).
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestSmoke runs every workload once, tiny, against an in-process cloudftpd
// (no vsftpd needed), then renders the report. It checks that the tool
// works end to end and reports sane numbers, not how fast anything is.
func TestSmoke(t *testing.T) {
	root := t.TempDir()
	srv, err := startInproc(root, "")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	const size = 1 << 20
	if err := makeFile(filepath.Join(srv.Home, "big.bin"), size); err != nil {
		t.Fatal(err)
	}
	if err := makeFiles(filepath.Join(srv.Home, "small"), 10, 100); err != nil {
		t.Fatal(err)
	}
	if err := makeFiles(filepath.Join(srv.Home, "many"), 200, 0); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "results.jsonl")
	sz := fmt.Sprint(size)
	common := func(server string, tls bool) []string {
		addr := srv.Plain
		if tls {
			addr = srv.TLS
		}
		return []string{"--addr", addr, "--user", srv.User, "--pass", srv.Password, "--server", server, "--out", out, "--timeout", "20s"}
	}
	steps := [][]string{
		{"download", "--file", "big.bin", "--size", sz},
		{"upload", "--size", sz, "--src-file", filepath.Join(srv.Home, "big.bin")},
		{"download", "--file", "big.bin", "--size", sz, "--tls"},
		{"upload", "--size", sz, "--tls"},
		{"sessions", "--workers", "2", "--duration", "1s", "--dir", "small"},
		{"idle", "--sessions", "10", "--settle", "10ms", "--pid", fmt.Sprint(os.Getpid())},
		{"list", "--verb", "LIST", "--dir", "many", "--lines", "200"},
		{"list", "--verb", "MLSD", "--dir", "many", "--lines", "200"},
		{"smallfiles", "--files", "20", "--parallel", "2"},
	}
	// The same server plays the peers too, so the report has ratios.
	for _, server := range []string{"cloudftpd", "vsftpd", "pureftpd"} {
		for _, st := range steps {
			tls := false
			for _, a := range st {
				tls = tls || a == "--tls"
			}
			args := append([]string{"run"}, st...)
			args = append(args, common(server, tls)...)
			var so, se bytes.Buffer
			if code := run(args, &so, &se); code != 0 {
				t.Fatalf("ftpbench %s: exit %d: %s", strings.Join(st, " "), code, se.String())
			}
		}
	}
	var se bytes.Buffer
	if code := run([]string{"ceiling", "--file", filepath.Join(srv.Home, "big.bin"), "--out", out}, io.Discard, &se); code != 0 {
		t.Fatalf("ceiling: exit %d: %s", code, se.String())
	}

	// The S3 workload against a second in-process cloudftpd whose bucket
	// is on gofakes3, also in process: two 5 MiB parts and a bit. The
	// server process is this one.
	gw := s3test.Fake(t, "bench")
	gw.Env(t)
	s3srv, err := startInproc(t.TempDir(), fmt.Sprintf(
		"backend = \"s3\"\nbucket = %q\nprefix = \"homes/\"\nendpoint = %q\npath_style = true\npart_size = \"5MiB\"", gw.Bucket, gw.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer s3srv.close()
	// It plays SFTPGo's S3 user too.
	for _, server := range []string{"cloudftpd", "sftpgo"} {
		s3args := []string{"run", "s3", "--size", fmt.Sprint(11 << 20), "--pid", fmt.Sprint(os.Getpid()),
			"--addr", s3srv.Plain, "--user", s3srv.User, "--pass", s3srv.Password, "--server", server, "--out", out, "--timeout", "20s"}
		if code := run(s3args, io.Discard, &se); code != 0 {
			t.Fatalf("ftpbench run s3 --server %s: exit %d: %s", server, code, se.String())
		}
	}
	if keys := gw.Keys(t, ""); len(keys) != 0 {
		t.Errorf("the S3 workload left objects behind: %v", keys)
	}

	rs, err := readResults(out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.Workload+"/"+r.Server] = true
		switch {
		case r.Workload == "idle-10":
			if r.Detail["pss_after_kib"].(float64) <= 0 || r.Detail["processes_after"].(float64) < 1 {
				t.Errorf("idle: no memory measured: %v", r.Detail)
			}
		case r.Value <= 0 || r.Value != r.Value:
			t.Errorf("%s/%s: value %v %s", r.Workload, r.Server, r.Value, r.Metric)
		}
		if r.Workload == "s3-upload-rss" && (r.Value < 1 || !strings.Contains(fmt.Sprint(r.Detail["source"]), "VmHWM")) {
			t.Errorf("s3-upload-rss: %v MiB, %v; want VmHWM of this process", r.Value, r.Detail)
		}
		if r.Workload == "ftps-download" || r.Workload == "ftps-upload" {
			if r.Detail["tls_resumed"].(float64) != 1 {
				t.Errorf("%s: data connection did not resume the TLS session: %v", r.Workload, r.Detail)
			}
		}
	}
	for _, w := range []string{"download", "upload", "ftps-download", "ftps-upload", "sessions", "idle-10", "list", "mlsd", "smallfiles-up", "smallfiles-down"} {
		if !seen[w+"/cloudftpd"] || !seen[w+"/vsftpd"] || !seen[w+"/pureftpd"] {
			t.Errorf("no result for %s", w)
		}
	}
	if !seen["download/ceiling"] {
		t.Error("no ceiling result")
	}
	for _, w := range []string{"s3-upload", "s3-download", "s3-upload-rss"} {
		if !seen[w+"/cloudftpd"] || !seen[w+"/sftpgo"] {
			t.Errorf("no result for %s", w)
		}
	}

	// Render the report from these results.
	meta := filepath.Join(root, "meta.json")
	mb, _ := json.Marshal(map[string]string{"idle_small": "10", "idle_large": "10", "rounds": "1"})
	if err := os.WriteFile(meta, mb, 0o644); err != nil {
		t.Fatal(err)
	}
	md, svg := filepath.Join(root, "B.md"), filepath.Join(root, "b.svg")
	if code := run([]string{"render", "--results", out, "--meta", meta, "--md", md, "--svg", svg}, io.Discard, &se); code != 0 {
		t.Fatalf("render: exit %d: %s", code, se.String())
	}
	doc, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| Download 2 GiB (FTP, tmpfs) |", "b.svg", "x |",
		"| workload | metric | cloudftpd | vsftpd | Pure-FTPd | SFTPGo | best other | ratio | target | met |",
		"| S3 backend: upload 2 GiB (versitygw on tmpfs) | MiB/s |", "| SFTPGo: ", "cloudftpd, local disk: ",
		"| S3 backend: peak RSS uploading 2 GiB | peak RSS (MiB), lower is better |"} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("report lacks %q:\n%s", want, doc)
		}
	}
	for line := range strings.Lines(string(doc)) {
		// Every row has its reference here, SFTPGo's S3 included; only
		// the SHA-512 sessions row has no results (no such accounts).
		if strings.Contains(line, "not measured") && !strings.Contains(line, "SHA-512") {
			t.Errorf("row not measured: %s", line)
		}
	}
	sb, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(sb))
	for {
		if _, err := d.Token(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("chart is not well-formed XML: %v", err)
			}
			break
		}
	}
}

func TestParseEPSV(t *testing.T) {
	for line, want := range map[string]int{
		"229 Entering Extended Passive Mode (|||20001|)": 20001,
		"229 EPSV ok (|||65535|)":                        65535,
		"229 Entering Extended Passive Mode (|||0|)":     -1,
		"229 Entering Extended Passive Mode (||20001|)":  -1,
		"229 Entering Extended Passive Mode (|||123x|)":  -1,
	} {
		got, err := parseEPSV([]byte(line))
		if want < 0 {
			if err == nil {
				t.Errorf("%q: got %d, want an error", line, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", line, got, err, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	rs := []result{
		{Workload: "download", Server: "cloudftpd", Value: 3, Better: "higher"},
		{Workload: "download", Server: "cloudftpd", Value: 1, Better: "higher"},
		{Workload: "download", Server: "cloudftpd", Value: 2, Better: "higher"},
		{Workload: "download", Server: "vsftpd", Value: 1, Better: "higher"},
		{Workload: "list", Server: "cloudftpd", Value: 1, Better: "lower"},
		{Workload: "list", Server: "vsftpd", Value: 4, Better: "lower"},
	}
	sum := summarize(rs)
	s := sum[[2]string{"download", "cloudftpd"}]
	if s.median != 2 || s.min != 1 || s.max != 3 {
		t.Errorf("summary %+v", s)
	}
	v := judge(row{workload: "download", target: 1.5, targetTxt: "x"}, sum)
	if !v.met || v.ratio != 2 {
		t.Errorf("download verdict %+v", v)
	}
	v = judge(row{workload: "list", target: 0.5, targetTxt: "x"}, sum)
	if !v.met || v.ratio != 0.25 || v.advantage != 4 || v.targetAdv != 2 {
		t.Errorf("list verdict %+v", v)
	}
}

// TestJudgeBest: the reference is the best peer in the metric's direction,
// peers without a result are left out, and a row's own references replace
// the peers.
func TestJudgeBest(t *testing.T) {
	rs := []result{
		{Workload: "upload", Server: "cloudftpd", Value: 120, Better: "higher"},
		{Workload: "upload", Server: "vsftpd", Value: 80, Better: "higher"},
		{Workload: "upload", Server: "pureftpd", Value: 100, Better: "higher"},
		{Workload: "list", Server: "cloudftpd", Value: 2, Better: "lower"},
		{Workload: "list", Server: "vsftpd", Value: 4, Better: "lower"},
		{Workload: "list", Server: "sftpgo", Value: 3, Better: "lower"},
		{Workload: "mlsd", Server: "cloudftpd", Value: 1, Better: "lower"},
		{Workload: "mlsd", Server: "pureftpd", Value: 5, Better: "lower"},
	}
	sum := summarize(rs)
	for _, tc := range []struct {
		r     row
		best  string
		ratio float64
		met   bool
	}{
		{row{workload: "upload", target: 1.2, targetTxt: "x"}, "pureftpd", 1.2, true},
		{row{workload: "upload", target: 1.5, targetTxt: "x"}, "pureftpd", 1.2, false},
		{row{workload: "list", target: 0.5, targetTxt: "x"}, "sftpgo", 2.0 / 3, false},
		{row{workload: "mlsd", refs: []ref{{"vsftpd", "list"}, {"pureftpd", "mlsd"}}, target: 0.5, targetTxt: "x"}, "vsftpd", 0.25, true},
	} {
		v := judge(tc.r, sum)
		if !v.measured || v.best.server != tc.best || math.Abs(v.ratio-tc.ratio) > 1e-9 || v.met != tc.met {
			t.Errorf("%s: best %s ratio %v met %v; want %s %v %v", tc.r.workload, v.best.server, v.ratio, v.met, tc.best, tc.ratio, tc.met)
		}
	}
	if v := judge(row{workload: "download"}, sum); v.measured {
		t.Errorf("download has no results but was measured: %+v", v)
	}
}
