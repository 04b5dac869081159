package local

import (
	"syscall"
	"time"
)

// accessTime reads the access time of name.
func accessTime(name string) (time.Time, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		return time.Time{}, false
	}
	return time.Unix(st.Atim.Unix()), true
}
