package ftp

import (
	"context"
	"fmt"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/storage"
	"github.com/cloudftpd/cloudftpd/internal/storage/mounts"
)

// openTree opens u's tree: the home, with the user's virtual folders
// mounted in it when there are any (README "Virtual folders"). A folder
// that cannot be opened fails the login, as the home would: a user who
// logs in without a folder would upload to the home instead.
func (s *Session) openTree(ctx context.Context, u *auth.User, home string) (storage.Storage, error) {
	tree, err := s.cfg.Storage.Home(ctx, home)
	if err != nil || len(u.Limits.Folders) == 0 {
		return tree, err
	}
	ms := make([]mounts.Mount, 0, len(u.Limits.Folders))
	closeAll := func() {
		tree.Close()
		for _, m := range ms {
			m.FS.Close()
		}
	}
	for _, f := range u.Limits.Folders {
		b := s.cfg.Storage
		if f.Volume != "" {
			b = s.cfg.Volumes[f.Volume]
			if b == nil {
				closeAll()
				return nil, fmt.Errorf("folder %s: no volume %q in the config", f.Path, f.Volume)
			}
		}
		ft, err := b.Home(ctx, f.Target)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("folder %s: %w", f.Path, err)
		}
		ms = append(ms, mounts.Mount{Path: f.Path, FS: ft})
	}
	m, err := mounts.New(tree, ms)
	if err != nil {
		closeAll()
		return nil, err
	}
	return m, nil
}

// fixed reports whether p is a virtual folder's mount point, or a
// directory that leads to one, which the user cannot remove or rename.
func (s *Session) fixed(p string) bool {
	m, ok := s.fs.(*mounts.FS)
	return ok && m.Fixed(p)
}

// homeTree is the user's own tree without the folders: what a quota
// counts.
func (s *Session) homeTree() storage.Storage {
	if m, ok := s.fs.(*mounts.FS); ok {
		return m.Home()
	}
	return s.fs
}
