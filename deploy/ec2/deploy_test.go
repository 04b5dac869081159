// Package ec2 holds the Terraform example of a cloudftpd instance on EC2
// and its test; see main.tf.
package ec2

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/firewall"
)

// module is one Terraform module's top-level blocks, by "type.label...".
type module struct {
	blocks map[string]*hclsyntax.Block
}

// parseModule parses every .tf file of dir with the HCL parser Terraform
// uses; syntax errors fail the test.
func parseModule(t *testing.T, dir string) module {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .tf files in %s: %v", dir, err)
	}
	p := hclparse.NewParser()
	m := module{blocks: map[string]*hclsyntax.Block{}}
	for _, path := range paths {
		f, diags := p.ParseHCLFile(path)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", path, diags)
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			key := strings.Join(append([]string{b.Type}, b.Labels...), ".")
			if _, dup := m.blocks[key]; dup {
				t.Errorf("%s: %s declared twice", path, key)
			}
			m.blocks[key] = b
		}
	}
	return m
}

func (m module) block(t *testing.T, key string) *hclsyntax.Block {
	t.Helper()
	b, ok := m.blocks[key]
	if !ok {
		t.Fatalf("no %s block", key)
	}
	return b
}

// refs is every reference in b's attributes and nested blocks, as
// "var.x", "aws_instance.name", "data.t.n", "module.m".
func refs(b *hclsyntax.Block) []string {
	var out []string
	var walk func(body *hclsyntax.Body)
	walk = func(body *hclsyntax.Body) {
		for _, a := range body.Attributes {
			for _, tr := range a.Expr.Variables() {
				parts := []string{tr.RootName()}
				n := 2
				if parts[0] == "data" {
					n = 3
				}
				for _, s := range tr[1:] {
					if len(parts) == n {
						break
					}
					if at, ok := s.(hcl.TraverseAttr); ok {
						parts = append(parts, at.Name)
					}
				}
				out = append(out, strings.Join(parts, "."))
			}
		}
		for _, nb := range body.Blocks {
			walk(nb.Body)
		}
	}
	walk(b.Body)
	return out
}

// attr evaluates a constant attribute (a literal, no references).
func attr(t *testing.T, b *hclsyntax.Block, name string) cty.Value {
	t.Helper()
	a, ok := b.Body.Attributes[name]
	if !ok {
		t.Fatalf("%s %v has no %s", b.Type, b.Labels, name)
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("%s %v: %s: %v", b.Type, b.Labels, name, diags)
	}
	return v
}

// checkRefs: every var., resource, data and module reference in the
// module names something it declares, as terraform validate would check
// (which needs the providers downloaded; this does not).
func checkRefs(t *testing.T, m module) {
	t.Helper()
	for key, b := range m.blocks {
		if b.Type == "variable" {
			continue // "type = string" is a type, not a reference
		}
		for _, r := range refs(b) {
			root, _, _ := strings.Cut(r, ".")
			var want string
			switch root {
			case "var":
				want = "variable." + strings.TrimPrefix(r, "var.")
			case "data", "module":
				want = r
			case "path", "each", "count", "self", "terraform", "local":
				continue
			default:
				want = "resource." + r
			}
			if _, ok := m.blocks[want]; !ok {
				t.Errorf("%s refers to %s, which is not declared", key, r)
			}
		}
	}
}

func hasRef(b *hclsyntax.Block, attrName, want string) bool {
	a, ok := b.Body.Attributes[attrName]
	if !ok {
		return false
	}
	for _, tr := range a.Expr.Variables() {
		var parts []string
		parts = append(parts, tr.RootName())
		for _, s := range tr[1:] {
			if at, ok := s.(hcl.TraverseAttr); ok {
				parts = append(parts, at.Name)
			}
		}
		if strings.HasPrefix(strings.Join(parts, "."), want) {
			return true
		}
	}
	return false
}

// TestTerraform parses the example with the HCL parser and checks what it
// is for: the instance has the bucket's IAM role, the Elastic IP is the
// instance's, the security group gets the generated rules, and those rules
// are exactly what "cloudftpd firewall --format terraform" prints for the
// config the instance runs.
func TestTerraform(t *testing.T) {
	cfg, err := config.Load("cloudftpd.toml")
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := firewall.FromConfig(cfg).Write(&want, "terraform"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("firewall/main.tf")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("firewall/main.tf is not what cloudftpd firewall prints for cloudftpd.toml; regenerate it:\n" +
			"  cloudftpd firewall --config deploy/ec2/cloudftpd.toml --format terraform > deploy/ec2/firewall/main.tf")
	}

	fw := parseModule(t, "firewall")
	checkRefs(t, fw)
	rules := 0
	for key, b := range fw.blocks {
		if strings.HasPrefix(key, "resource.aws_vpc_security_group_ingress_rule.") {
			rules++
			if !hasRef(b, "security_group_id", "var.security_group_id") {
				t.Errorf("%s is not on var.security_group_id", key)
			}
		}
	}
	if rules == 0 {
		t.Error("firewall/main.tf has no ingress rules")
	}

	m := parseModule(t, ".")
	checkRefs(t, m)
	inst := m.block(t, "resource.aws_instance.cloudftpd")
	if !hasRef(inst, "iam_instance_profile", "aws_iam_instance_profile.cloudftpd") {
		t.Error("the instance has no instance profile")
	}
	if !hasRef(inst, "vpc_security_group_ids", "aws_security_group.cloudftpd") {
		t.Error("the instance is not in the security group")
	}
	if prof := m.block(t, "resource.aws_iam_instance_profile.cloudftpd"); !hasRef(prof, "role", "aws_iam_role.cloudftpd") {
		t.Error("the instance profile does not carry the role")
	}
	if pol := m.block(t, "resource.aws_iam_role_policy.files"); !hasRef(pol, "role", "aws_iam_role.cloudftpd") ||
		!hasRef(pol, "policy", "data.aws_iam_policy_document.files") {
		t.Error("the role has no bucket policy")
	}
	if !slices.Contains(refs(m.block(t, "data.aws_iam_policy_document.files")), "aws_s3_bucket.files") {
		t.Error("the policy is not on the bucket")
	}
	if eip := m.block(t, "resource.aws_eip.cloudftpd"); !hasRef(eip, "instance", "aws_instance.cloudftpd") {
		t.Error("the Elastic IP is not the instance's")
	}
	fwm := m.block(t, "module.firewall")
	if src := attr(t, fwm, "source"); src.AsString() != "./firewall" {
		t.Errorf("module firewall source %q", src.AsString())
	}
	if !hasRef(fwm, "security_group_id", "aws_security_group.cloudftpd") {
		t.Error("the generated rules are not on the instance's security group")
	}
	// The bucket, its prefix and region are the config's.
	for name, want := range map[string]string{"bucket": cfg.Storage.Bucket, "prefix": cfg.Storage.Prefix, "region": cfg.Storage.Region} {
		if got := attr(t, m.block(t, "variable."+name), "default"); got.AsString() != want {
			t.Errorf("variable %s defaults to %q, the config says %q", name, got.AsString(), want)
		}
	}
	// The passive address comes from instance metadata, which the instance
	// must serve (IMDSv2).
	if !slices.ContainsFunc(cfg.Listeners[0].Passive, func(r config.PassiveRule) bool { return r.Address == "aws" }) {
		t.Error(`the config does not read the Elastic IP ("aws")`)
	}
	tmpl, err := os.ReadFile("user-data.sh.tftpl")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"${package_url}", "${config}"} {
		if !strings.Contains(string(tmpl), v) {
			t.Errorf("user-data.sh.tftpl does not use %s", v)
		}
	}
}
