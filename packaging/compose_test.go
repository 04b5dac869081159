package packaging

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
)

// composeFile is the part of the Compose specification compose.yaml uses.
type composeFile struct {
	Name          string            `yaml:"name"`
	S3Credentials map[string]string `yaml:"x-s3-credentials"`
	Services      map[string]struct {
		Build struct {
			Context          string `yaml:"context"`
			Dockerfile       string `yaml:"dockerfile"`
			DockerfileInline string `yaml:"dockerfile_inline"`
		} `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
		Command     []string          `yaml:"command"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		DependsOn   []string          `yaml:"depends_on"`
		Restart     string            `yaml:"restart"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestCompose parses compose.yaml (docker is not needed, nor run: this
// checks what can be checked without it) and the config it mounts: the
// config is valid, stores files in versitygw's service by its compose
// name, gets the credentials versitygw is started with, and every port
// it listens on is published.
func TestCompose(t *testing.T) {
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	ftp, ok := c.Services["cloudftpd"]
	if !ok {
		t.Fatal("no cloudftpd service")
	}
	gw, ok := c.Services["versitygw"]
	if !ok {
		t.Fatal("no versitygw service")
	}
	if df := filepath.Join(ftp.Build.Context, ftp.Build.Dockerfile); df != "../packaging/Containerfile" {
		t.Errorf("cloudftpd is built from %s", df)
	}
	if !slices.Contains(ftp.DependsOn, "versitygw") {
		t.Errorf("cloudftpd does not depend on versitygw: %v", ftp.DependsOn)
	}
	// The config directory mounted on /etc/cloudftpd.
	var confDir string
	for _, v := range ftp.Volumes {
		if src, dst, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(dst, "/etc/cloudftpd") {
			confDir = src
		}
	}
	if confDir == "" {
		t.Fatalf("no volume on /etc/cloudftpd in %v", ftp.Volumes)
	}
	cfg, err := config.Load(filepath.Join(confDir, "cloudftpd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	st := cfg.Storage
	if st.Backend != "s3" || st.Endpoint != "http://versitygw:7070" || !st.PathStyle {
		t.Errorf("storage %+v: want s3 at http://versitygw:7070, path style", st)
	}
	cmd := strings.Join(gw.Command, " ")
	for _, want := range []string{"--port :7070", "posix /data", "mkdir -p /data/" + st.Bucket, "--region " + st.Region} {
		if !strings.Contains(cmd, want) {
			t.Errorf("versitygw command %q lacks %q", cmd, want)
		}
	}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if ftp.Environment[k] == "" || ftp.Environment[k] != gw.Environment[k] {
			t.Errorf("%s: cloudftpd has %q, versitygw %q", k, ftp.Environment[k], gw.Environment[k])
		}
	}
	// Published as HOST:PORT:CONTAINER_PORT, the same port on both sides
	// (the passive replies name the container's ports).
	var published []string
	for _, p := range ftp.Ports {
		parts := strings.Split(p, ":")
		if n := len(parts); n < 2 || parts[n-1] != parts[n-2] {
			t.Errorf("port mapping %q maps to another port", p)
		}
		published = append(published, parts[len(parts)-1])
	}
	if want := listenerPorts(t, cfg); !slices.Equal(published, want) {
		t.Errorf("compose publishes %v, the config listens on %v", published, want)
	}
	if got := exposed(t, "Containerfile"); !slices.Equal(got, published) {
		t.Errorf("the image exposes %v, compose publishes %v", got, published)
	}
	// The demo user logs in with the password the compose file's comment
	// gives.
	users, err := auth.LoadUsersFile(cfg.Path(cfg.Auth.UsersFile))
	if err != nil {
		t.Fatal(err)
	}
	demo := users.Find("demo")
	if demo == nil {
		t.Fatal("the compose users.toml has no demo user")
	}
	if ok, err := auth.VerifyPassword(demo.PasswordHash, "demo"); !ok || err != nil {
		t.Errorf("demo's password is not \"demo\": %v %v", ok, err)
	}
}
