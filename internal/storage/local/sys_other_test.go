//go:build !unix

package local

import (
	"errors"
	"testing"
)

func mkfifo(string) error { return errors.ErrUnsupported }

func hostID(*testing.T, string) string { return "" }
