// Package http is quota-service's Fiber port: a user's quota and usage, the admin's changes and list
// (docs/openapi.yaml), and the reservations peer services make under the internal token.
package http

import (
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/web"
	"limen/quota-service/internal/app"
	"limen/quota-service/internal/domain"
)

// Config is what the port needs besides the use cases.
type Config struct {
	Verifier *authn.Verifier
	// InternalToken is the shared secret peer services present on /internal routes.
	InternalToken string
}

type handlers struct {
	app app.Application
}

// HeaderTotalCount carries how many items a paged list has in all.
const HeaderTotalCount = "X-Total-Count"

// Mount adds quota-service's routes to fiberApp.
func Mount(fiberApp *fiber.App, application app.Application, cfg Config) {
	h := handlers{app: application}
	api := fiberApp.Group("/api", authn.RequireToken(cfg.Verifier))
	api.Get("/quota", h.get)
	api.Put("/quota", authn.RequireAdmin(), h.set)
	api.Get("/admin/quotas", authn.RequireAdmin(), h.list)

	// The token guards the whole prefix, so even an unknown internal path tells a stranger nothing.
	fiberApp.Use(contract.InternalPrefix, authn.RequireServiceToken(cfg.InternalToken))
	fiberApp.Post(contract.InternalReservationsRoute, h.reserve)
	fiberApp.Post(contract.InternalReservationCommitRoute, h.commit)
	fiberApp.Post(contract.InternalReservationReleaseRoute, h.release)
	fiberApp.Post(contract.InternalQuotaVMReleaseRoute, h.releaseVM)
}

func callerOf(c *fiber.Ctx) app.Caller {
	claims := authn.ClaimsOf(c)
	return app.Caller{UserID: claims.UserID, Admin: claims.IsAdmin()}
}

func (h handlers) get(c *fiber.Ctx) error {
	var userID int64
	if raw := c.Query("user_id"); raw != "" {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id < 1 {
			return web.NewError(http.StatusBadRequest, "Query parameter 'user_id' must be a positive integer")
		}
		userID = id
	}
	q, err := h.app.Queries.GetQuota.Handle(c.UserContext(), app.GetQuota{Caller: callerOf(c), UserID: userID})
	if err != nil {
		return err
	}
	return c.JSON(toQuotaUsage(q))
}

func (h handlers) set(c *fiber.Ctx) error {
	var in setRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	cmd, err := in.command()
	if err != nil {
		return err
	}
	q, err := h.app.Commands.SetQuota.Handle(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	return c.JSON(toQuotaUsage(q))
}

func (h handlers) list(c *fiber.Ctx) error {
	limit, err := queryInt(c, "limit", domain.DefaultPageSize)
	if err != nil {
		return err
	}
	offset, err := queryInt(c, "offset", 0)
	if err != nil {
		return err
	}
	page, err := h.app.Queries.ListQuotas.Handle(c.UserContext(), app.ListQuotas{Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	out := make([]quotaUsage, 0, len(page.Quotas))
	for _, q := range page.Quotas {
		out = append(out, toQuotaUsage(q))
	}
	c.Set(HeaderTotalCount, strconv.Itoa(page.Total))
	return c.JSON(out)
}

// queryInt is the integer query parameter name, or def when it is absent.
func queryInt(c *fiber.Ctx, name string, def int) (int, error) {
	raw := c.Query(name)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		return 0, web.NewError(http.StatusBadRequest, "Query parameter '"+name+"' must be a number")
	}
	return n, nil
}

func (h handlers) reserve(c *fiber.Ctx) error {
	var in contract.QuotaReserve
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	r, created, err := h.app.Commands.Reserve.Handle(c.UserContext(), app.Reserve{Key: in.Key, UserID: in.UserID, VMUUID: in.VMUUID,
		Change: domain.Resources{VMs: in.VMs, CPU: in.CPU, MemoryMiB: in.Memory}})
	if err != nil {
		return err
	}
	if created {
		c.Status(http.StatusCreated)
	}
	return c.JSON(toReservation(r))
}

func (h handlers) commit(c *fiber.Ctx) error {
	var in contract.QuotaCommit
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	r, err := h.app.Commands.Commit.Handle(c.UserContext(), app.Commit{Key: c.Params("key"), CPU: in.CPU, MemoryMiB: in.Memory, Version: in.Version})
	if err != nil {
		return err
	}
	return c.JSON(toReservation(r))
}

func (h handlers) release(c *fiber.Ctx) error {
	r, err := h.app.Commands.Release.Handle(c.UserContext(), app.Release{Key: c.Params("key")})
	if err != nil {
		return err
	}
	return c.JSON(toReservation(r))
}

func (h handlers) releaseVM(c *fiber.Ctx) error {
	var in contract.QuotaVMRelease
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	if err := h.app.Commands.ReleaseVM.Handle(c.UserContext(), app.ReleaseVM{VMUUID: c.Params("uuid"), UserID: in.UserID}); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}
