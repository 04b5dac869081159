package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/certs"
	"github.com/cloudftpd/cloudftpd/internal/config"
	"github.com/cloudftpd/cloudftpd/internal/server"
)

// inprocServer is cloudftpd running inside this process, for the smoke test
// and for CPU/heap profiles of a workload (the server has no pprof
// endpoint).
type inprocServer struct {
	srv      *server.Server
	Plain    string // control address of the plain listener
	TLS      string // control address of the tls = "required" listener
	Home     string // the user's home on disk
	User     string
	Password string
}

// startInproc serves root with one user "bench" (all permissions, home
// root/bench) on a plain and an FTPS listener on 127.0.0.1. storage, when
// not empty, replaces the body of the [storage] section (local storage in
// root/homes).
func startInproc(root, storage string) (*inprocServer, error) {
	if storage == "" {
		storage = fmt.Sprintf("backend = \"local\"\nroot = %q", filepath.Join(root, "homes"))
	}
	usersFile := filepath.Join(root, "users.toml")
	certFile := filepath.Join(root, "cert.pem")
	keyFile := filepath.Join(root, "key.pem")
	if err := certs.SelfSigned([]string{"localhost", "127.0.0.1"}, 24*time.Hour, certFile, keyFile); err != nil {
		return nil, err
	}
	text := fmt.Sprintf(`
[server]
idle_timeout = "10m"
login_timeout = "10m"
data_timeout = "30s"
stall_timeout = "1m"

[[listener]]
address = "127.0.0.1:0"

[[listener]]
address = "127.0.0.1:0"
tls = "required"
tls_cert = %q
tls_key = %q

[storage]
%s

[auth]
users_file = %q

[log]
level = "warn"
`, certFile, keyFile, storage, usersFile)
	const user, password = "bench", "bench-password"
	hash, err := auth.HashPassword(password)
	if err != nil {
		return nil, err
	}
	all, err := auth.ParsePermissions([]string{"all"})
	if err != nil {
		return nil, err
	}
	uf := &auth.UsersFile{}
	if err := uf.Add(user, hash, user, all); err != nil {
		return nil, err
	}
	if err := uf.Save(usersFile); err != nil {
		return nil, err
	}
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		return nil, err
	}
	home := filepath.Join(root, "homes", user)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, server.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		return nil, err
	}
	addrs := srv.Addrs()
	return &inprocServer{srv: srv, Plain: addrs[0].String(), TLS: addrs[1].String(), Home: home, User: user, Password: password}, nil
}

func (s *inprocServer) target(tls bool) *target {
	t := &target{Addr: s.Plain, User: s.User, Pass: s.Password, Timeout: 30 * time.Second}
	if tls {
		t.Addr, t.TLS = s.TLS, true
	}
	return t
}

func (s *inprocServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}
