package http

import (
	"github.com/gofiber/fiber/v2"

	"limen/gateway/internal/app"
)

// Mount adds the gateway's routes; anything else (including /internal) is a 404.
func Mount(router fiber.Router, health *app.Health, p *Proxy) {
	router.Get("/api/health", HealthHandler(health))
	router.All("/api/*", p.Handle)
}
