package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cloudftpd/cloudftpd/internal/api"
	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/pgusers"
)

// The operations API's user edits, on the running user store: the users
// file (edited, saved atomically and handed to the running
// authenticator at once, as SIGHUP would) or the PostgreSQL users table
// (every node sees the change through LISTEN/NOTIFY). The identity hook
// and the system accounts are read-only here.

// userWriter is a user store the API can edit.
type userWriter interface {
	add(ctx context.Context, e auth.UserEntry) error
	edit(ctx context.Context, name string, edit func(*auth.UserEntry) error) error
	del(ctx context.Context, name string) error
}

// userWriter returns the running store's writer, or an error wrapping
// api.ErrReadOnlyStore that says where the users come from.
func (s *Server) userWriter() (userWriter, error) {
	s.mu.Lock()
	w := s.wiring
	s.mu.Unlock()
	a := &w.Config.Auth
	switch {
	case s.opts.Auth != nil:
		return nil, fmt.Errorf("%w: the users come from the program embedding the server", api.ErrReadOnlyStore)
	case a.Store == config.StorePostgres && w.pgPool != nil:
		return pgWriter{s: s, store: pgusers.NewStore(w.pgPool)}, nil
	case a.Store == config.StoreHTTP:
		return nil, fmt.Errorf("%w: auth.store = \"http\": the identity hook decides who logs in; change users where it looks them up", api.ErrReadOnlyStore)
	case a.Store == config.StoreSystem:
		return nil, fmt.Errorf("%w: auth.store = \"system\": the users are the system's accounts (useradd, passwd)", api.ErrReadOnlyStore)
	case a.UsersFilePolicy() == config.PolicyRequired && w.fileAuth != nil:
		return fileWriter{s: s}, nil
	}
	return nil, fmt.Errorf("%w: anonymous logins only (the config has no auth.users_file)", api.ErrReadOnlyStore)
}

func (a apiService) AddUser(ctx context.Context, e auth.UserEntry) error {
	uw, err := a.s.userWriter()
	if err != nil {
		return err
	}
	if err := a.s.checkVolumes(e); err != nil {
		return err
	}
	return uw.add(ctx, e)
}

func (a apiService) EditUser(ctx context.Context, name string, edit func(*auth.UserEntry) error) error {
	uw, err := a.s.userWriter()
	if err != nil {
		return err
	}
	return uw.edit(ctx, name, func(e *auth.UserEntry) error {
		if err := edit(e); err != nil {
			return err
		}
		return a.s.checkVolumes(*e)
	})
}

func (a apiService) DeleteUser(ctx context.Context, name string) error {
	uw, err := a.s.userWriter()
	if err != nil {
		return err
	}
	return uw.del(ctx, name)
}

// checkVolumes refuses a folder on a volume the config does not have:
// the user could not log in, and a users file with one would not load.
func (s *Server) checkVolumes(e auth.UserEntry) error {
	s.mu.Lock()
	vols := s.wiring.Config.Volumes
	s.mu.Unlock()
	for i, f := range e.Folders {
		if f.Volume != "" && !slices.ContainsFunc(vols, func(v config.Volume) bool { return v.Name == f.Volume }) {
			return fmt.Errorf("%w: folder[%d] %q: volume %q is not a [[volume]] of the config", api.ErrInvalidUser, i, f.Path, f.Volume)
		}
	}
	return nil
}

// fileWriter edits the users file of the running config.
type fileWriter struct{ s *Server }

// change loads the users file afresh (so a hand edit since the last
// reload is kept, not overwritten), changes it, saves it and gives it to
// the running authenticator. wireMu keeps a reload, and another edit,
// out meanwhile.
func (fw fileWriter) change(change func(f *auth.UsersFile) error) error {
	s := fw.s
	s.wireMu.Lock()
	defer s.wireMu.Unlock()
	s.mu.Lock()
	w := s.wiring
	s.mu.Unlock()
	if w.fileAuth == nil {
		return fmt.Errorf("%w: no users file is in use", api.ErrReadOnlyStore)
	}
	path := w.Config.Path(w.Config.Auth.UsersFile)
	uf, err := auth.LoadUsersFile(path)
	if err != nil {
		return fmt.Errorf("server: users file: %w", err)
	}
	if err := change(uf); err != nil {
		return err
	}
	if err := uf.Save(path); err != nil {
		return fmt.Errorf("server: users file: %w", err)
	}
	s.mu.Lock()
	w.Users = uf
	s.mu.Unlock()
	w.fileAuth.Reload(uf)
	s.logger.Info("users file changed through the API", "file", path)
	return nil
}

func (fw fileWriter) add(_ context.Context, e auth.UserEntry) error {
	return fw.change(func(f *auth.UsersFile) error {
		if f.Find(e.Name) != nil {
			return fmt.Errorf("%w: %q", api.ErrUserExists, e.Name)
		}
		perms, err := auth.ParsePermissions(e.Permissions)
		if err != nil {
			return fmt.Errorf("%w: permissions: %v", api.ErrInvalidUser, err)
		}
		if err := f.Add(e.Name, e.PasswordHash, e.Home, perms); err != nil {
			return fmt.Errorf("%w: %v", api.ErrInvalidUser, err)
		}
		return f.Update(e.Name, func(u *auth.UserEntry) error {
			*u = e
			return nil
		})
	})
}

func (fw fileWriter) edit(_ context.Context, name string, edit func(*auth.UserEntry) error) error {
	return fw.change(func(f *auth.UsersFile) error {
		if f.Find(name) == nil {
			return fmt.Errorf("%w: %q", api.ErrUnknownUser, name)
		}
		var editErr error
		err := f.Update(name, func(u *auth.UserEntry) error {
			editErr = edit(u)
			return editErr
		})
		if err != nil && editErr == nil {
			return fmt.Errorf("%w: %v", api.ErrInvalidUser, err)
		}
		return err
	})
}

func (fw fileWriter) del(_ context.Context, name string) error {
	return fw.change(func(f *auth.UsersFile) error {
		if f.Find(name) == nil {
			return fmt.Errorf("%w: %q", api.ErrUnknownUser, name)
		}
		return f.Delete(name)
	})
}

// pgWriter edits the users table.
type pgWriter struct {
	s     *Server
	store *pgusers.Store
}

func pgError(err error) error {
	switch {
	case errors.Is(err, pgusers.ErrNoUser):
		return fmt.Errorf("%w (%v)", api.ErrUnknownUser, err)
	case errors.Is(err, pgusers.ErrExists):
		return fmt.Errorf("%w (%v)", api.ErrUserExists, err)
	}
	return err
}

func (p pgWriter) add(ctx context.Context, e auth.UserEntry) error {
	err := pgError(p.store.Add(ctx, e))
	if err == nil {
		p.s.logger.Info("user added to the database through the API", "user", e.Name)
	}
	return err
}

func (p pgWriter) edit(ctx context.Context, name string, edit func(*auth.UserEntry) error) error {
	err := pgError(p.store.Update(ctx, name, edit))
	if err == nil {
		p.s.logger.Info("user changed in the database through the API", "user", name)
	}
	return err
}

func (p pgWriter) del(ctx context.Context, name string) error {
	err := pgError(p.store.Delete(ctx, name))
	if err == nil {
		p.s.logger.Info("user deleted from the database through the API", "user", name)
	}
	return err
}
