package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseVolumes(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(minimal + `
[[volume]]
name = "shared"
root = "/srv/shared"

[[volume]]
name = "partner-bucket"
backend = "s3"
bucket = "partner"
prefix = "exchange/"
endpoint = "http://127.0.0.1:7070"
path_style = true
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Volumes) != 2 {
		t.Fatalf("volumes: %+v", c.Volumes)
	}
	if v := c.Volumes[0]; v.Name != "shared" || v.Backend != "local" || v.Root != "/srv/shared" {
		t.Errorf("volume[0] = %+v", v)
	}
	v := c.Volumes[1]
	if v.Name != "partner-bucket" || v.Backend != "s3" || v.Bucket != "partner" || v.Prefix != "exchange/" || !v.PathStyle || v.Endpoint != "http://127.0.0.1:7070" {
		t.Errorf("volume[1] = %+v", v)
	}
	// The S3 defaults apply to a volume as to [storage].
	if v.RequestTimeout.D() != 30*time.Second || v.UploadMemory != 256<<20 {
		t.Errorf("volume[1] defaults: request_timeout %v, upload_memory %d", v.RequestTimeout.D(), v.UploadMemory)
	}
}

func TestParseVolumesRejected(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ doc, want string }{
		{"[[volume]]\nroot = \"x\"\n", "volume[0].name: required"},
		{"[[volume]]\nname = \"a b\"\nroot = \"x\"\n", `volume[0].name: "a b" must not contain`},
		{"[[volume]]\nname = \"a\"\nroot = \"x\"\n[[volume]]\nname = \"a\"\nroot = \"y\"\n", `volume[1].name: "a" is also volume[0]'s name`},
		{"[[volume]]\nname = \"a\"\n", "volume[0].root: required for the local backend"},
		{"[[volume]]\nname = \"a\"\nbackend = \"s3\"\n", "volume[0].bucket: required"},
		{"[[volume]]\nname = \"a\"\nbackend = \"ftp\"\n", `volume[0].backend: "ftp" is not a backend`},
		{"[[volume]]\nname = \"a\"\nroot = \"x\"\nbukket = \"y\"\n", "bukket"},
	} {
		_, err := Parse([]byte(minimal + c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want it to contain %q", c.doc, err, c.want)
		}
	}
}
