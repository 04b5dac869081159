// Package sysuserstest makes passwd and shadow files with real crypt(3)
// hashes for tests: the hashes come from the system's own tools
// (openssl passwd, mkpasswd from Debian's whois package), not from the
// code under test, so a verification that agrees with them is right.
package sysuserstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/clienttest"
)

// Hash returns password hashed in format by an external tool: "6"
// (SHA-512-crypt) and "5" (SHA-256-crypt) by openssl passwd, "y"
// (yescrypt), "1" (MD5-crypt) and "2b" (bcrypt) by mkpasswd. A missing
// tool skips the test, or fails it when CI=true.
func Hash(t testing.TB, format, password string) string {
	t.Helper()
	var args []string
	switch format {
	case "6", "5", "1":
		args = []string{clienttest.Need(t, "openssl"), "passwd", "-" + format, "-stdin"}
	case "y":
		args = []string{clienttest.Need(t, "mkpasswd"), "-m", "yescrypt", "--stdin"}
	case "2b":
		args = []string{clienttest.Need(t, "mkpasswd"), "-m", "bcrypt", "--stdin"}
	default:
		t.Fatalf("sysuserstest: no tool for format %q", format)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	h := strings.TrimSpace(string(out))
	if !strings.HasPrefix(h, "$"+format+"$") {
		t.Fatalf("%s made %q, not a $%s$ hash", strings.Join(args, " "), h, format)
	}
	return h
}

// Account is one line of each file.
type Account struct {
	Name     string
	UID, GID int
	Home     string // default /home/NAME
	// Shadow is the shadow line after the name and hash; default
	// ":19000:0:99999:7:::" (no ageing that could expire).
	Shadow string
	Hash   string
}

// Files are the paths Write made.
type Files struct {
	Passwd, Shadow, Group, FTPUsers string
}

// Write writes passwd, shadow, group (with groups, "name:gid:member,..")
// and an ftpusers file listing ftpusers in dir.
func Write(t testing.TB, dir string, accounts []Account, groups []string, ftpusers []string) Files {
	t.Helper()
	var pw, sh strings.Builder
	for _, a := range accounts {
		home := a.Home
		if home == "" {
			home = "/home/" + a.Name
		}
		fmt.Fprintf(&pw, "%s:x:%d:%d:%s:%s:/bin/sh\n", a.Name, a.UID, a.GID, a.Name, home)
		rest := a.Shadow
		if rest == "" {
			rest = ":19000:0:99999:7:::"
		}
		fmt.Fprintf(&sh, "%s:%s%s\n", a.Name, a.Hash, rest)
	}
	var gr strings.Builder
	for _, g := range groups {
		name, rest, _ := strings.Cut(g, ":")
		gid, members, _ := strings.Cut(rest, ":")
		fmt.Fprintf(&gr, "%s:x:%s:%s\n", name, gid, members)
	}
	f := Files{
		Passwd:   filepath.Join(dir, "passwd"),
		Shadow:   filepath.Join(dir, "shadow"),
		Group:    filepath.Join(dir, "group"),
		FTPUsers: filepath.Join(dir, "ftpusers"),
	}
	for path, data := range map[string]string{
		f.Passwd: pw.String(), f.Shadow: sh.String(), f.Group: gr.String(),
		f.FTPUsers: "# users who may not log in by FTP\n" + strings.Join(ftpusers, "\n") + "\n",
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}
