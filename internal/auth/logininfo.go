package auth

import (
	"context"
	"net/netip"
)

// LoginInfo is what the protocol layer knows about a login beyond the
// credentials, for user stores that decide by it or pass it on (the HTTP
// identity hook sends it to its service). Authenticator keeps its
// two-argument form: stores that do not care never see this.
type LoginInfo struct {
	// TLS is true when the control connection is protected (FTPS).
	TLS bool
	// Client is the client's address (after PROXY protocol, if any).
	Client netip.Addr
	// Listener is the listener's configured address.
	Listener string
}

type loginInfoKey struct{}

// WithLoginInfo returns ctx carrying li for the Authenticate call it is
// given to.
func WithLoginInfo(ctx context.Context, li LoginInfo) context.Context {
	return context.WithValue(ctx, loginInfoKey{}, li)
}

// LoginInfoFrom returns the LoginInfo of ctx; ok is false when the caller
// gave none (a test, the `cloudftpd user` command).
func LoginInfoFrom(ctx context.Context) (li LoginInfo, ok bool) {
	li, ok = ctx.Value(loginInfoKey{}).(LoginInfo)
	return li, ok
}
