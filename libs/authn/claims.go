// Package authn verifies LIMEN access tokens: EdDSA-signed JWTs whose keys are published by auth-service
// as a JWKS. Every service and the gateway verify the same way; only auth-service signs.
package authn

import (
	"strconv"

	"github.com/golang-jwt/jwt/v5"
)

// Roles a user can hold.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// Token types, carried in the `typ` claim so a refresh token is never taken for an access token.
const (
	TokenTypeAccess  = "access"
	TokenTypeRefresh = "refresh"
)

// SigningMethod is the only algorithm LIMEN signs with and accepts.
var SigningMethod = jwt.SigningMethodEdDSA

// Claims are the contract's access-token claims.
type Claims struct {
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
	Role     string `json:"role"`
	// Approved is the account's approval when the token was signed; for clients that read the
	// payload. Tokens go to approved accounts only, and a suspension raises Version, so a verifier
	// need not check it.
	Approved bool   `json:"approved"`
	Type     string `json:"typ"`
	// Version is the user's token version when the token was signed: auth-service raises it whenever
	// the user's role or approval changes, which revokes every token signed before.
	Version int64 `json:"ver"`
	// SessionID names the login (refresh-token family) the token belongs to; logging out ends it.
	SessionID string `json:"sid,omitempty"`
	jwt.RegisteredClaims
}

// IsAdmin reports whether the token grants admin rights.
func (c *Claims) IsAdmin() bool { return c.Role == RoleAdmin }

// Subject is the user id as the `sub` claim carries it.
func Subject(userID int64) string { return strconv.FormatInt(userID, 10) }
