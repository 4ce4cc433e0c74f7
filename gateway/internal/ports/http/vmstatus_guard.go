package http

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"

	"limen/libs/web"
)

// DefaultMaxPerUser is how many live status sockets one user may hold at once (LIMEN_WS_MAX_PER_USER).
const DefaultMaxPerUser = 20

// closeTooMany ends a user's oldest socket when they open one more than MaxPerUser.
const closeTooMany = websocket.ClosePolicyViolation

// CheckOrigin refuses the upgrade with 403 unless the browser page asking for it may: its Origin is
// one of AllowedOrigins (LIMEN_CORS_ORIGINS, with the CORS middleware's `scheme://*.domain`
// wildcards), or the page came from the gateway itself (the Origin's host is the request's host). A
// request without Origin is not a browser's and passes; the token still decides. Without this check
// any site a user visits could open the socket with their token-bearing session and read their VMs.
func (s *VMStatus) CheckOrigin(c *fiber.Ctx) error {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" || s.originAllowed(origin, c) {
		return c.Next()
	}
	return web.NewError(http.StatusForbidden, "Origin not allowed")
}

func (s *VMStatus) originAllowed(origin string, c *fiber.Ctx) bool {
	u, err := url.Parse(strings.ToLower(strings.TrimSpace(origin)))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return false // "null" (a sandboxed or file: page) included
	}
	normalized := u.Scheme + "://" + u.Host
	for _, allowed := range s.AllowedOrigins {
		allowed = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(allowed)), "/")
		if allowed == normalized {
			return true
		}
		// https://*.example.com: any subdomain, as the CORS middleware reads it.
		if scheme, domain, ok := strings.Cut(allowed, "://*."); ok && u.Scheme == scheme &&
			strings.HasSuffix(u.Host, "."+domain) && len(u.Host) > len(domain)+1 {
			return true
		}
	}
	// Same origin: the page was served under the host this request is addressed to (as the client
	// sent it, or as a trusted proxy in front of the gateway passed it on).
	originHost := withoutDefaultPort(u.Host, u.Scheme)
	for _, host := range []string{string(c.Request().Host()), web.ClientOf(c).Host} {
		if host != "" && withoutDefaultPort(strings.ToLower(host), u.Scheme) == originHost {
			return true
		}
	}
	return false
}

// withoutDefaultPort drops :80 from an http and :443 from an https host, as browsers do in Origin.
func withoutDefaultPort(host, scheme string) string {
	if scheme == "http" {
		return strings.TrimSuffix(host, ":80")
	}
	return strings.TrimSuffix(host, ":443")
}

// userSockets tracks each user's open sockets, oldest first, to hold them to MaxPerUser.
type userSockets struct {
	mu     sync.Mutex
	byUser map[int64][]*socketSlot
}

// socketSlot is one open socket's place; evicted is closed when a newer socket of its user takes it,
// recheck is signalled when the user's tokens may have been revoked.
type socketSlot struct {
	user    int64
	evicted chan struct{}
	recheck chan struct{}
}

// open registers a new socket of user; beyond max, the user's oldest ones are evicted. Registration and
// eviction happen under one lock, so any number of parallel connects leaves exactly max sockets.
func (u *userSockets) open(user int64, max int) *socketSlot {
	slot := &socketSlot{user: user, evicted: make(chan struct{}), recheck: make(chan struct{}, 1)}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byUser == nil {
		u.byUser = map[int64][]*socketSlot{}
	}
	list := append(u.byUser[user], slot)
	for len(list) > max {
		close(list[0].evicted)
		list = slices.Delete(list, 0, 1)
	}
	u.byUser[user] = list
	return slot
}

// notify asks every open socket of user to check its token again.
func (u *userSockets) notify(user int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, slot := range u.byUser[user] {
		select {
		case slot.recheck <- struct{}{}:
		default: // a check is pending already
		}
	}
}

// close forgets a socket that ended (evicted or not).
func (u *userSockets) close(slot *socketSlot) {
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.byUser[slot.user]
	if i := slices.Index(list, slot); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(u.byUser, slot.user)
	} else {
		u.byUser[slot.user] = list
	}
}

func (s *VMStatus) maxPerUser() int {
	if s.MaxPerUser > 0 {
		return s.MaxPerUser
	}
	return DefaultMaxPerUser
}
