package server_test

// End-to-end tests of what is particular to the S3 backend, against
// gofakes3 and a real gateway (versitygw). The client tests in
// clients_test.go and jlaffaye_test.go run against S3 too.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/jlaffaye/ftp"

	"github.com/cloudftpd/cloudftpd/internal/config"
)

// bucket returns ts's bucket, failing the test on local storage.
func (ts *testServer) bucket() *bucketStore {
	ts.t.Helper()
	b, ok := ts.store.(*bucketStore)
	if !ok {
		ts.t.Fatalf("%s: not an S3 backend", ts.backend.name)
	}
	return b
}

// headTime is an object's Last-Modified from HeadObject, which MDTM
// reports (the backend's Stat is a HeadObject).
func (b *bucketStore) headTime(t testing.TB, rel string) time.Time {
	t.Helper()
	out, err := b.srv.Head(t.Context(), b.prefix+rel)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToTime(out.LastModified).UTC()
}

// unsupportedOnS3 checks the replies to what S3 cannot do: the code and a
// word of the reason the README documents.
func unsupportedOnS3(t *testing.T, what string, err error, code int, text string) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != code || !strings.Contains(te.Msg, text) {
		t.Errorf("%s on S3: got %v, want %d mentioning %q", what, err, code, text)
	}
}

// TestS3ClientDay is an FTP client's whole day against the S3 backend:
// login, list, upload large and small files, resume a download, rename,
// delete, and clear answers for what S3 cannot do.
func TestS3ClientDay(t *testing.T) {
	forBackends(t, s3Backends, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, nil)
		c, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
		large := randomBytes(12<<20 + 3) // three multipart parts of 5 MiB
		small := []byte("small report\n")
		check(t, "MakeDir", c.MakeDir("reports"))
		check(t, "Stor large", c.Stor("reports/large.bin", bytes.NewReader(large)))
		check(t, "Stor small", c.Stor("reports/small.txt", bytes.NewReader(small)))
		if got := ts.read("alice/reports/large.bin"); sha256.Sum256(got) != sha256.Sum256(large) {
			t.Fatalf("large object differs (%d bytes)", len(got))
		}
		// S3 gives a multipart object an ETag ending in "-" and its
		// number of parts (gofakes3 does not; the s3store tests count its
		// part requests instead).
		if b.name != s3Fake.name {
			head, err := ts.bucket().srv.Head(t.Context(), s3Prefix+"alice/reports/large.bin")
			if err != nil {
				t.Fatal(err)
			}
			if etag := strings.Trim(aws.ToString(head.ETag), `"`); !strings.HasSuffix(etag, "-3") {
				t.Errorf("large object's ETag %q: want a multipart upload of 3 parts", etag)
			}
		}
		entries, err := c.List("reports")
		check(t, "List", err)
		sizes := map[string]uint64{}
		for _, e := range entries {
			sizes[e.Name] = e.Size
		}
		if len(sizes) != 2 || sizes["large.bin"] != uint64(len(large)) || sizes["small.txt"] != uint64(len(small)) {
			t.Errorf("MLSD on S3: %v", sizes)
		}
		if n, err := c.FileSize("reports/large.bin"); err != nil || n != int64(len(large)) {
			t.Errorf("SIZE: %d %v", n, err)
		}
		if mt, err := c.GetTime("reports/small.txt"); err != nil || !mt.Equal(ts.bucket().headTime(t, "alice/reports/small.txt").Truncate(time.Second)) {
			t.Errorf("MDTM: %v %v, want the object's LastModified", mt, err)
		}
		// Resume a download: a ranged GET.
		const off = 7<<20 + 1
		if tail := retr(t, c, "reports/large.bin", off); !bytes.Equal(tail, large[off:]) {
			t.Fatalf("resumed download: %d bytes, want %d", len(tail), len(large)-off)
		}
		check(t, "ChangeDir", c.ChangeDir("reports"))
		check(t, "Rename", c.Rename("small.txt", "renamed.txt"))
		if got := string(ts.read("alice/reports/renamed.txt")); got != string(small) {
			t.Errorf("renamed object has %q", got)
		}
		ts.notExist("alice/reports/small.txt")
		check(t, "Delete", c.Delete("renamed.txt"))
		ts.notExist("alice/reports/renamed.txt")

		// What S3 cannot do gets the reply the README documents.
		for _, tc := range []struct {
			what string
			run  func() error
			code int
			text string
		}{
			{"MFMT", func() error { return c.SetTime("large.bin", time.Now()) }, 502, "modification times"},
			{"directory rename", func() error { return c.Rename("/reports", "/archive") }, 550, "directories"},
		} {
			unsupportedOnS3(t, tc.what, tc.run(), tc.code, tc.text)
		}
		if got := ts.read("alice/reports/large.bin"); !bytes.Equal(got, large) {
			t.Error("a refused MFMT or directory rename changed the object")
		}
		ts.notExist("alice/archive")
		rc := dialRaw(t, ts.Addr)
		rc.login("alice", "alice-secret")
		if msg := rc.must(502, "SITE CHMOD 600 reports/large.bin"); !strings.Contains(msg, "permissions") {
			t.Errorf("SITE CHMOD on S3: %q", msg)
		}
		check(t, "ChangeDir /", c.ChangeDir("/"))
		if err := c.RemoveDir("reports"); err == nil {
			t.Error("RMD of a non-empty directory succeeded")
		}
		check(t, "Delete large", c.Delete("reports/large.bin"))
		check(t, "RemoveDir emptied", c.RemoveDir("reports"))
		ts.notExist("alice/reports")
	})
}

// TestS3ListPagination lists a directory of more keys than one
// ListObjectsV2 page holds (1,000) with MLSD, NLST and LIST.
func TestS3ListPagination(t *testing.T) {
	forBackends(t, s3Backends, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, nil)
		srv := ts.bucket().srv
		const n = 1050
		want := make([]string, 0, n+1)
		for i := range n {
			want = append(want, fmt.Sprintf("f%04d", i))
		}
		// Straight into the bucket, in parallel: 1,050 FTP uploads would
		// test nothing more and take far longer.
		var wg sync.WaitGroup
		next := make(chan string)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for name := range next {
					srv.Put(t, s3Prefix+"alice/many/"+name, []byte(name))
				}
			}()
		}
		for _, name := range want {
			next <- name
		}
		close(next)
		wg.Wait()
		ts.write("alice/many/zsub/inner", []byte("x")) // a directory after the last page's files
		want = append(want, "zsub")

		c, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
		entries, err := c.List("many")
		check(t, "MLSD", err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
			isDir := e.Name == "zsub"
			if (e.Type == ftp.EntryTypeFolder) != isDir || (!isDir && e.Size != 5) {
				t.Errorf("MLSD entry %+v", e)
			}
		}
		sort.Strings(names)
		if !slices.Equal(names, want) {
			t.Errorf("MLSD listed %d entries, want %d (first differences: %v)", len(names), len(want), firstDiff(names, want))
		}
		nlst, err := c.NameList("many")
		check(t, "NLST", err)
		sort.Strings(nlst)
		if !slices.Equal(nlst, want) {
			t.Errorf("NLST listed %d names, want %d (first differences: %v)", len(nlst), len(want), firstDiff(nlst, want))
		}
		rc := dialRaw(t, ts.Addr)
		rc.login("alice", "alice-secret")
		dc := rc.epsv()
		rc.must(150, "LIST many")
		ls := lines(string(readAll(t, dc)))
		rc.expect(226)
		if len(ls) != len(want) {
			t.Errorf("LIST: %d lines, want %d", len(ls), len(want))
		}
	})
}

// firstDiff names the first few entries in only one of the sorted lists.
func firstDiff(got, want []string) []string {
	var d []string
	for i, j := 0, 0; (i < len(got) || j < len(want)) && len(d) < 5; {
		switch {
		case j >= len(want) || (i < len(got) && got[i] < want[j]):
			d, i = append(d, "extra "+got[i]), i+1
		case i >= len(got) || got[i] > want[j]:
			d, j = append(d, "missing "+want[j]), j+1
		default:
			i, j = i+1, j+1
		}
	}
	return d
}

// TestS3Jail checks that a user sees and changes only the keys under the
// home's prefix: not those of a home whose name starts the same, of
// another user, or outside the server's prefix.
func TestS3Jail(t *testing.T) {
	forBackends(t, s3Backends, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, nil)
		srv := ts.bucket().srv
		outside := map[string]string{
			"homes/alicex/secret":     "x's secret",
			"homes/alice.txt":         "a sibling of the home",
			"homes/bob/secret.txt":    "bob's",
			"homes/bob/d/deeper":      "bob's deeper",
			"private/passwd":          "root:x",
			"top-level":               "outside every home",
			"homes/alice-archive/old": "a prefix sharing the home's name",
		}
		for k, v := range outside {
			srv.Put(t, k, []byte(v))
		}
		ts.write("alice/keep", []byte("mine"))
		before := srv.Keys(t, "")

		rc := dialRaw(t, ts.Addr)
		rc.login("alice", "alice-secret")
		list := func(verb, dir string) string {
			dc := rc.epsv()
			rc.must(150, "%s %s", verb, dir)
			out := string(readAll(t, dc))
			rc.expect(226)
			return out
		}
		// ".." stops at the home: all of these are alice's "/".
		for _, dir := range []string{"/", "..", "/..", "../.."} {
			for _, verb := range []string{"LIST -a", "NLST", "MLSD"} {
				if dir != "/" && verb == "MLSD" {
					continue
				}
				out := list(verb, dir)
				if ls := lines(out); len(ls) != 1 || !strings.HasSuffix(ls[0], "keep") {
					t.Errorf("%s %s as alice: %q, want only keep", verb, dir, out)
				}
			}
		}
		// Paths that name other homes resolve inside alice's, where they
		// do not exist.
		for _, c := range []string{"LIST ../homes", "NLST ../../homes/bob", "MLSD ../alicex", "RETR ../alicex/secret", "RETR /../alicex/secret",
			"RETR ../bob/secret.txt", "RETR ../../private/passwd", "RETR ../../top-level", "RETR ../alice.txt", "RETR /../../homes/bob/secret.txt"} {
			rc.jailRefuses(rc.epsv(), c)
		}
		for _, c := range []string{"DELE ../bob/secret.txt", "DELE ../../top-level", "RMD ../bob/d", "RNFR ../alicex/secret",
			"SIZE ../bob/secret.txt", "MDTM ../../private/passwd", "CWD ../bob", "MKD ../bob/planted/"} {
			if code, msg := rc.cmd("%s", c); code < 500 {
				t.Errorf("%s: %d %q, want a refusal", c, code, msg)
			}
		}
		// ".." stops at the home: this writes alice's /planted.
		rc.stor(rc.epsv(), "../../planted", []byte("p"))
		if got := string(ts.read("alice/planted")); got != "p" {
			t.Errorf("STOR ../../planted: alice/planted holds %q", got)
		}

		after := srv.Keys(t, "")
		for k, v := range outside {
			if got, err := srv.Get(t.Context(), k); err != nil || string(got) != v {
				t.Errorf("%s: %q, %v; want it untouched", k, got, err)
			}
		}
		var added []string
		for _, k := range after {
			if !slices.Contains(before, k) {
				added = append(added, k)
			}
		}
		if !slices.Equal(added, []string{s3Prefix + "alice/planted"}) {
			t.Errorf("keys added: %v, want only alice's planted", added)
		}
	})
}

// TestS3ImplicitDirectories uses directories that exist only because keys
// are under them, as other S3 tools leave them (no marker object).
func TestS3ImplicitDirectories(t *testing.T) {
	forBackends(t, s3Backends, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, nil)
		srv := ts.bucket().srv
		srv.Put(t, s3Prefix+"alice/imp/a.txt", []byte("a"))
		srv.Put(t, s3Prefix+"alice/imp/deep/b.txt", []byte("bb"))
		c, _ := dialJlaffaye(t, ts, "alice", "alice-secret")
		entries, err := c.List("/")
		check(t, "List /", err)
		if len(entries) != 1 || entries[0].Name != "imp" || entries[0].Type != ftp.EntryTypeFolder {
			t.Errorf("home lists %+v, want the directory imp", entries)
		}
		check(t, "ChangeDir imp/deep", c.ChangeDir("imp/deep"))
		if got := retr(t, c, "b.txt", 0); string(got) != "bb" {
			t.Errorf("RETR in an implicit directory: %q", got)
		}
		check(t, "Stor", c.Stor("c.txt", strings.NewReader("ccc")))
		if got := string(ts.read("alice/imp/deep/c.txt")); got != "ccc" {
			t.Errorf("STOR in an implicit directory stored %q", got)
		}
		var te *textproto.Error
		if err := c.MakeDir("/imp"); !errors.As(err, &te) || te.Code != 550 {
			t.Errorf("MKD of an implicit directory: %v, want 550", err)
		}
		if err := c.RemoveDir("/imp"); !errors.As(err, &te) || te.Code != 550 || !strings.Contains(te.Msg, "not empty") {
			t.Errorf("RMD of a non-empty implicit directory: %v, want 550 not empty", err)
		}
		// Removing the tree the way clients do (lftp rm -r): files first,
		// then each directory, deepest first. Emptied directories must
		// still be there for their RMD.
		check(t, "Rename a.txt out", c.Rename("/imp/a.txt", "/a.txt"))
		for _, f := range []string{"/imp/deep/b.txt", "/imp/deep/c.txt", "/a.txt"} {
			check(t, "Delete "+f, c.Delete(f))
		}
		check(t, "RMD /imp/deep", c.RemoveDir("/imp/deep"))
		check(t, "RMD /imp", c.RemoveDir("/imp"))
		if entries, err := c.List("/"); err != nil || len(entries) != 0 {
			t.Errorf("home after removing the tree: %+v, %v; want empty", entries, err)
		}
	})
}

// TestS3HungEndpoint stops the gateway's process (SIGSTOP: connections
// and requests are still accepted by the kernel, nothing answers) and
// checks that commands touching storage get 451 after the request
// timeout, in every session at once, instead of no reply ever: a STOR
// refused at its start, a STOR whose data had all arrived (the commit
// times out), and another session's LIST, SIZE and RETR meanwhile. Once
// the gateway continues, the server works again.
func TestS3HungEndpoint(t *testing.T) {
	const timeout = 2 * time.Second
	forBackends(t, []backend{s3Versitygw}, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, func(cfg *config.Config) {
			cfg.Storage.RequestTimeout = config.Duration(timeout)
		})
		ts.write("bob/dir/f.txt", []byte("content"))

		mid := dialRaw(t, ts.Addr) // a STOR started before the stop
		mid.login("alice", "alice-secret")
		midData := mid.epsv()
		mid.must(150, "STOR mid.txt")
		starter := dialRaw(t, ts.Addr) // a STOR started after it
		starter.login("alice", "alice-secret")
		starterData := starter.epsv()
		other := dialRaw(t, ts.Addr) // another session's commands
		other.login("bob", "bob-secret")

		ts.bucket().srv.Pause(t)
		start := time.Now()
		// The two uploads wait in other goroutines, so that the other
		// session's commands run while their requests hang.
		type reply struct {
			what string
			code int
			msg  string
			err  error
			took time.Duration
		}
		replies := make(chan reply, 2)
		go func() {
			midData.Write([]byte("all of it"))
			midData.Close()
			code, msg, err := mid.tp.ReadResponse(0)
			replies <- reply{"STOR whose data arrived", code, msg, err, time.Since(start)}
		}()
		go func() {
			if err := starter.tp.PrintfLine("STOR new.txt"); err != nil {
				replies <- reply{what: "STOR", err: err}
				return
			}
			code, msg, err := starter.tp.ReadResponse(0)
			starterData.Close()
			replies <- reply{"STOR", code, msg, err, time.Since(start)}
		}()
		// Each reply comes after about one request timeout: no command
		// waits for another's hung request.
		checkReply := func(what string, code int, msg string, took time.Duration) {
			t.Helper()
			if code != 451 || !strings.Contains(msg, "in time") {
				t.Errorf("%s while S3 hangs: %d %q, want 451 Storage did not answer in time", what, code, msg)
			}
			if took > 2*timeout {
				t.Errorf("%s while S3 hangs: reply after %v, with a request timeout of %v", what, took, timeout)
			}
		}
		for _, c := range []string{"SIZE /dir/f.txt", "MKD /newdir", "LIST /dir", "RETR /dir/f.txt", "MLSD /dir"} {
			dc := other.epsv()
			begin := time.Now()
			code, msg := other.cmd("%s", c)
			checkReply(c, code, msg, time.Since(begin))
			if code == 150 {
				readAll(t, dc)
				other.read()
			}
			dc.Close()
		}
		for range 2 {
			r := <-replies
			if r.err != nil {
				t.Errorf("%s while S3 hangs: %v", r.what, r.err)
				continue
			}
			checkReply(r.what, r.code, r.msg, r.took)
		}

		ts.bucket().srv.Resume(t)
		dc := other.epsv()
		other.stor(dc, "after.txt", []byte("works again"))
		if got := string(ts.read("bob/after.txt")); got != "works again" {
			t.Errorf("STOR after the gateway continued stored %q", got)
		}
	})
}

// TestS3ResumeCutAgain: a resumed upload (REST + STOR) cut in the middle
// by ABOR leaves the object as it was before the resume, with no
// multipart upload pending (S3 resumes write a new object, published only
// when complete; on local disk the bytes that arrived would stay), and the
// same resume sent again completes the file. The copied prefix (6 MiB)
// goes inside S3 on versitygw and through the server on gofakes3.
func TestS3ResumeCutAgain(t *testing.T) {
	forBackends(t, s3Backends, func(t *testing.T, b backend) {
		ts := startServerOn(t, b, nil)
		whole := randomBytes(20<<20 + 1)
		const have = 6 << 20
		ts.write("alice/big.bin", whole[:have])

		rc := dialRaw(t, ts.Addr)
		rc.login("alice", "alice-secret")
		rc.must(200, "TYPE I")
		dc := rc.pasv()
		rc.must(350, "REST %d", have)
		rc.must(150, "STOR big.bin")
		if _, err := dc.Write(whole[have : have+8<<20]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return len(ts.bucket().srv.PendingUploads(t)) > 0 })
		rc.tp.PrintfLine("ABOR")
		rc.expect(426)
		rc.expect(226)
		dc.Close()
		if got := ts.read("alice/big.bin"); !bytes.Equal(got, whole[:have]) {
			t.Fatalf("the cut resume changed the object: %d bytes", len(got))
		}
		srv := ts.bucket().srv
		deadline := time.Now().Add(10 * time.Second)
		for len(srv.PendingUploads(t)) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if p := srv.PendingUploads(t); len(p) > 0 {
			t.Errorf("multipart uploads left pending: %v", p)
		}
		if size := rc.must(213, "SIZE big.bin"); size != fmt.Sprint(have) {
			t.Errorf("SIZE after the cut resume: %s, want %d", size, have)
		}

		dc = rc.pasv()
		rc.must(350, "REST %d", have)
		rc.stor(dc, "big.bin", whole[have:])
		if got := ts.read("alice/big.bin"); sha256.Sum256(got) != sha256.Sum256(whole) {
			t.Fatalf("after resuming again: %d bytes, sha256 differs", len(got))
		}
		rc.must(221, "QUIT")
	})
}
