package ftp

import (
	"bufio"
	"net/textproto"
	"strings"
	"testing"
)

func TestAppendReply(t *testing.T) {
	tests := []struct {
		name string
		r    Reply
		want string
	}{
		{"one line", Reply{200, []string{"ok"}}, "200 ok\r\n"},
		{"no text", Reply{200, nil}, "200 \r\n"},
		{"multi-line", Reply{211, []string{"Features:", "EPSV", "End"}}, "211-Features:\r\n EPSV\r\n211 End\r\n"},
		{"CR LF in text", Reply{550, []string{"evil\r\n213 injected"}}, "550 evil  213 injected\r\n"},
		{"bare LF and CR", Reply{550, []string{"a\nb\rc"}}, "550 a b c\r\n"},
		{"NUL", Reply{550, []string{"a\x00b"}}, "550 a b\r\n"},
		{"middle line like an end", Reply{213, []string{"x", "213 forged", "end"}}, "213-x\r\n 213 forged\r\n213 end\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendReply(nil, tt.r))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			// Whatever the text, a client reads exactly one reply.
			tp := textproto.NewReader(bufio.NewReader(strings.NewReader(got + "999 next\r\n")))
			if code, _, err := tp.ReadResponse(tt.r.Code); err != nil || code != tt.r.Code {
				t.Fatalf("first reply: %d %v", code, err)
			}
			if code, _, _ := tp.ReadResponse(0); code != 999 {
				t.Errorf("second reply read as %d: the first one spilled over", code)
			}
		})
	}
}
