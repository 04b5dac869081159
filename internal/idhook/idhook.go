// Package idhook is a user store that asks an HTTP service, the identity
// hook, about every login: cloudftpd POSTs the user name, password,
// protocol, server id, client address and listener as JSON, and the hook
// answers with the user's home, permissions, TLS policy and limits, or
// refuses.
//
// The answer may be written in cloudftpd's own terms (the keys of a
// users-file entry: home, permissions, tls, max_sessions, quota_bytes,
// [[dir]] rules...) or in AWS Transfer Family's custom identity provider
// terms (HomeDirectory, HomeDirectoryType, HomeDirectoryDetails), so that
// a Lambda written for Transfer Family can serve cloudftpd unchanged.
//
// Failures are told apart from refusals: a refusal (HTTP 401 or 403, an
// empty answer, {}) is auth.ErrBadCredentials, the 530 of a wrong
// password, scored by the defender; a hook that is down, slow, broken or
// answers what cloudftpd cannot serve is any other error, which the
// protocol layer answers 421 without blaming the client. Accepted logins
// are cached for a short time under a keyed hash of the whole request,
// never the password itself.
package idhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cloudftpd/cloudftpd/internal/auth"
	"github.com/cloudftpd/cloudftpd/internal/events/delivery"
)

// maxAnswer bounds the answer read: a user's settings fit in a few KiB;
// anything larger is a hook gone wrong, not a user.
const maxAnswer = 1 << 20

// Options configures a Hook (the [auth.http] table).
type Options struct {
	URL string
	// Timeout bounds one call, connecting included; it must be > 0.
	Timeout time.Duration
	// CacheTTL is how long an accepted login is reused; 0 caches nothing.
	CacheTTL time.Duration
	// Secret signs each request (delivery.Signature); "" signs nothing.
	Secret string
	// BearerToken is sent as "Authorization: Bearer ..."; "" sends none.
	BearerToken string
	// ServerID is sent as server_id (and serverId) in every request.
	ServerID string
	// DefaultPermissions are the permissions of an answer without any.
	DefaultPermissions auth.Permissions
	// HomeDirectoryRoot is the Transfer Family path of the storage root
	// ("/bucket/prefix"); HomeDirectory and Target below it map to homes
	// relative to the root. "" means "/".
	HomeDirectoryRoot string
	// Anonymous answers "anonymous" and "ftp" locally, read-only in
	// AnonymousHome ("" means "pub"), without asking the hook.
	Anonymous     bool
	AnonymousHome string
	// Logger receives debug lines about answers; never passwords. Nil
	// discards.
	Logger *slog.Logger
	// Client makes the requests; nil builds one that follows no redirect.
	Client *http.Client
}

// Hook is an auth.Authenticator backed by an identity hook. It is safe for
// concurrent use.
//
// It implements neither auth.Lister (the hook answers logins, it cannot
// list users, so the retention sweep has nobody to sweep for) nor
// ftp.ControlTLSPolicy: a user's tls setting is only known once the hook
// has seen the password, after the USER at which a clear control
// connection would be refused, so only the listener's TLS policy applies
// at USER. A tls = "required" in an answer is still applied: the protocol
// layer refuses such a login on a clear connection at PASS (530 "TLS
// required"), after the password was sent in clear, which only the
// listener's own tls = "required" can prevent.
type Hook struct {
	opts   Options
	url    string // redacted, for messages
	log    *slog.Logger
	client *http.Client
	cache  *answerCache
	now    func() time.Time
}

var _ auth.Authenticator = (*Hook)(nil)

// New returns a Hook for opts.
func New(opts Options) (*Hook, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("idhook: url %q is not an http:// or https:// URL", opts.URL)
	}
	if opts.Timeout <= 0 {
		return nil, errors.New("idhook: timeout must be positive")
	}
	if opts.DefaultPermissions == 0 {
		return nil, errors.New("idhook: default permissions must not be empty")
	}
	if opts.HomeDirectoryRoot == "" {
		opts.HomeDirectoryRoot = "/"
	}
	if opts.AnonymousHome == "" {
		opts.AnonymousHome = "pub"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := opts.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		client = &http.Client{
			Transport: tr,
			// A redirect is an answer to report, not to follow: a POST
			// carrying a password must not be replayed elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Hook{
		opts:   opts,
		url:    u.Redacted(),
		log:    log,
		client: client,
		cache:  newAnswerCache(opts.CacheTTL, defaultCacheSize),
		now:    time.Now,
	}, nil
}

// Request is the JSON body POSTed to the hook. The Transfer Family names
// (serverId, sourceIp) are sent beside cloudftpd's, so that a function
// written for Transfer Family's custom identity provider reads what it
// expects.
type Request struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Protocol is "FTP", or "FTPS" when the control connection is
	// protected by TLS.
	Protocol   string `json:"protocol"`
	ServerID   string `json:"server_id"`
	SourceIP   string `json:"source_ip"`
	Listener   string `json:"listener"`
	TFServerID string `json:"serverId"`
	TFSourceIP string `json:"sourceIp"`
}

// Authenticate implements auth.Authenticator: anonymous names are answered
// locally when allowed, an accepted login within CacheTTL from the cache,
// anything else by the hook. It never waits longer than Timeout for the
// hook.
func (h *Hook) Authenticate(ctx context.Context, name, password string) (*auth.User, error) {
	if h.opts.Anonymous && (strings.EqualFold(name, "anonymous") || strings.EqualFold(name, "ftp")) {
		return &auth.User{Name: strings.ToLower(name), Home: h.opts.AnonymousHome, Perms: auth.PermList | auth.PermDownload, Anonymous: true}, nil
	}
	if err := checkName(name); err != nil {
		// The hook is not asked about a name no user can have.
		h.log.Debug("idhook: name refused without asking", "err", err)
		return nil, auth.ErrUnknownUser
	}
	li, _ := auth.LoginInfoFrom(ctx)
	req := Request{
		Username: name,
		Password: password,
		Protocol: "FTP",
		ServerID: h.opts.ServerID,
		Listener: li.Listener,
	}
	if li.TLS {
		req.Protocol = "FTPS"
	}
	if li.Client.IsValid() {
		req.SourceIP = li.Client.String()
	}
	req.TFServerID, req.TFSourceIP = req.ServerID, req.SourceIP

	key := h.cache.sum(req)
	if u, ok := h.cache.get(key); ok {
		return u, nil
	}
	u, err := h.ask(ctx, req)
	if err != nil {
		return nil, err
	}
	h.cache.add(key, *u)
	return u, nil
}

// ask POSTs req and reads the answer.
func (h *Hook) ask(ctx context.Context, req Request) (*auth.User, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("idhook: encoding the request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.opts.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("idhook: POST %s: %w", h.url, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", "cloudftpd-idhook/1")
	if h.opts.Secret != "" {
		ts := h.now().Unix()
		t := strconv.FormatInt(ts, 10)
		hr.Header.Set(delivery.HeaderTimestamp, t)
		hr.Header.Set(delivery.HeaderSignature, "t="+t+",v1="+delivery.Signature([]byte(h.opts.Secret), ts, body))
	}
	if h.opts.BearerToken != "" {
		hr.Header.Set("Authorization", "Bearer "+h.opts.BearerToken)
	}
	resp, err := h.client.Do(hr)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("idhook: POST %s: no answer within %v", h.url, h.opts.Timeout)
		}
		// url.Error repeats the unredacted URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("idhook: POST %s: %w", h.url, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("idhook: POST %s: answer not read within %v", h.url, h.opts.Timeout)
		}
		return nil, fmt.Errorf("idhook: POST %s: reading the answer: %w", h.url, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNoContent:
		h.log.Debug("idhook: login refused", "user", req.Username, "status", resp.StatusCode)
		return nil, auth.ErrBadCredentials
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("idhook: POST %s: %s: %q", h.url, resp.Status, snippet(answer))
	case len(answer) > maxAnswer:
		return nil, fmt.Errorf("idhook: POST %s: answer larger than %d bytes", h.url, maxAnswer)
	}
	u, err := h.parseAnswer(req.Username, answer)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			h.log.Debug("idhook: login refused", "user", req.Username, "status", resp.StatusCode, "answer", "empty")
			return nil, err
		}
		return nil, fmt.Errorf("idhook: POST %s: answer for %q: %w", h.url, req.Username, err)
	}
	return u, nil
}

// snippet is the start of an error answer, for the log.
func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// checkName refuses names that could not be an account: the same rules
// as the users file's, since a name is also the default home.
func checkName(name string) error {
	switch {
	case name == "" || len(name) > 256 || !utf8.ValidString(name):
		return fmt.Errorf("name %q: empty, too long or not UTF-8", name)
	case name == "." || name == ".." || strings.ContainsAny(name, `/\`):
		return fmt.Errorf("name %q: \".\", \"..\" or a slash", name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("name %q: whitespace or a control character", name)
		}
	}
	return nil
}
