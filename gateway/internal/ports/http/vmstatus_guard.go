package http

import (
	"net/http"
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
// one of AllowedOrigins (LIMEN_CORS_ORIGINS, read as CORS reads them), or the page came from the
// gateway itself (the Origin's host is the request's host). A request without Origin is not a
// browser's and passes; the token still decides. CORS does not guard WebSockets, and the browser
// sends the session cookie with the upgrade: without this check another page of the same site
// (another port, a sibling subdomain; SameSite stops only other sites) could open the socket as the
// user and read their VMs.
func (s *VMStatus) CheckOrigin(c *fiber.Ctx) error {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" || s.originAllowed(origin, c) {
		return c.Next()
	}
	return web.NewError(http.StatusForbidden, "Origin not allowed")
}

func (s *VMStatus) originAllowed(header string, c *fiber.Ctx) bool {
	o, ok := parseOrigin(header)
	if !ok {
		return false
	}
	if o.listedIn(s.AllowedOrigins) {
		return true
	}
	// Same origin: the page was served under the host this request is addressed to (as the client
	// sent it, or as a trusted proxy in front of the gateway passed it on).
	originHost := withoutDefaultPort(o.host, o.scheme)
	for _, host := range []string{string(c.Request().Host()), web.ClientOf(c).Host} {
		if host != "" && withoutDefaultPort(strings.ToLower(host), o.scheme) == originHost {
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

// socketSlot is one open socket's place.
type socketSlot struct {
	user   int64
	socket *socket
}

// open registers a new socket; beyond max, its user's oldest ones are closed. Registration and
// eviction happen under one lock, so any number of parallel connects leaves exactly max sockets.
func (u *userSockets) open(sock *socket, max int) *socketSlot {
	slot := &socketSlot{user: sock.id.viewer.UserID, socket: sock}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byUser == nil {
		u.byUser = map[int64][]*socketSlot{}
	}
	list := append(u.byUser[slot.user], slot)
	for len(list) > max {
		list[0].socket.shutDown(closeTooMany, "Too many connections", "live status: user opened too many sockets, oldest closed")
		list = slices.Delete(list, 0, 1)
	}
	u.byUser[slot.user] = list
	return slot
}

// notify asks every open socket of user to check its token again.
func (u *userSockets) notify(user int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, slot := range u.byUser[user] {
		slot.socket.requestRecheck()
	}
}

// each calls f with every open socket.
func (u *userSockets) each(f func(*socket)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, list := range u.byUser {
		for _, slot := range list {
			f(slot.socket)
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
