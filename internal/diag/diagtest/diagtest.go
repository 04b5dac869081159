// Package diagtest asserts on diagnosis checks in tests.
package diagtest

import (
	"strings"
	"testing"

	"github.com/cloudftpd/cloudftpd/internal/diag"
)

// Want fails t unless checks hold a check of step with status st whose
// detail or fix contains each of subs.
func Want(t testing.TB, checks []diag.Check, step string, st diag.Status, subs ...string) {
	t.Helper()
	c, ok := diag.Find(checks, step)
	if !ok {
		t.Errorf("no %q check", step)
		return
	}
	if c.Status != st {
		t.Errorf("%s: status %s, want %s (%s)", step, c.Status, st, c.Detail)
	}
	for _, s := range subs {
		if !strings.Contains(c.Detail+"\n"+c.Fix, s) {
			t.Errorf("%s: %q lacks %q", step, c.Detail+"\nfix: "+c.Fix, s)
		}
	}
}
