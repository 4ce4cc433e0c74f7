package http

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/gateway/internal/app"
)

type healthResponse struct {
	Status   string            `json:"status"`
	Time     string            `json:"time"`
	DB       string            `json:"db"`
	Libvirt  string            `json:"libvirt,omitempty"`
	Kafka    string            `json:"kafka,omitempty"`
	Services map[string]string `json:"services"`
}

func toHealthResponse(r app.HealthReport) healthResponse {
	out := healthResponse{Status: "ok", Time: r.Time.Format(time.RFC3339), DB: r.DB, Libvirt: r.Libvirt, Kafka: r.Kafka,
		Services: make(map[string]string, len(r.Services))}
	if !r.OK {
		out.Status = "degraded"
	}
	for u, state := range r.Services {
		out.Services[string(u)] = state
	}
	return out
}

// HealthHandler serves GET /api/health: 200 when every part answers, 503 otherwise.
func HealthHandler(application app.Application) fiber.Handler {
	return func(c *fiber.Ctx) error {
		report, err := application.Queries.CheckHealth.Handle(c.UserContext(), app.CheckHealth{})
		if err != nil {
			return err
		}
		if !report.OK {
			c.Status(http.StatusServiceUnavailable)
		}
		return c.JSON(toHealthResponse(report))
	}
}
