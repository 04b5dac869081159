//go:build !linux

package local

import (
	"errors"
	"os"
)

// Extended attributes are used on Linux only; elsewhere checksums are
// computed on request.
var (
	errNoAttr           = errors.New("no such attribute")
	errXattrUnsupported = errors.New("extended attributes are not used on this system")
)

func fsetxattr(*os.File, string, []byte) error   { return errXattrUnsupported }
func fremovexattr(*os.File, string) error        { return errXattrUnsupported }
func fgetxattr(*os.File, string) ([]byte, error) { return nil, errXattrUnsupported }
