package http

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/web"
)

// Authentication says how Authenticate finds a request's access token.
type Authentication struct {
	Verifier *authn.Verifier
	// QueryToken takes the token from `?token=` when there is one: browsers cannot set headers on a
	// WebSocket. Otherwise, and always without it, the token is `Authorization: Bearer`, or with no
	// Authorization header the session cookie.
	QueryToken bool
}

// caller is who Authenticate let through.
type caller struct {
	claims *authn.Claims
	// token is the access token itself. The one Authenticate hands on is a copy, which the live status
	// socket keeps for as long as it is open; check's aliases the request's buffers, which Fiber reuses
	// once the handler returns.
	token string
	// fromCookie: the token came from the session cookie, which the browser sends by itself.
	fromCookie bool
}

// localCaller is the Fiber local under which Authenticate hands the caller on.
const localCaller = "limen.caller"

// Authenticate is the gateway's one access-token check (check), in front of the live status socket
// and, called by the proxy itself, of every route that is not public: a request without a valid token
// (missing, expired, signed by another key, or revoked since by auth-service) is answered 401
// "Authentication required", and a valid one's caller is handed on (callerOf). A browser session's
// token comes from its cookie (contract.SessionCookie), which the browser attaches to requests other
// sites make too: such a request that changes state must also echo the CSRF cookie in
// contract.CSRFHeader, which only the session's own pages can read (403 otherwise). A bearer token is
// never sent by itself, so it needs no CSRF token.
func Authenticate(a Authentication) fiber.Handler {
	return func(c *fiber.Ctx) error {
		who, err := a.check(c)
		if err != nil {
			return err
		}
		who.token = strings.Clone(who.token)
		c.Locals(localCaller, who)
		return c.Next()
	}
}

// check is Authenticate's check, whose caller is valid until the handler returns.
func (a Authentication) check(c *fiber.Ctx) (caller, error) {
	token, fromCookie := "", false
	if a.QueryToken {
		token = c.Query("token")
	}
	if token == "" {
		if header := c.Get(fiber.HeaderAuthorization); header != "" {
			token = authn.BearerToken(header)
		} else {
			token, fromCookie = c.Cookies(contract.SessionCookie), true
		}
	}
	claims, err := a.Verifier.Verify(token)
	if err != nil {
		return caller{}, web.Unauthorized()
	}
	if fromCookie && changesState(c.Method()) && !csrfMatches(c) {
		return caller{}, web.NewError(http.StatusForbidden, "Invalid or missing CSRF token")
	}
	return caller{claims: claims, token: token, fromCookie: fromCookie}, nil
}

// changesState: every method but the safe ones (RFC 9110 9.2.1) may change something.
func changesState(method string) bool {
	return method != fiber.MethodGet && method != fiber.MethodHead && method != fiber.MethodOptions
}

// csrfMatches reports whether the request echoes its CSRF cookie in the CSRF header (double submit),
// compared in constant time.
func csrfMatches(c *fiber.Ctx) bool {
	cookie, header := c.Cookies(contract.CSRFCookie), c.Get(contract.CSRFHeader)
	return cookie != "" && subtle.ConstantTimeCompare([]byte(cookie), []byte(header)) == 1
}

// callerOf is the caller Authenticate let through.
func callerOf(c *fiber.Ctx) (caller, bool) {
	who, ok := c.Locals(localCaller).(caller)
	return who, ok
}
