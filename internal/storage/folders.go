package storage

import (
	"errors"
	"fmt"
)

// Errors of trees made of several storages (virtual folders, see
// internal/storage/mounts).
var (
	// ErrCrossFolder: a rename whose source and target are in different
	// folders, which are separate storage. See CrossFolderError.
	ErrCrossFolder = errors.New("rename across folders")
	// ErrMountPoint: the operation would remove, rename or change a
	// folder's mount point (or a directory that leads to one), which the
	// user's configuration defines, not the user.
	ErrMountPoint = errors.New("is a virtual folder's mount point")
)

// CrossFolderError is a rename refused because From and To, virtual
// paths, are in different folders ("/" for the user's own tree). Its text
// names only those, so it is safe to send to the client. It matches
// ErrCrossFolder with errors.Is.
type CrossFolderError struct {
	From, To string
}

func (e *CrossFolderError) Error() string {
	return fmt.Sprintf("Cannot rename across folders: %s and %s are separate storage; download and upload instead.", e.From, e.To)
}

// Unwrap makes errors.Is(err, ErrCrossFolder) true.
func (e *CrossFolderError) Unwrap() error { return ErrCrossFolder }
