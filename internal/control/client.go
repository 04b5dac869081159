package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudftpd/cloudftpd/internal/defender"
)

// Client calls the API of the server listening on SocketPath. Its zero
// value with SocketPath set is ready; it must not be copied after first
// use.
type Client struct {
	// SocketPath is the control socket; "" means DefaultSocket.
	SocketPath string

	once sync.Once
	http *http.Client
}

// Error is an error answer of the API. It wraps defender.ErrNotBanned,
// defender.ErrAllowed or ErrUnavailable according to its code, so callers
// can use errors.Is as with the Service.
type Error struct {
	Status  int    // HTTP status
	Code    string // "bad_request", "not_banned", ...
	Message string
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Unwrap() error {
	switch e.Code {
	case codeNotBanned:
		return defender.ErrNotBanned
	case codeAllowed:
		return defender.ErrAllowed
	case codeUnavailable:
		return ErrUnavailable
	case codeUnknownUser:
		return ErrUnknownUser
	}
	return nil
}

func (c *Client) socket() string {
	if c.SocketPath == "" {
		return DefaultSocket
	}
	return c.SocketPath
}

func (c *Client) client() *http.Client {
	c.once.Do(func() {
		path := c.socket()
		c.http = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			MaxIdleConns:    1,
			IdleConnTimeout: 30 * time.Second,
		}}
	})
	return c.http
}

// ListBans returns the bans in force.
func (c *Client) ListBans(ctx context.Context) ([]defender.Ban, error) {
	var out bansJSON
	if err := c.do(ctx, http.MethodGet, "/v1/bans", nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	bans := make([]defender.Ban, 0, len(out.Bans))
	for _, j := range out.Bans {
		b, err := fromJSON(j)
		if err != nil {
			return nil, fmt.Errorf("control: the server sent a bad ban: %w", err)
		}
		bans = append(bans, b)
	}
	return bans, nil
}

// Ban bans p for d (0: the server's own ban time; defender.Forever: until
// lifted) and returns the ban as the server made it.
func (c *Client) Ban(ctx context.Context, p netip.Prefix, d time.Duration, reason string) (defender.Ban, error) {
	req := banRequest{Prefix: p.String(), Duration: formatDuration(d), Reason: reason}
	var out banJSON
	if err := c.do(ctx, http.MethodPost, "/v1/bans", req, http.StatusCreated, &out); err != nil {
		return defender.Ban{}, err
	}
	b, err := fromJSON(out)
	if err != nil {
		return defender.Ban{}, fmt.Errorf("control: the server sent a bad ban: %w", err)
	}
	return b, nil
}

// Unban lifts the ban of p; an error wrapping defender.ErrNotBanned when
// p has none of its own.
func (c *Client) Unban(ctx context.Context, p netip.Prefix) error {
	// The prefix goes in the path as is: its "/" and ":" are what the
	// route's {prefix...} expects.
	return c.do(ctx, http.MethodDelete, "/v1/bans/"+p.String(), nil, http.StatusNoContent, nil)
}

// Call sends one request of the operations API the socket also serves
// (internal/api: GET /v1/sessions, POST /v1/reload, ...) with in as its
// JSON body (nil for none), and decodes an answer of status want into
// out (nil to ignore it); any other answer is an *Error.
func (c *Client) Call(ctx context.Context, method, path string, in any, want int, out any) error {
	return c.do(ctx, method, path, in, want, out)
}

// do sends one request and decodes the answer into out, or the error body
// into an *Error.
func (c *Client) do(ctx context.Context, method, path string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("control: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://cloudftpd"+path, body)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("control: reading the answer: %w", err)
	}
	if resp.StatusCode != want {
		var e errorJSON
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			// Not this API: an old server, or something else on the socket.
			e.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
		}
		return &Error{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control: the server's answer: %w", err)
	}
	return nil
}

// dialError explains the usual reasons the socket cannot be reached.
func (c *Client) dialError(err error) error {
	var hint string
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		hint = "is the server running? (--socket names another socket)"
	case errors.Is(err, syscall.EACCES):
		hint = "permission denied: run as the server's user or a member of the socket's group"
	}
	if hint != "" {
		return fmt.Errorf("control: cannot reach the server at %s: %s: %w", c.socket(), hint, err)
	}
	return fmt.Errorf("control: %s: %w", c.socket(), err)
}
