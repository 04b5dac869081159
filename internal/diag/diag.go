// Package diag is the shape of a diagnosis: a list of checks, each with
// an outcome, what was seen and what to change, printed for a person. The
// client-side probe (internal/probe) and the server-side doctor
// (internal/doctor) report through it, so both read alike.
package diag

import (
	"fmt"
	"io"
	"strings"
)

// Status is a check's outcome.
type Status string

const (
	OK      Status = "ok"
	Warn    Status = "warn" // works, with something worth knowing or fixing
	Fail    Status = "FAIL"
	Skipped Status = "skip" // not tried, because an earlier step failed
)

// Check is the outcome of one step.
type Check struct {
	Step   string // what was checked: "connect", "listener[0] passive ports", ...
	Status Status
	Detail string // what was seen; may span lines
	Fix    string // what to change, for a warning or a failure
}

// Failed reports whether any check failed.
func Failed(checks []Check) bool {
	for _, c := range checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Find returns the first check of a step and whether there is one.
func Find(checks []Check, step string) (Check, bool) {
	for _, c := range checks {
		if c.Step == step {
			return c, true
		}
	}
	return Check{}, false
}

// Write prints a title line, one line per check (status, step, detail)
// with continuation lines and the fix indented below it, the extra lines,
// and the overall result.
func Write(w io.Writer, title string, checks []Check, extra ...string) (int64, error) {
	width := 9
	for _, c := range checks {
		width = max(width, len(c.Step))
	}
	pad := strings.Repeat(" ", 4+2+width+1)
	var b strings.Builder
	b.WriteString(title + "\n")
	for _, c := range checks {
		fmt.Fprintf(&b, "%-4s  %-*s %s\n", c.Status, width, c.Step, strings.ReplaceAll(c.Detail, "\n", "\n"+pad))
		if c.Fix != "" {
			b.WriteString(pad + "fix: " + strings.ReplaceAll(c.Fix, "\n", "\n"+pad) + "\n")
		}
	}
	for _, e := range extra {
		b.WriteString(e + "\n")
	}
	if Failed(checks) {
		b.WriteString("result: FAILED\n")
	} else {
		b.WriteString("result: ok\n")
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
