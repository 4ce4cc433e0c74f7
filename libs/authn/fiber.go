package authn

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"limen/libs/web"
)

type claimsKey struct{}

// BearerToken is the token of an `Authorization: Bearer <token>` header, or "".
func BearerToken(header string) string {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// RequireToken answers 401 unless the request carries a valid access token; the claims are then
// available through ClaimsOf.
func RequireToken(v *Verifier) fiber.Handler {
	return func(c *fiber.Ctx) error {
		claims, err := v.Verify(BearerToken(c.Get(fiber.HeaderAuthorization)))
		if err != nil {
			return web.Unauthorized()
		}
		c.Locals(claimsKey{}, claims)
		return c.Next()
	}
}

// RequireServiceToken admits the peer services that present the shared internal token
// (LIMEN_INTERNAL_TOKEN) as a bearer token, on the /internal routes the gateway never forwards. With
// no token configured nobody is admitted.
func RequireServiceToken(token string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		got := BearerToken(c.Get(fiber.HeaderAuthorization))
		if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return web.Unauthorized()
		}
		return c.Next()
	}
}

// RequireAdmin answers 403 unless RequireToken let an admin through.
func RequireAdmin() fiber.Handler {
	return func(c *fiber.Ctx) error {
		claims := ClaimsOf(c)
		if claims == nil {
			return web.Unauthorized()
		}
		if !claims.IsAdmin() {
			return web.NewError(http.StatusForbidden, "Admin access required")
		}
		return c.Next()
	}
}

// ClaimsOf is what RequireToken verified for this request, or nil.
func ClaimsOf(c *fiber.Ctx) *Claims {
	claims, _ := c.Locals(claimsKey{}).(*Claims)
	return claims
}
