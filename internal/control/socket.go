package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultSocket is where the server listens and the command line dials
// unless told otherwise; systemd's RuntimeDirectory=cloudftpd creates
// /run/cloudftpd for the service.
const DefaultSocket = "/run/cloudftpd/control.sock"

// SocketMode is the mode of the socket: the server's user and group may
// connect, nobody else. Connecting needs write permission.
const SocketMode fs.FileMode = 0o660

// Listen creates the control socket at path, creating its directory
// (mode 0750) if needed. A socket file that nobody answers on, left by a
// server that crashed, is replaced; one a running server answers on, or a
// file that is not a socket, is an error rather than something to delete.
//
// The socket is made in a private temporary directory, given SocketMode,
// then renamed into place, so it never exists at path with the looser mode
// the umask would give it. Closing the listener removes the socket file if
// it is still this listener's.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("control: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control: %s: another server is listening on it", path)
		}
		// Stale: the rename below replaces it.
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("control: %w", err)
	}

	tmpDir, err := os.MkdirTemp(dir, ".c") // mode 0700; a short name keeps the path within sun_path's 108 bytes
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	defer os.Remove(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	ul.SetUnlinkOnClose(false) // the file will not be at tmp; Close removes it at path
	fail := func(err error) (net.Listener, error) {
		ul.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(tmp, SocketMode); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &listener{UnixListener: ul, path: path, file: fi}, nil
}

// listener removes its socket file on Close, unless another server has
// replaced it meanwhile.
type listener struct {
	*net.UnixListener
	path string
	file fs.FileInfo
	once sync.Once
}

func (l *listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
			os.Remove(l.path)
		}
	})
	return err
}

// Serve serves h on a control socket at path (see Listen) until ctx is
// done, then shuts down, letting requests in flight finish for up to 5
// seconds. It returns nil after ctx is done.
func Serve(ctx context.Context, path string, h http.Handler) error {
	l, err := Listen(path)
	if err != nil {
		return err
	}
	return ServeListener(ctx, l, h)
}

// ServeListener is Serve on a listener from Listen, for a server that
// wants the socket's errors at start-up, before it serves.
func ServeListener(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	err := srv.Serve(l) // closes l, which removes the socket file
	cancel()
	<-shut
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("control: %w", err)
}
