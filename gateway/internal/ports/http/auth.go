package http

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"limen/libs/authn"
	"limen/libs/web"
)

// Authentication says how Authenticate finds a request's access token.
type Authentication struct {
	Verifier *authn.Verifier
	// QueryToken takes the token from `?token=` when there is one: browsers cannot set headers on a
	// WebSocket. Otherwise, and always without it, the token is `Authorization: Bearer`.
	QueryToken bool
	// Open reports the requests that go on without a token (nil: none).
	Open func(c *fiber.Ctx) bool
}

// caller is who Authenticate let through.
type caller struct {
	claims *authn.Claims
	// token is the access token itself, which the live status socket keeps for as long as it is
	// open: a copy, since Fiber's strings alias buffers it reuses once the handler returns.
	token string
}

// localCaller is the Fiber local under which Authenticate hands the caller on.
const localCaller = "limen.caller"

// Authenticate is the gateway's one access-token check, in front of the proxy and the live status
// socket: unless Open lets the request go on without one, a request without a valid token (missing,
// expired, signed by another key, or revoked since by auth-service) is answered 401 "Authentication
// required", and a valid one's caller is handed on (callerOf).
func Authenticate(a Authentication) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if a.Open != nil && a.Open(c) {
			return c.Next()
		}
		token := ""
		if a.QueryToken {
			token = c.Query("token")
		}
		if token == "" {
			token = authn.BearerToken(c.Get(fiber.HeaderAuthorization))
		}
		claims, err := a.Verifier.Verify(token)
		if err != nil {
			return web.Unauthorized()
		}
		c.Locals(localCaller, caller{claims: claims, token: strings.Clone(token)})
		return c.Next()
	}
}

// callerOf is the caller Authenticate let through, and false when the request went on without a
// token.
func callerOf(c *fiber.Ctx) (caller, bool) {
	who, ok := c.Locals(localCaller).(caller)
	return who, ok
}
