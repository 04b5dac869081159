// Command mkpkg builds cloudftpd's .deb and .rpm with nfpm, used as a
// library: a static binary with its version and commit set at link time,
// the config "cloudftpd init --system" writes, the systemd unit, the
// logrotate file and the maintainer scripts of packaging/files.
//
// It is a module of its own so that nfpm's dependencies stay out of the
// server's go.mod; packaging/build.sh runs it.
//
//	go run . --version 1.2.3 [--commit SHA] [--arch amd64] [--format deb,rpm] [--out DIR]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// mainModule is the go.mod line that marks the repository's root.
const mainModule = "module github.com/cloudftpd/cloudftpd\n"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		os.Exit(1)
	}
}

type options struct {
	version, commit, arch, out, repo string
	formats                          []string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkpkg", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var formats string
	fs.StringVar(&o.version, "version", "", "package and binary version, e.g. 1.2.3 (required)")
	fs.StringVar(&o.commit, "commit", "", "source commit (default: git rev-parse HEAD)")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH to build for")
	fs.StringVar(&formats, "format", "deb,rpm", "packages to build")
	fs.StringVar(&o.out, "out", "", "directory for the packages (default: dist/ in the repository)")
	fs.StringVar(&o.repo, "repo", "", "repository root (default: found from the working directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.version == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--version is required")
	}
	o.formats = strings.Split(formats, ",")
	var err error
	if o.repo == "" {
		if o.repo, err = findRepo(); err != nil {
			return err
		}
	}
	if o.commit == "" {
		out, err := exec.CommandContext(ctx, "git", "-C", o.repo, "rev-parse", "HEAD").Output()
		if err != nil {
			return fmt.Errorf("finding the commit (or pass --commit): %w", err)
		}
		o.commit = strings.TrimSpace(string(out))
	}
	if o.out == "" {
		o.out = filepath.Join(o.repo, "dist")
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "mkpkg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	bin := filepath.Join(work, "cloudftpd")
	if err := buildBinary(ctx, o, bin); err != nil {
		return err
	}
	etc := filepath.Join(work, "etc")
	if err := writeConfig(ctx, o, bin, etc); err != nil {
		return err
	}
	info := packageInfo(o, bin, etc)
	for _, format := range o.formats {
		p, err := writePackage(info, format, o.out)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, p)
	}
	return nil
}

// findRepo walks up from the working directory to the main module's root.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte(mainModule)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the cloudftpd repository (pass --repo)")
		}
		dir = parent
	}
}

// buildBinary links a static binary (no cgo: it runs on any Linux of the
// architecture, and in a scratch or distroless image) with the version
// and commit "cloudftpd version" prints.
func buildBinary(ctx context.Context, o options, bin string) error {
	ldflags := fmt.Sprintf("-s -w -X main.buildVersion=%s -X main.buildCommit=%s", o.version, o.commit)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/cloudftpd")
	cmd.Dir = o.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// writeConfig has cloudftpd write its own commented sample, in the system
// layout, so the packaged config is exactly what "init --system" writes.
// A binary for another architecture cannot run here: go run builds one
// for this machine.
func writeConfig(ctx context.Context, o options, bin, dir string) error {
	var cmd *exec.Cmd
	if o.arch == runtime.GOARCH {
		cmd = exec.CommandContext(ctx, bin, "init", "--system", "--dir", dir)
	} else {
		cmd = exec.CommandContext(ctx, "go", "run", "./cmd/cloudftpd", "init", "--system", "--dir", dir)
		cmd.Dir = o.repo
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cloudftpd init --system: %w\n%s", err, out)
	}
	return nil
}

func packageInfo(o options, bin, etc string) *nfpm.Info {
	src := func(name string) string { return filepath.Join(o.repo, "packaging", "files", name) }
	// The config may hold secrets (S3 keys, webhook secrets) and the users
	// file holds password hashes: root writes them, the server's group
	// reads them. The group exists by then: preinstall creates it.
	secret := &files.ContentFileInfo{Owner: "root", Group: "cloudftpd", Mode: 0o640}
	// Owned by the package, so that dpkg and rpm know them; a purge keeps
	// /srv/ftp when it holds files (dpkg and rpm remove only empty
	// directories), and postremove deletes the state and logs.
	serverDir := &files.ContentFileInfo{Owner: "cloudftpd", Group: "cloudftpd", Mode: 0o750}
	contents := files.Contents{
		{Source: bin, Destination: "/usr/bin/cloudftpd", FileInfo: &files.ContentFileInfo{Mode: 0o755}},
		{Destination: "/etc/cloudftpd", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Owner: "root", Group: "cloudftpd", Mode: 0o750}},
		{Source: filepath.Join(etc, "cloudftpd.toml"), Destination: "/etc/cloudftpd/cloudftpd.toml", Type: files.TypeConfigNoReplace, FileInfo: secret},
		{Source: filepath.Join(etc, "users.toml"), Destination: "/etc/cloudftpd/users.toml", Type: files.TypeConfigNoReplace, FileInfo: secret},
		{Source: src("cloudftpd.logrotate"), Destination: "/etc/logrotate.d/cloudftpd", Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Source: src("cloudftpd.service"), Destination: "/usr/lib/systemd/system/cloudftpd.service", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Destination: "/srv/ftp", Type: files.TypeDir, FileInfo: serverDir},
		{Destination: "/var/lib/cloudftpd", Type: files.TypeDir, FileInfo: serverDir},
		{Destination: "/var/log/cloudftpd", Type: files.TypeDir, FileInfo: serverDir},
		{Source: filepath.Join(o.repo, "README.md"), Destination: "/usr/share/doc/cloudftpd/README.md", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
	}
	return &nfpm.Info{
		Name:        "cloudftpd",
		Arch:        o.arch,
		Platform:    "linux",
		Version:     o.version,
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "cloudftpd maintainers <cloudftpd@example.com>",
		Description: "FTP/FTPS server for cloud machines behind NAT, with local or S3 storage",
		Vendor:      "cloudftpd",
		Homepage:    "https://github.com/cloudftpd/cloudftpd",
		Overridables: nfpm.Overridables{
			Recommends: []string{"logrotate"},
			Contents:   contents,
			Scripts: nfpm.Scripts{
				PreInstall:  src("preinstall.sh"),
				PostInstall: src("postinstall.sh"),
				PreRemove:   src("preremove.sh"),
				PostRemove:  src("postremove.sh"),
			},
			RPM: nfpm.RPM{
				Summary: "FTP/FTPS server for cloud machines behind NAT",
				Group:   "System Environment/Daemons",
			},
		},
	}
}

// writePackage writes one package with its format's conventional file
// name (cloudftpd_1.2.3_amd64.deb, cloudftpd-1.2.3-1.x86_64.rpm).
func writePackage(base *nfpm.Info, format, dir string) (string, error) {
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	// Each packager prepares the contents in place: give it a copy.
	info := *base
	info.Contents = make(files.Contents, len(base.Contents))
	for i, c := range base.Contents {
		cc := *c
		if c.FileInfo != nil {
			fi := *c.FileInfo
			cc.FileInfo = &fi
		}
		info.Contents[i] = &cc
	}
	nfpm.WithDefaults(&info)
	if err := nfpm.Validate(&info); err != nil {
		return "", fmt.Errorf("%s: %w", format, err)
	}
	target := filepath.Join(dir, pkg.ConventionalFileName(&info))
	info.Target = target
	f, err := os.Create(target)
	if err != nil {
		return "", err
	}
	if err := pkg.Package(&info, f); err != nil {
		f.Close()
		os.Remove(target)
		return "", fmt.Errorf("%s: %w", format, err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return target, nil
}
