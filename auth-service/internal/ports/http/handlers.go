// Package http is auth-service's Fiber port: it decodes requests, calls the use cases and renders
// the contract's bodies.
package http

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/auth-service/internal/app"
	"limen/libs/authn"
	"limen/libs/web"
)

// UseCases are what the handlers call.
type UseCases struct {
	Register    app.Register
	Login       *app.Login
	Refresh     *app.Refresh
	Logout      app.Logout
	CurrentUser app.CurrentUser
	ListUsers   app.ListUsers
	GetUser     app.GetUser
	ApproveUser app.ApproveUser
	ChangeRole  app.ChangeRole
	DeleteUser  app.DeleteUser
}

// Config is what the port needs besides the use cases.
type Config struct {
	JWKS         []byte
	Verifier     *authn.Verifier
	RefreshTTL   time.Duration
	CookieSecure bool
	// RequestTimeout bounds registration, login and refresh (see requestContext); 0: unbounded.
	RequestTimeout time.Duration
	Now            app.Clock
}

type handlers struct {
	uc  UseCases
	cfg Config
}

const refreshCookie = "refresh_token"

// Mount adds the contract's auth and admin routes to app.
func Mount(router fiber.Router, uc UseCases, cfg Config) {
	h := handlers{uc: uc, cfg: cfg}
	auth := router.Group("/api/auth")
	auth.Post("/register", h.register)
	auth.Post("/login", h.login)
	auth.Post("/refresh", h.refresh)
	auth.Get("/jwks", h.jwks)
	auth.Post("/logout", authn.RequireToken(cfg.Verifier), h.logout)
	auth.Get("/me", authn.RequireToken(cfg.Verifier), h.me)

	admin := router.Group("/api/admin", authn.RequireToken(cfg.Verifier), h.requireAdmin)
	admin.Get("/users", h.listUsers)
	admin.Get("/users/:id", h.getUser)
	admin.Put("/users/:id/approve", h.approveUser)
	admin.Put("/users/:id/role", h.changeRole)
	admin.Delete("/users/:id", h.deleteUser)
}

func callerOf(c *fiber.Ctx) app.Caller { return app.Caller{UserID: authn.ClaimsOf(c).UserID} }

func (h handlers) register(c *fiber.Ctx) error {
	var in credentialsRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	ctx, cancel := h.requestContext(c)
	defer cancel()
	u, err := h.uc.Register.Handle(ctx, in.Username, in.Password, clientIP(c))
	if err != nil {
		return toHTTP(c, err)
	}
	message := "User registered successfully"
	if !u.Approved {
		message = "User registered successfully. Waiting for admin approval"
	}
	return c.Status(http.StatusCreated).JSON(fiber.Map{"user": toUserResponse(u), "message": message})
}

func (h handlers) login(c *fiber.Ctx) error {
	var in credentialsRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	ctx, cancel := h.requestContext(c)
	defer cancel()
	s, err := h.uc.Login.Handle(ctx, in.Username, in.Password, clientIP(c))
	if err != nil {
		return toHTTP(c, err)
	}
	h.setRefreshCookie(c, s.RefreshToken, h.cfg.RefreshTTL)
	return c.JSON(toSessionResponse(s, h.cfg.Now()))
}

// refreshTokenOf takes the token from the body, else from the cookie; the body is optional.
func refreshTokenOf(c *fiber.Ctx) (string, error) {
	var in refreshRequest
	if len(c.Body()) > 0 {
		if err := web.DecodeJSON(c, &in); err != nil {
			return "", err
		}
	}
	if in.RefreshToken == "" {
		in.RefreshToken = c.Cookies(refreshCookie)
	}
	return in.RefreshToken, nil
}

func (h handlers) refresh(c *fiber.Ctx) error {
	token, err := refreshTokenOf(c)
	if err != nil {
		return err
	}
	ctx, cancel := h.requestContext(c)
	defer cancel()
	s, err := h.uc.Refresh.Handle(ctx, token, app.Client{IP: clientIP(c), UserAgent: c.Get(fiber.HeaderUserAgent)})
	if err != nil {
		return toHTTP(c, err)
	}
	h.setRefreshCookie(c, s.RefreshToken, h.cfg.RefreshTTL)
	return c.JSON(toSessionResponse(s, h.cfg.Now()))
}

func (h handlers) logout(c *fiber.Ctx) error {
	token, err := refreshTokenOf(c)
	if err != nil {
		return err
	}
	if err := h.uc.Logout.Handle(c.UserContext(), token); err != nil {
		return toHTTP(c, err)
	}
	h.setRefreshCookie(c, "", -1)
	return c.SendStatus(http.StatusNoContent)
}

// setRefreshCookie marks the cookie Secure when configured, and whenever the client came over TLS: a
// TLS connection, or X-Forwarded-Proto "https" from a trusted proxy (LIMEN_TRUSTED_PROXIES), as the
// gateway sets it. (Fiber's c.Protocol() would do too, but takes the header's leftmost value, and
// from anyone when no proxy is configured; web.ClientOf takes the value the last trusted hop added.)
func (h handlers) setRefreshCookie(c *fiber.Ctx, value string, ttl time.Duration) {
	c.Cookie(&fiber.Cookie{Name: refreshCookie, Value: value, Path: "/api/auth", MaxAge: int(ttl.Seconds()),
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: h.cfg.CookieSecure || web.ClientOf(c).Proto == "https"})
}

// requestContext is the request's context (request id, trace) with a deadline. fasthttp never
// cancels a request whose client has gone, but the gateway stops waiting for auth-service after its
// timeout (10 s); work still running then answers nobody, and must not, for one, create an account.
func (h handlers) requestContext(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	if h.cfg.RequestTimeout <= 0 {
		return context.WithCancel(c.UserContext())
	}
	return context.WithTimeout(c.UserContext(), h.cfg.RequestTimeout)
}

// clientIP is the address throttles and refresh-token reuse count by: the peer, or behind trusted
// proxies the first address X-Forwarded-For names from the right that is not one of them
// (web.ClientIP), never what the client itself wrote further left.
func clientIP(c *fiber.Ctx) string { return web.ClientIP(c) }

func (h handlers) jwks(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(h.cfg.JWKS)
}

func (h handlers) me(c *fiber.Ctx) error {
	u, err := h.uc.CurrentUser.Handle(c.UserContext(), callerOf(c))
	if err != nil {
		return toHTTP(c, err)
	}
	return c.JSON(toUserResponse(u))
}

func (h handlers) requireAdmin(c *fiber.Ctx) error {
	if _, err := h.uc.CurrentUser.RequireAdmin(c.UserContext(), callerOf(c)); err != nil {
		return toHTTP(c, err)
	}
	return c.Next()
}

func (h handlers) listUsers(c *fiber.Ctx) error {
	limit, err := queryInt(c, "limit", app.DefaultPageSize)
	if err != nil {
		return err
	}
	offset, err := queryInt(c, "offset", 0)
	if err != nil {
		return err
	}
	page, err := h.uc.ListUsers.Handle(c.UserContext(), limit, offset)
	if err != nil {
		return toHTTP(c, err)
	}
	out := userPageResponse{Users: make([]userResponse, 0, len(page.Users)), Total: page.Total, Limit: page.Limit, Offset: page.Offset}
	for _, u := range page.Users {
		out.Users = append(out.Users, toUserResponse(u))
	}
	return c.JSON(out)
}

func (h handlers) getUser(c *fiber.Ctx) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	u, err := h.uc.GetUser.Handle(c.UserContext(), id)
	if err != nil {
		return toHTTP(c, err)
	}
	return c.JSON(toUserResponse(u))
}

func (h handlers) approveUser(c *fiber.Ctx) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	var in approveRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	u, err := h.uc.ApproveUser.Handle(c.UserContext(), id, *in.Approved)
	if err != nil {
		return toHTTP(c, err)
	}
	return c.JSON(toUserResponse(u))
}

func (h handlers) changeRole(c *fiber.Ctx) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	var in roleRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	u, err := h.uc.ChangeRole.Handle(c.UserContext(), id, in.Role)
	if err != nil {
		return toHTTP(c, err)
	}
	return c.JSON(toUserResponse(u))
}

func (h handlers) deleteUser(c *fiber.Ctx) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	if err := h.uc.DeleteUser.Handle(c.UserContext(), callerOf(c), id, c.QueryBool("delete_vms")); err != nil {
		return toHTTP(c, err)
	}
	return c.JSON(fiber.Map{"message": "User deleted successfully", "user_id": id})
}

func userID(c *fiber.Ctx) (int64, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, web.NewError(http.StatusBadRequest, "Invalid user id: "+c.Params("id"))
	}
	return id, nil
}

func queryInt(c *fiber.Ctx, name string, fallback int) (int, error) {
	raw := c.Query(name)
	if raw == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		return 0, web.NewError(http.StatusBadRequest, "Query parameter '"+name+"' must be a number")
	}
	return n, nil
}
