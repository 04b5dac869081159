package probe

import (
	"fmt"
	"testing"
)

// The probe reads replies from servers it does not trust: parsing must
// never panic, and what it accepts must be what the reply said.
func FuzzParse227(f *testing.F) {
	for _, s := range []string{"Entering Passive Mode (127,0,0,1,195,80).", "=1,2,3,4,5,6", "(999,1,1,1,1,1)", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		ap, ok := parse227(msg)
		if !ok {
			return
		}
		a := ap.Addr().As4()
		want := fmt.Sprintf("%d,%d,%d,%d,%d,%d", a[0], a[1], a[2], a[3], ap.Port()>>8, ap.Port()&0xff)
		if m := reply227.FindString(msg); m == "" {
			t.Fatalf("parse227(%q) accepted a reply without h1,...,p2", msg)
		} else if got, ok := parse227(want); !ok || got != ap {
			t.Fatalf("parse227(%q) = %v; its canonical form %q parses to %v", msg, ap, want, got)
		}
	})
}

func FuzzParse229(f *testing.F) {
	for _, s := range []string{"Entering Extended Passive Mode (|||50000|)", "(!!!1!)", "(|||", "(||||)", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		port, ok := parse229(msg)
		if ok && port == 0 {
			t.Fatalf("parse229(%q) accepted port 0", msg)
		}
	})
}
