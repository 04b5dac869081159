package local

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// opError is the error every operation returns: the operation and the
// virtual path, never a host path, since error text ends up in logs that
// users may be shown. It unwraps to the storage sentinel chosen for the
// failure when there is one, and otherwise to the underlying cause, so
// errors.Is matches exactly one of the protocol layer's categories (a raw
// ENOTEMPTY would also match fs.ErrExist).
type opError struct {
	op   string // "open", "rename", ...
	name string // virtual path(s)
	kind error  // storage sentinel, or nil
	err  error  // cause, without host paths
}

func (e *opError) Error() string {
	return "local: " + e.op + " " + e.name + ": " + e.err.Error()
}

func (e *opError) Unwrap() error {
	if e.kind != nil {
		return e.kind
	}
	return e.err
}

// mapErr wraps err from the os package as an opError for op on the virtual
// path name. It drops the os error's own path, which is a host path for
// errors from an *os.File.
func mapErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var oe *opError
	if errors.As(err, &oe) {
		return err
	}
	cause := err
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		cause = pe.Err
	case errors.As(err, &le):
		cause = le.Err
	}
	var se *os.SyscallError
	if errors.As(cause, &se) {
		cause = se.Err
	}
	return &opError{op: op, name: name, kind: classify(cause), err: cause}
}

// classify picks the storage sentinel for causes that do not match one by
// themselves (ENOENT, EEXIST and EACCES already match fs errors).
func classify(cause error) error {
	var errno syscall.Errno
	if errors.As(cause, &errno) {
		switch errno {
		case syscall.ENOSPC, syscall.EFBIG:
			return storage.ErrNoSpace
		case syscall.EDQUOT:
			return storage.ErrQuota
		case syscall.ENOTEMPTY:
			return storage.ErrNotEmpty
		case syscall.EISDIR:
			return storage.ErrIsDir
		case syscall.ENOTDIR:
			return storage.ErrNotDir
		case syscall.ENAMETOOLONG:
			return storage.ErrInvalidName
		case syscall.EROFS, syscall.ELOOP:
			// ELOOP: os.Root gives up on symlink chains and loops.
			return storage.ErrPermission
		case syscall.EXDEV, syscall.ENOSYS:
			return storage.ErrUnsupported
		}
		// Not in the switch: on Linux ENOTSUP and EOPNOTSUPP are one value.
		if errno == syscall.ENOTSUP || errno == syscall.EOPNOTSUPP {
			return storage.ErrUnsupported
		}
		return nil
	}
	if isEscape(cause) {
		return storage.ErrPermission
	}
	return nil
}

// isEscape reports whether err is os.Root refusing a path that leads outside
// it ("..", an absolute path, or a symlink pointing out). The os package does
// not export that error, so it is recognised by its text; the jail tests
// fail if that text ever changes.
func isEscape(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "path escapes from parent" {
			return true
		}
	}
	return false
}

// fileErr sanitises an error from a method of an upload's *os.File. Errors
// that did not come from the file (the reader's, in ReadFrom) pass
// unchanged, so a dropped connection is not reported as a disk failure.
func fileErr(op, name string, err error) error {
	var pe *fs.PathError
	if err == nil || !errors.As(err, &pe) {
		return err
	}
	return mapErr(op, name, err)
}
