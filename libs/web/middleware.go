package web

import (
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"limen/libs/logging"
)

// HeaderRequestID is the header that carries a request id from the edge through every service.
const HeaderRequestID = "X-Request-ID"

// RequestID keeps a well-formed inbound X-Request-ID or makes one, echoes it in the response and puts it
// in the request's context for logs and outgoing calls.
func RequestID() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := c.Get(HeaderRequestID)
		if !wellFormedRequestID(id) {
			id = uuid.NewString()
			c.Request().Header.Set(HeaderRequestID, id)
		}
		c.Set(HeaderRequestID, id)
		c.SetUserContext(logging.WithRequestID(c.UserContext(), id))
		return c.Next()
	}
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

// AccessLog logs one line per request after it is served; errors are rendered first so the status is final.
func AccessLog(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		if err != nil {
			if handlerErr := c.App().ErrorHandler(c, err); handlerErr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}
		status := c.Response().StatusCode()
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		log.Log(c.UserContext(), level, "request",
			"method", c.Method(), "path", c.Path(), "status", status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "ip", ClientIP(c))
		return nil
	}
}
