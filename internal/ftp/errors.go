package ftp

import (
	"context"
	"errors"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// storageErrors maps storage errors to replies: the one place where backend
// failures become reply codes. The first match wins. Texts are generic on
// purpose: the error itself, which may carry server paths, goes to the log.
var storageErrors = []struct {
	err  error
	code int
	text string
}{
	{storage.ErrNotExist, 550, "No such file or directory."},
	{storage.ErrPermission, 550, "Permission denied."},
	{storage.ErrExist, 550, "File exists."},
	{storage.ErrNotEmpty, 550, "Directory not empty."},
	{storage.ErrIsDir, 550, "Is a directory."},
	{storage.ErrNotDir, 550, "Not a directory."},
	{storage.ErrInvalidName, 553, "File name not allowed."},
	{storage.ErrNoSpace, 452, "Insufficient storage space."},
	{storage.ErrQuota, 552, "Storage quota exceeded."},
	{storage.ErrUnsupported, 502, "Not supported by this server's storage."},
	{storage.ErrMountPoint, 550, "That is a virtual folder of your account: it cannot be removed, renamed or changed."},
	{context.Canceled, 426, "Operation cancelled."},
	{context.DeadlineExceeded, 451, "Storage did not answer in time."},
}

// storageReply turns a storage error into a reply and logs unexpected ones.
func (s *Session) storageReply(op, path string, err error) Reply {
	// A quota refusal carries its figures, which are the user's to know.
	var qe *storage.QuotaError
	if errors.As(err, &qe) {
		s.log.Info("quota exceeded", "op", op, "path", path, "err", err)
		return Reply{Code: 552, Lines: []string{qe.Error()}}
	}
	// So does a rename across virtual folders, which names them.
	var ce *storage.CrossFolderError
	if errors.As(err, &ce) {
		s.log.Debug("storage", "op", op, "path", path, "err", err)
		return Reply{Code: 553, Lines: []string{ce.Error()}}
	}
	for _, m := range storageErrors {
		if errors.Is(err, m.err) {
			s.log.Debug("storage", "op", op, "path", path, "err", err)
			return Reply{Code: m.code, Lines: []string{m.text}}
		}
	}
	s.log.Error("storage error", "op", op, "path", path, "err", err)
	return Reply{Code: 451, Lines: []string{"Local error in processing."}}
}

func (s *Session) replyStorageErr(op, path string, err error) {
	s.writeReply(s.storageReply(op, path, err))
}
