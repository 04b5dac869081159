package vsftpdimport

import (
	"fmt"
	"io"
	"strings"
)

// Status is what became of an option.
type Status string

// Statuses of a report item.
const (
	// Mapped: a cloudftpd key does what the option did.
	Mapped Status = "mapped"
	// NotNeeded: cloudftpd does it anyway, or has nothing it would
	// change; the text says why.
	NotNeeded Status = "not needed"
	// Unsupported: cloudftpd cannot do it; the text says what to do
	// instead.
	Unsupported Status = "unsupported"
	// Invalid: vsftpd would refuse the line too (an unknown option, a
	// bad value); nothing is written while any is left.
	Invalid Status = "error"
	// Note: something to know or do that no single line says (users
	// whose passwords must be set, a merged limit).
	Note Status = "note"
)

type disposition struct {
	status Status
	text   string
}

// Item is one line of the report.
type Item struct {
	// Pos is "file:line", or the file alone for an option left at its
	// default, or "" for the import as a whole.
	Pos       string
	Directive string // "name=value" as written, or "name (default)"
	Status    Status
	Text      string
}

// Report is every item of an import, in the order of the files and
// their lines, notes last.
type Report []Item

// Errors counts the Invalid items.
func (r Report) Errors() int {
	n := 0
	for _, it := range r {
		if it.Status == Invalid {
			n++
		}
	}
	return n
}

// Write prints the report, one item per paragraph, each line prefixed
// with prefix ("# " for the comments of the generated file).
func (r Report) Write(w io.Writer, prefix string) error {
	for _, it := range r {
		head := it.Pos
		if it.Directive != "" {
			if head != "" {
				head += "  "
			}
			head += it.Directive
		}
		line := fmt.Sprintf("%-11s %s", it.Status, head)
		if _, err := fmt.Fprintln(w, strings.TrimRight(prefix+line, " ")); err != nil {
			return err
		}
		for _, l := range wrap(it.Text, 76-len(prefix)) {
			if _, err := fmt.Fprintln(w, prefix+"            "+l); err != nil {
				return err
			}
		}
	}
	return nil
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) []string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len(line)+1+len(w) > width {
				out = append(out, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		out = append(out, line)
	}
	return out
}
