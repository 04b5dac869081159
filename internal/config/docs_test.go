package config

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestKubernetesExample: the config in docs/kubernetes/cloudftpd.yaml's
// ConfigMap parses and validates, so the example cannot rot.
func TestKubernetesExample(t *testing.T) {
	data, err := os.ReadFile("../../docs/kubernetes/cloudftpd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var found bool
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the example is not valid YAML: %v", err)
		}
		if doc.Kind != "ConfigMap" {
			continue
		}
		found = true
		text := doc.Data["cloudftpd.toml"]
		// The users file is a Secret mounted at run time; anonymous
		// logins stand in for it here.
		text = strings.Replace(text, `users_file = "/etc/cloudftpd/users/users.toml"`, "anonymous = true", 1)
		c, err := Parse([]byte(text))
		if err != nil {
			t.Fatalf("the example's cloudftpd.toml does not validate: %v\n%s", err, text)
		}
		if l := c.Listeners[0]; l.PublicPort != 30021 || l.Passive[1].PortOffset() != 30100-50000 {
			t.Errorf("listener: public_port %d, offset %d; want 30021 and the nodePorts' offset", l.PublicPort, l.Passive[1].PortOffset())
		}
	}
	if !found {
		t.Fatal("no ConfigMap in the example")
	}
}
