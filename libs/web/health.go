package web

import (
	"context"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Check reports whether one dependency answers; its name appears in /readyz.
type Check func(ctx context.Context) error

// Readiness is the /readyz body: every check is "connected" or "disconnected".
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// Ready runs the checks concurrently, each bounded by timeout.
func Ready(ctx context.Context, checks map[string]Check, timeout time.Duration) Readiness {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	result := Readiness{Status: "ok", Checks: make(map[string]string, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, check := range checks {
		wg.Go(func() {
			state := "connected"
			if err := check(ctx); err != nil {
				state = "disconnected"
			}
			mu.Lock()
			defer mu.Unlock()
			result.Checks[name] = state
			if state != "connected" {
				result.Status = "degraded"
			}
		})
	}
	wg.Wait()
	return result
}

// mountHealth serves /healthz (the process is alive) and, with readyz, /readyz (its dependencies
// answer; 503 if not).
func mountHealth(app *fiber.App, checks map[string]Check, readyz bool) {
	app.Get("/healthz", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	})
	if !readyz {
		return
	}
	app.Get("/readyz", func(c *fiber.Ctx) error {
		r := Ready(c.UserContext(), checks, 2*time.Second)
		if r.Status != "ok" {
			c.Status(fiber.StatusServiceUnavailable)
		}
		return c.JSON(r)
	})
}
