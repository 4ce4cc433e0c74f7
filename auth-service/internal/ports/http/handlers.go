// Package http is auth-service's Fiber port: it decodes requests, calls the use cases and renders
// the bodies docs/openapi.yaml describes; libs/web's error handler renders the errors.
package http

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/auth-service/internal/app"
	"limen/auth-service/internal/domain"
	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/web"
)

// Config is what the port needs besides the use cases.
type Config struct {
	JWKS         []byte
	Verifier     *authn.Verifier
	RefreshTTL   time.Duration
	CookieSecure bool
	// RequestTimeout bounds registration, login and refresh (see requestContext); 0: unbounded.
	RequestTimeout time.Duration
	Now            app.Clock
	// InternalToken is the shared secret peer services present on /internal routes.
	InternalToken string
}

type handlers struct {
	app app.Application
	cfg Config
}

// Mount adds the auth and admin routes (docs/openapi.yaml) to router.
func Mount(router fiber.Router, application app.Application, cfg Config) {
	h := handlers{app: application, cfg: cfg}
	auth := router.Group("/api/auth")
	auth.Post("/register", h.register)
	auth.Post("/login", h.login)
	auth.Post("/refresh", h.refresh)
	auth.Get("/jwks", h.jwks)
	auth.Post("/logout", authn.RequireToken(cfg.Verifier), h.logout)
	auth.Get("/me", authn.RequireToken(cfg.Verifier), h.me)
	auth.Post("/session", authn.RequireToken(cfg.Verifier), h.createSession)
	auth.Get("/session", authn.RequireToken(cfg.Verifier), h.session)
	auth.Delete("/session", h.endSession)

	admin := router.Group("/api/admin", authn.RequireToken(cfg.Verifier), h.requireAdmin)
	admin.Get("/users", h.listUsers)
	admin.Get("/users/:id", h.getUser)
	admin.Put("/users/:id/approve", h.approveUser)
	admin.Put("/users/:id/role", h.changeRole)
	admin.Delete("/users/:id", h.deleteUser)

	router.Get(contract.InternalUserRoute, authn.RequireServiceToken(cfg.InternalToken), h.findUser)
}

func callerOf(c *fiber.Ctx) app.Caller { return app.Caller{UserID: authn.ClaimsOf(c).UserID} }

func (h handlers) register(c *fiber.Ctx) error {
	var in credentialsRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	ctx, cancel := h.requestContext(c)
	defer cancel()
	u, err := h.app.Commands.Register.Handle(ctx, app.Register{Username: in.Username, Password: in.Password, ClientIP: clientIP(c)})
	if err != nil {
		return busyWhenLate(err)
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
	s, err := h.app.Commands.Login.Handle(ctx, app.Login{Username: in.Username, Password: in.Password, ClientIP: clientIP(c)})
	if err != nil {
		return busyWhenLate(err)
	}
	h.setRefreshCookie(c, s.RefreshToken)
	h.setSessionCookies(c, s.AccessToken, s.AccessExpiresAt, true)
	return c.JSON(toSessionResponse(s, h.cfg.Now()))
}

// decodeOptionalJSON is web.DecodeJSON for a route whose body may be left out (dst then stays as it is).
func decodeOptionalJSON(c *fiber.Ctx, dst any) error {
	if len(c.Body()) == 0 {
		return nil
	}
	return web.DecodeJSON(c, dst)
}

// refreshTokenOf takes the token from the body, else from the cookie; the body is optional.
func refreshTokenOf(c *fiber.Ctx) (string, error) {
	var in refreshRequest
	if err := decodeOptionalJSON(c, &in); err != nil {
		return "", err
	}
	if in.RefreshToken == "" {
		in.RefreshToken = c.Cookies(contract.RefreshCookie)
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
	s, err := h.app.Commands.Refresh.Handle(ctx, app.Refresh{RefreshToken: token,
		Client: app.Client{IP: clientIP(c), UserAgent: c.Get(fiber.HeaderUserAgent)}})
	if err != nil {
		return busyWhenLate(err)
	}
	h.setRefreshCookie(c, s.RefreshToken)
	// The page's CSRF cookie stays what it read at login: only a browser without one gets one.
	h.setSessionCookies(c, s.AccessToken, s.AccessExpiresAt, c.Cookies(contract.CSRFCookie) == "")
	return c.JSON(toSessionResponse(s, h.cfg.Now()))
}

func (h handlers) logout(c *fiber.Ctx) error {
	token, err := refreshTokenOf(c)
	if err != nil {
		return err
	}
	if err := h.app.Commands.Logout.Handle(c.UserContext(), app.Logout{RefreshToken: token}); err != nil {
		return err
	}
	h.setRefreshCookie(c, "")
	return c.SendStatus(http.StatusNoContent)
}

// createSession turns the caller's tokens into the browser session's cookies. The access token in the
// body must be the caller's own, so that nobody plants another account's session in a browser.
func (h handlers) createSession(c *fiber.Ctx) error {
	var in sessionRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	claims, err := h.cfg.Verifier.Verify(in.AccessToken)
	if err != nil || claims.UserID != authn.ClaimsOf(c).UserID {
		return domain.ErrNotAuthenticated
	}
	u, err := h.app.Queries.CurrentUser.Handle(c.UserContext(), app.CurrentUser{Caller: callerOf(c)})
	if err != nil {
		return err
	}
	if in.RefreshToken != "" {
		h.setRefreshCookie(c, in.RefreshToken)
	}
	csrf := h.setSessionCookies(c, in.AccessToken, claims.ExpiresAt.Time, true)
	return c.JSON(sessionStateResponse{Valid: true, Message: "Session created", CSRFToken: csrf, User: toSessionUser(u)})
}

// session answers whether the caller's token is good; the gateway presents a session cookie as one.
func (h handlers) session(c *fiber.Ctx) error {
	u, err := h.app.Queries.CurrentUser.Handle(c.UserContext(), app.CurrentUser{Caller: callerOf(c)})
	if err != nil {
		return err
	}
	return c.JSON(sessionStateResponse{Valid: true, User: toSessionUser(u)})
}

// endSession is the browser's logout: no token is needed to clear its own cookies, and the login of
// its refresh cookie ends as with POST /api/auth/logout.
func (h handlers) endSession(c *fiber.Ctx) error {
	logout := app.Logout{RefreshToken: c.Cookies(contract.RefreshCookie)}
	if err := h.app.Commands.Logout.Handle(c.UserContext(), logout); err != nil {
		return err
	}
	h.setRefreshCookie(c, "")
	h.setCookie(c, contract.SessionCookie, "", -1, true)
	h.setCookie(c, contract.CSRFCookie, "", -1, false)
	return c.JSON(fiber.Map{"message": "Logged out successfully"})
}

// setSessionCookies sets the session cookie to the access token for as long as the token lives and,
// when newCSRF, a new CSRF cookie, whose value it returns.
func (h handlers) setSessionCookies(c *fiber.Ctx, accessToken string, expiresAt time.Time, newCSRF bool) string {
	// At least a second: a cookie without Max-Age would outlive its token until the browser closes.
	h.setCookie(c, contract.SessionCookie, accessToken, max(int(expiresAt.Sub(h.cfg.Now()).Seconds()), 1), true)
	if !newCSRF {
		return ""
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails on Linux
	csrf := base64.RawURLEncoding.EncodeToString(raw)
	// The page reads it (not HttpOnly) for every state-changing request; it lasts as long as a login
	// can, since refreshing renews the session cookie but keeps it.
	h.setCookie(c, contract.CSRFCookie, csrf, int(h.cfg.RefreshTTL.Seconds()), false)
	return csrf
}

// setRefreshCookie scopes the refresh token to the routes that take it; an empty token clears it.
func (h handlers) setRefreshCookie(c *fiber.Ctx, token string) {
	maxAge := int(h.cfg.RefreshTTL.Seconds())
	if token == "" {
		maxAge = -1
	}
	c.Cookie(&fiber.Cookie{Name: contract.RefreshCookie, Value: token, Path: "/api/auth", MaxAge: maxAge,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: h.secure(c)})
}

// setCookie sets a site-wide cookie; maxAge -1 clears it.
func (h handlers) setCookie(c *fiber.Ctx, name, value string, maxAge int, httpOnly bool) {
	c.Cookie(&fiber.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HTTPOnly: httpOnly, SameSite: fiber.CookieSameSiteLaxMode, Secure: h.secure(c)})
}

// secure marks cookies Secure when configured, and whenever the client came over TLS: a TLS
// connection, or X-Forwarded-Proto "https" from a trusted proxy (LIMEN_TRUSTED_PROXIES), as the
// gateway sets it. (Fiber's c.Protocol() would do too, but takes the header's leftmost value, and
// from anyone when no proxy is configured; web.ClientOf takes the value the last trusted hop added.)
func (h handlers) secure(c *fiber.Ctx) bool {
	return h.cfg.CookieSecure || web.ClientOf(c).Proto == "https"
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

// busyWhenLate answers a request that ran out of time (requestContext's deadline) with
// domain.ErrBusy: whoever still listens may retry.
func busyWhenLate(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return domain.ErrBusy
	}
	return err
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
	u, err := h.app.Queries.CurrentUser.Handle(c.UserContext(), app.CurrentUser{Caller: callerOf(c)})
	if err != nil {
		return err
	}
	return c.JSON(toUserResponse(u))
}

func (h handlers) requireAdmin(c *fiber.Ctx) error {
	if _, err := h.app.Queries.CurrentAdmin.Handle(c.UserContext(), app.CurrentAdmin{Caller: callerOf(c)}); err != nil {
		return err
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
	page, err := h.app.Queries.ListUsers.Handle(c.UserContext(), app.ListUsers{Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	out := make([]adminUserResponse, 0, len(page.Users))
	for _, u := range page.Users {
		r := adminUserResponse{userResponse: toUserResponse(u)}
		if page.UsageKnown {
			r.vmUsageResponse = toVMUsage(page.Usage[u.ID])
		}
		out = append(out, r)
	}
	c.Set(totalCountHeader, strconv.Itoa(page.Total))
	return c.JSON(out)
}

// totalCountHeader carries the size of a paged list, whose body is the page's array alone.
const totalCountHeader = "X-Total-Count"

func (h handlers) getUser(c *fiber.Ctx) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	d, err := h.app.Queries.GetUser.Handle(c.UserContext(), app.GetUser{ID: id})
	if err != nil {
		return err
	}
	out := adminUserDetailResponse{adminUserResponse: adminUserResponse{userResponse: toUserResponse(d.User)}}
	if d.VMsKnown {
		vms := append([]contract.InternalVM{}, d.VMs...) // [] rather than null for none
		out.vmUsageResponse, out.VMs = toVMUsage(d.Usage()), &vms
	}
	return c.JSON(out)
}

// findUser tells a peer service whether an account exists, and who it is.
func (h handlers) findUser(c *fiber.Ctx) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	u, err := h.app.Queries.FindUser.Handle(c.UserContext(), app.FindUser{ID: id})
	if err != nil {
		return err
	}
	return c.JSON(contract.InternalUser{ID: u.ID, Username: u.Username, Role: string(u.Role), Approved: u.Approved})
}

func (h handlers) approveUser(c *fiber.Ctx) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	var in approveRequest
	if err := decodeOptionalJSON(c, &in); err != nil {
		return err
	}
	// No body, or none saying otherwise, approves: that is how clients call it.
	approved := in.Approved == nil || *in.Approved
	u, err := h.app.Commands.ApproveUser.Handle(c.UserContext(), app.ApproveUser{ID: id, Approved: approved})
	if err != nil {
		return err
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
	u, err := h.app.Commands.ChangeRole.Handle(c.UserContext(), app.ChangeRole{ID: id, Role: in.Role})
	if err != nil {
		return err
	}
	return c.JSON(toUserResponse(u))
}

func (h handlers) deleteUser(c *fiber.Ctx) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	cmd := app.DeleteUser{Caller: callerOf(c), ID: id, WithVMs: c.QueryBool("delete_vms")}
	if err := h.app.Commands.DeleteUser.Handle(c.UserContext(), cmd); err != nil {
		return err
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
