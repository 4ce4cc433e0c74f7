package contract

// Browser sessions: auth-service sets these cookies, the gateway reads them. The session cookie holds
// the access token (HttpOnly), so a browser needs no token in script; the CSRF cookie is readable by
// the page, which echoes it in CSRFHeader on every state-changing request (double-submit).
const (
	SessionCookie = "limen_session"
	CSRFCookie    = "limen_csrf"
	CSRFHeader    = "X-CSRF-Token"
	// RefreshCookie holds the refresh token (HttpOnly), for POST /api/auth/refresh without a body.
	RefreshCookie = "refresh_token"
)
