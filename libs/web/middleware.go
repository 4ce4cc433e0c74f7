package web

import (
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"limen/libs/logging"
)

// HeaderRequestID is the header that carries a request id from the edge through every service.
const HeaderRequestID = "X-Request-ID"

// RequestID keeps a well-formed inbound X-Request-ID or makes one, echoes it in the response and puts it
// in the request's context for logs and outgoing calls. The context may outlive the request (a live
// socket logs with it); logging.WithRequestID keeps a copy of Fiber's buffer there, never the buffer.
func RequestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		req := &c.Request().Header
		id := req.Peek(HeaderRequestID)
		if !wellFormedRequestID(utils.UnsafeString(id)) {
			var made [36]byte
			newRequestID(&made)
			req.SetCanonical(requestIDKey, made[:])
			id = made[:]
		}
		c.Response().Header.SetCanonical(requestIDKey, id)
		c.SetUserContext(logging.WithRequestID(c.UserContext(), utils.UnsafeString(id)))
		return c.Next()
	}
}

// requestIDKey is HeaderRequestID as fasthttp spells it when it normalises names, as Fiber has it do:
// set by this spelling, the name is not normalised again on every request.
var requestIDKey = []byte("X-Request-Id")

// newRequestID writes a random (version 4) UUID, as uuid.NewString would, from the runtime's
// per-thread ChaCha8 generator rather than crypto/rand: an id names a request, it guards nothing, and
// this way it costs no allocation and no lock.
func newRequestID(dst *[36]byte) {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	hex.Encode(dst[0:8], b[0:4])
	hex.Encode(dst[9:13], b[4:6])
	hex.Encode(dst[14:18], b[6:8])
	hex.Encode(dst[19:23], b[8:10])
	hex.Encode(dst[24:], b[10:])
	dst[8], dst[13], dst[18], dst[23] = '-', '-', '-', '-'
}

// wellFormedRequestID refuses ids that could smuggle anything into logs or headers.
func wellFormedRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// AccessLog logs one line per request after it is served; errors are rendered first so the status is
// final. The duration runs from when the server handed the request over (fasthttp reads the clock
// then anyway), so that a request that is not logged never reads the clock here.
func AccessLog(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			RenderError(c, err)
		}
		status := c.Response().StatusCode()
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		// Its attributes are put together only for a line that is written: a service logging at warn
		// pays nothing for a request that went well.
		if !log.Enabled(c.UserContext(), level) {
			return nil
		}
		log.Log(c.UserContext(), level, "request",
			"method", c.Method(), "path", c.Path(), "status", status,
			"duration_ms", float64(time.Since(c.Context().Time()).Microseconds())/1000, "ip", ClientIP(c))
		return nil
	}
}

// RenderError answers err as the app's error handler does (500 if that fails), for a middleware that
// needs the final answer of the handlers after it.
func RenderError(c *fiber.Ctx, err error) {
	if handlerErr := c.App().ErrorHandler(c, err); handlerErr != nil {
		_ = c.SendStatus(fiber.StatusInternalServerError)
	}
}
