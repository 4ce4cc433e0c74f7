package http

import (
	"github.com/gofiber/fiber/v2"

	"limen/gateway/internal/app"
)

// Mount adds the gateway's routes; anything else (including /internal) is a 404. status may be nil
// (no live status socket).
func Mount(router fiber.Router, health *app.Health, p *Proxy, status *VMStatus) {
	router.Get("/api/health", HealthHandler(health))
	if status != nil {
		// The proxy cannot carry a WebSocket upgrade; the gateway terminates the socket itself.
		router.Get(VMStatusPath, status.CheckOrigin, status.Authenticate, status.Upgrade())
	}
	router.All("/api/*", p.Handle)
}
