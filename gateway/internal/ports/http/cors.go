package http

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/valyala/fasthttp"

	"limen/libs/contract"
	"limen/libs/web"
)

// What a page of an allowed origin may send and read (credentials included: the session cookies).
const (
	corsAllowMethods = "GET, POST, PUT, PATCH, DELETE, HEAD"
	// X-Total-Count: the size of a whole list an answer is one page of.
	corsExposeHeaders = web.HeaderRequestID + ", " + fiber.HeaderRetryAfter + ", X-Total-Count"
)

var corsAllowHeaders = strings.Join([]string{fiber.HeaderAuthorization, fiber.HeaderContentType, web.HeaderRequestID,
	contract.CSRFHeader, fiber.HeaderCacheControl, fiber.HeaderPragma}, ", ")

// CORS is the gateway's one CORS policy (LIMEN_CORS_ORIGINS), for web.AppConfig.Edge so that it
// reaches every answer: the gateway's own, its errors, and the services' answers, which replace the
// whole response when proxied. A preflight is answered here (204) and never reaches a service. An
// allowed origin is echoed with credentials allowed; any other origin gets no CORS header at all, so
// the browser refuses its preflight and hides the answers from its page. Every answer says
// `Vary: Origin`, once, since its CORS headers depend on it.
func CORS(origins []string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		origin := c.Get(fiber.HeaderOrigin)
		allowed := origin != "" && originListed(origin, origins)
		if c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != "" {
			h := &c.Response().Header
			vary(h, fiber.HeaderOrigin, fiber.HeaderAccessControlRequestMethod, fiber.HeaderAccessControlRequestHeaders)
			if allowed {
				allowOrigin(h, origin)
				h.Set(fiber.HeaderAccessControlAllowMethods, corsAllowMethods)
				h.Set(fiber.HeaderAccessControlAllowHeaders, corsAllowHeaders)
			}
			return c.SendStatus(fiber.StatusNoContent)
		}
		// Once the answer is final: a proxied answer replaces the whole response. Deferred, it also
		// reaches an answer that never comes back through here (a panic's, which the recovery renders
		// around the headers set on the way out).
		defer func() {
			h := &c.Response().Header
			vary(h, fiber.HeaderOrigin)
			if allowed {
				allowOrigin(h, origin)
				h.Set(fiber.HeaderAccessControlExposeHeaders, corsExposeHeaders)
			}
		}()
		if err := c.Next(); err != nil {
			web.RenderError(c, err)
		}
		return nil
	}
}

// corsHeaders are CORS's response headers, whose names all start alike (in any letter case).
var corsHeaders = newFoldSet("access-control-")

// allowOrigin lets the page of origin read the answer, with its cookies: the origin exactly as the
// browser sent it, which is what the browser compares.
func allowOrigin(h *fasthttp.ResponseHeader, origin string) {
	h.Set(fiber.HeaderAccessControlAllowOrigin, origin)
	h.Set(fiber.HeaderAccessControlAllowCredentials, "true")
}

// vary adds names to the answer's one Vary line, gathering every Vary line already there (a
// service's answer may carry its own, in any letter case). The usual answer, with one line or none,
// costs no allocation; one that already lists every name is left as it is.
func vary(h *fasthttp.ResponseHeader, names ...string) {
	var valueBuf [256]byte
	var linesBuf [4][]byte
	value, lines, exact := valueBuf[:0], linesBuf[:0], true
	for k, v := range h.All() {
		if equalFold(k, fiber.HeaderVary) {
			if len(lines) > 0 {
				value = append(value, ", "...)
			}
			value = append(value, v...)
			lines = append(lines, k)
			exact = exact && string(k) == fiber.HeaderVary
		}
	}
	listed, items := utils.UnsafeString(value), len(lines)
	for _, name := range names {
		if !hasToken(listed, name) {
			if items > 0 {
				value = append(value, ", "...)
			}
			value = append(value, name...)
			items++
		}
	}
	if items == len(lines) && len(lines) == 1 && exact {
		return
	}
	// The lines' names stay where they are until each deletion, which copies the name first.
	for _, k := range lines {
		h.DelBytes(k)
	}
	h.SetBytesV(fiber.HeaderVary, value)
}

// hasToken reports whether the comma-separated list holds token, in any letter case.
func hasToken(list, token string) bool {
	for list != "" {
		item, rest, _ := strings.Cut(list, ",")
		if strings.EqualFold(strings.TrimSpace(item), token) {
			return true
		}
		list = rest
	}
	return false
}

// origin is a browser's Origin header, lower case.
type origin struct{ scheme, host string }

// parseOrigin reads an Origin header; false for anything but `scheme://host[:port]` over http(s),
// the opaque "null" (a sandboxed or file: page) included.
func parseOrigin(s string) (origin, bool) {
	u, err := url.Parse(strings.ToLower(strings.TrimSpace(s)))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return origin{}, false
	}
	return origin{scheme: u.Scheme, host: u.Host}, true
}

// listedIn reports whether o is one of allowed (LIMEN_CORS_ORIGINS): the same scheme and host, or
// any subdomain of a `scheme://*.domain` entry.
func (o origin) listedIn(allowed []string) bool {
	normalized := o.scheme + "://" + o.host
	for _, entry := range allowed {
		entry = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(entry)), "/")
		if entry == normalized {
			return true
		}
		if scheme, domain, ok := strings.Cut(entry, "://*."); ok && o.scheme == scheme &&
			strings.HasSuffix(o.host, "."+domain) && len(o.host) > len(domain)+1 {
			return true
		}
	}
	return false
}

// originListed reports whether the Origin header names one of allowed.
func originListed(header string, allowed []string) bool {
	o, ok := parseOrigin(header)
	return ok && o.listedIn(allowed)
}

// CheckOrigins refuses an allowed-origins list with an entry that no browser's Origin could match:
// each is `scheme://host[:port]` over http(s), or `scheme://*.domain` for any subdomain (blanks are
// skipped).
func CheckOrigins(allowed []string) error {
	for _, entry := range allowed {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		if _, ok := parseOrigin(strings.Replace(entry, "://*.", "://", 1)); !ok {
			return fmt.Errorf("%q is no origin (scheme://host[:port], or scheme://*.domain)", entry)
		}
	}
	return nil
}
