package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/pgdb"
	"github.com/cloudftpd/cloudftpd/internal/pgusers"
)

// userStore is a store of users `cloudftpd user` can edit: the users
// file, or the PostgreSQL database of auth.store = "postgres". Edits are
// validated by the store as LoadUsersFile would validate them.
type userStore interface {
	// where names the store in messages: "users.toml", "the database".
	where() string
	list(ctx context.Context) ([]auth.UserEntry, error)
	// get returns nil when there is no such user.
	get(ctx context.Context, name string) (*auth.UserEntry, error)
	// exists is get for `user add`, for which a store that is not there
	// yet (no users file) is empty.
	exists(ctx context.Context, name string) (bool, error)
	add(ctx context.Context, e auth.UserEntry) error
	setPassword(ctx context.Context, name, hash string) error
	setLimits(ctx context.Context, name string, edit func(*auth.LimitsEntry)) error
	del(ctx context.Context, name string) error
	Close() error
}

// openUserStore finds the store to edit: --users names a file; else the
// config (--config or ./cloudftpd.toml) names a file or the database;
// else ./users.toml.
func openUserStore(usersFlag, configFlag string, stderr io.Writer) (userStore, error) {
	if usersFlag != "" {
		return &fileStore{path: usersFlag}, nil
	}
	path := configPath(configFlag)
	if path == "" {
		return &fileStore{path: "users.toml"}, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if cfg.Auth.Store == config.StorePostgres {
		pool, err := pgdb.Open(pgdb.OptionsFrom(cfg))
		if err != nil {
			return nil, err
		}
		return &dbStore{s: pgusers.NewStore(pool), close: pool.Close}, nil
	}
	if cfg.Auth.UsersFilePolicy() == config.PolicyOff {
		// Say so: the server (anonymous-only) would not read the file we
		// are about to use.
		fmt.Fprintln(stderr, "cloudftpd user: warning: the config sets no auth.users_file (anonymous logins only); using users.toml in the working directory")
		return &fileStore{path: "users.toml"}, nil
	}
	return &fileStore{path: cfg.Path(cfg.Auth.UsersFile)}, nil
}

// fileStore is the users file: each edit loads it, changes it and saves
// it atomically.
type fileStore struct{ path string }

func (s *fileStore) where() string { return s.path }
func (s *fileStore) Close() error  { return nil }

// load loads the users file, explaining a missing one.
func (s *fileStore) load() (*auth.UsersFile, error) {
	f, err := auth.LoadUsersFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no users file at %s (\"cloudftpd user add NAME\" creates it)", s.path)
	}
	return f, err
}

func (s *fileStore) list(context.Context) ([]auth.UserEntry, error) {
	f, err := s.load()
	if err != nil {
		return nil, err
	}
	return f.Users(), nil
}

func (s *fileStore) get(_ context.Context, name string) (*auth.UserEntry, error) {
	f, err := s.load()
	if err != nil {
		return nil, err
	}
	return f.Find(name), nil
}

func (s *fileStore) exists(_ context.Context, name string) (bool, error) {
	f, err := auth.LoadOrEmpty(s.path)
	if err != nil {
		return false, err
	}
	return f.Find(name) != nil, nil
}

func (s *fileStore) edit(change func(f *auth.UsersFile) error) error {
	f, err := s.load()
	if err != nil {
		return err
	}
	if err := change(f); err != nil {
		return err
	}
	return f.Save(s.path)
}

func (s *fileStore) add(_ context.Context, e auth.UserEntry) error {
	f, err := auth.LoadOrEmpty(s.path)
	if err != nil {
		return err
	}
	perms, err := auth.ParsePermissions(e.Permissions)
	if err != nil {
		return err
	}
	if err := f.Add(e.Name, e.PasswordHash, e.Home, perms); err != nil {
		return err
	}
	if err := f.SetLimits(e.Name, func(l *auth.LimitsEntry) { *l = e.LimitsEntry }); err != nil {
		return err
	}
	return f.Save(s.path)
}

func (s *fileStore) setPassword(_ context.Context, name, hash string) error {
	return s.edit(func(f *auth.UsersFile) error { return f.SetPassword(name, hash) })
}

func (s *fileStore) setLimits(_ context.Context, name string, edit func(*auth.LimitsEntry)) error {
	return s.edit(func(f *auth.UsersFile) error { return f.SetLimits(name, edit) })
}

func (s *fileStore) del(_ context.Context, name string) error {
	return s.edit(func(f *auth.UsersFile) error { return f.Delete(name) })
}

// dbStore is the users table of auth.store = "postgres"; a running
// server sees each edit within moments (LISTEN/NOTIFY).
type dbStore struct {
	s     *pgusers.Store
	close func()
}

func (s *dbStore) where() string { return "the database" }
func (s *dbStore) Close() error  { s.close(); return nil }
func (s *dbStore) list(ctx context.Context) ([]auth.UserEntry, error) {
	return s.s.List(ctx)
}
func (s *dbStore) get(ctx context.Context, name string) (*auth.UserEntry, error) {
	return s.s.Get(ctx, name)
}
func (s *dbStore) exists(ctx context.Context, name string) (bool, error) {
	e, err := s.s.Get(ctx, name)
	return e != nil, err
}
func (s *dbStore) add(ctx context.Context, e auth.UserEntry) error { return s.s.Add(ctx, e) }
func (s *dbStore) setPassword(ctx context.Context, name, hash string) error {
	return s.s.SetPassword(ctx, name, hash)
}
func (s *dbStore) setLimits(ctx context.Context, name string, edit func(*auth.LimitsEntry)) error {
	return s.s.SetLimits(ctx, name, edit)
}
func (s *dbStore) del(ctx context.Context, name string) error { return s.s.Delete(ctx, name) }
