//go:build !linux

package local

import (
	"errors"
	"io/fs"
	"os"
)

// Without openat2 every operation takes the os.Root path; these are never
// reached with a descriptor.

var errNoBeneath = errors.New("openat2 unavailable")

func haveOpenat2(*os.Root) bool { return false }

func (t *tree) openRegularBeneath(string, int, fs.FileMode) (*os.File, fs.FileInfo, error) {
	return nil, nil, errNoBeneath
}

func (t *tree) createAtomicBeneath(string, string, bool) (*upload, error) { return nil, errNoBeneath }

func dirEntry(int, string) (fs.FileInfo, error) { return nil, errNoBeneath }
func renameIn(int, string, string) error        { return errNoBeneath }
func linkIn(int, string, string) error          { return errNoBeneath }
func unlinkIn(int, string) error                { return errNoBeneath }
func closeFd(int)                               {}
