package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestHandler serves the embedded build: the page at / and at the
// console's own routes, its assets with their types and long caching,
// the API under /v1/, and refusals for what is neither.
func TestHandler(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"api":"`+r.URL.Path+`"}`)
	})
	srv := httptest.NewServer(Handler(api))
	defer srv.Close()

	get := func(method, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	_, index := get("GET", "/")
	if !strings.Contains(index, `<div id="app">`) {
		t.Fatalf("/ is not the console's page: %.200s", index)
	}
	// The page's assets, as Vite named them.
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 2 {
		t.Fatalf("index.html names %d assets, want a script and a stylesheet", len(refs))
	}

	type want struct {
		path, method string
		code         int
		ctype, cache string
		body         string // a substring
	}
	cases := []want{
		{"/", "GET", 200, "text/html; charset=utf-8", "no-cache", `<div id="app">`},
		{"/index.html", "GET", 200, "text/html; charset=utf-8", "no-cache", `<div id="app">`},
		{"/users", "GET", 200, "text/html; charset=utf-8", "no-cache", `<div id="app">`},
		{"/sessions/deep/link?x=1", "GET", 200, "text/html; charset=utf-8", "no-cache", `<div id="app">`},
		{"/../../etc/passwd", "GET", 200, "text/html; charset=utf-8", "no-cache", `<div id="app">`},
		{"/assets/index-missing.js", "GET", 404, "text/plain; charset=utf-8", "", "not found"},
		{"/v1/status", "GET", 200, "application/json", "", `"api":"/v1/status"`},
		{"/v1/users/x", "DELETE", 200, "application/json", "", `"api":"/v1/users/x"`},
		{"/users", "POST", 405, "text/plain; charset=utf-8", "", "method not allowed"},
	}
	for _, r := range refs {
		ct := "text/javascript; charset=utf-8"
		if strings.HasSuffix(r[1], ".css") {
			ct = "text/css; charset=utf-8"
		}
		cases = append(cases, want{r[1], "GET", 200, ct, "public, max-age=31536000, immutable", ""})
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			resp, body := get(c.method, c.path)
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, c.code, body)
			}
			if got := resp.Header.Get("Content-Type"); got != c.ctype {
				t.Errorf("Content-Type %q, want %q", got, c.ctype)
			}
			if got := resp.Header.Get("Cache-Control"); got != c.cache {
				t.Errorf("Cache-Control %q, want %q", got, c.cache)
			}
			if !strings.Contains(body, c.body) {
				t.Errorf("body %.200q lacks %q", body, c.body)
			}
			if c.code == 200 && !strings.HasPrefix(c.path, "/v1/") {
				if resp.Header.Get("Content-Security-Policy") != CSP || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("security headers missing: %v", resp.Header)
				}
			}
		})
	}

	// Revalidation of the page answers 304.
	resp, _ := get("GET", "/")
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on the page")
	}
	if resp, _ := get("GET", "/users", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match the page's ETag: %d, want 304", resp.StatusCode)
	}
	if resp, body := get("HEAD", "/"); resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD /: %d %q", resp.StatusCode, body)
	}
}
