// Package console serves cloudftpd's web console: the front end built
// from web/ (Preact, Vite) into web/dist, which is committed and embedded
// here, so that `go build` needs no Node.js. The console talks to the
// operations API on the same listener (internal/api), logged in with
// an admin account's cookie session.
//
// web/check-dist.sh rebuilds web/dist from the sources and the lock
// file and fails when the committed files differ.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:web/dist
var dist embed.FS

// CSP lets the console load its own script, stylesheet and API and
// nothing else: no inline script, no other origin, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded file, read once.
type file struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the console's files; every other path not under
// api's prefix is the single page (index.html), which routes itself.
// Requests under /v1/ go to api.
func Handler(api http.Handler) http.Handler {
	files, err := load()
	if err != nil {
		// The files are compiled in: failing here is a broken build.
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle("/", &site{files: files})
	return mux
}

func load() (map[string]file, error) {
	root, err := fs.Sub(dist, "web/dist")
	if err != nil {
		return nil, err
	}
	files := map[string]file{}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files[p] = file{body: b, ctype: contentType(p), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: embedded files: %w", err)
	}
	if _, ok := files["index.html"]; !ok {
		return nil, fmt.Errorf("console: embedded files: no index.html in web/dist (run npm run build in internal/console/web)")
	}
	return files, nil
}

// contentType names the types of the files Vite writes, not trusting
// the host's mime.types for them.
func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

type site struct {
	files map[string]file
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	f, ok := s.files[name]
	h := w.Header()
	switch {
	case ok && strings.HasPrefix(name, "assets/"):
		// Vite names assets by their content: they never change.
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	case strings.HasPrefix(name, "assets/"):
		// A missing asset is an old page asking for an old build, not
		// a page: index.html would be parsed as a script.
		http.NotFound(w, r)
		return
	case ok:
		h.Set("Cache-Control", "no-cache")
	default:
		// The console's own routes (/users, /sessions, ...): the page.
		f = s.files["index.html"]
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
