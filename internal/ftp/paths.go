package ftp

import (
	"path"
	"strings"
)

// resolvePath turns a client-supplied path into a clean absolute virtual
// path. Relative paths are taken from cwd; ".." can never climb above "/".
// ok is false for names a file system cannot hold (NUL bytes).
func resolvePath(cwd, p string) (string, bool) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", false
	}
	if p == "" {
		return cwd, true
	}
	if p[0] != '/' {
		p = cwd + "/" + p
	}
	return path.Clean(p), true
}
