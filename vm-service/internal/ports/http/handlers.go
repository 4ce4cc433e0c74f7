// Package http is vm-service's Fiber port: it decodes requests, calls the use cases and renders the
// contract's bodies.
package http

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/web"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// Config is what the port needs besides the use cases.
type Config struct {
	Verifier *authn.Verifier
	// InternalToken is the shared secret peer services present on /internal routes.
	InternalToken string
	// ActionWait is how long an action request waits for the action's end; then it is answered 202
	// and the action goes on (zero: until it ends).
	ActionWait time.Duration
}

type handlers struct {
	app        app.Application
	actionWait time.Duration
}

// Mount adds vm-service's routes to fiberApp.
func Mount(fiberApp *fiber.App, application app.Application, cfg Config) {
	h := handlers{app: application, actionWait: cfg.ActionWait}
	api := fiberApp.Group("/api/vms", authn.RequireToken(cfg.Verifier))
	api.Get("/os-types", h.osTypes)
	// Before /:ref, which would take "stats" for a VM reference.
	api.Get("/stats", h.listStats)
	api.Get("/", h.list)
	api.Post("/", h.create)
	api.Get("/:ref", h.get)
	api.Post("/:ref/action", h.action)
	api.Get("/:ref/boot-order", h.getBootOrder)
	api.Post("/:ref/boot-order", h.setBootOrder)
	api.Post("/:ref/finalize-install", h.finalizeInstall)
	api.Delete("/:ref", h.delete)
	h.mountSnapshots(api, fiberApp.Group("/api/snapshots", authn.RequireToken(cfg.Verifier)))
	api.Get("/:ref/console", h.console)
	api.Get("/:ref/stats", h.stats)

	// The token guards the whole prefix, so even an unknown internal path tells a stranger nothing.
	fiberApp.Use(contract.InternalPrefix, authn.RequireServiceToken(cfg.InternalToken))
	fiberApp.Get(contract.InternalVMRoute, h.internalGet)
	fiberApp.Get(contract.InternalOwnerUsageRoute, h.internalUsage)
	fiberApp.Get(contract.InternalOwnersUsageRoute, h.internalOwnersUsage)
	fiberApp.Get(contract.InternalOwnerVMsRoute, h.internalOwnerVMs)
	fiberApp.Get(contract.InternalConsoleRoute, h.internalConsole)
}

func callerOf(c *fiber.Ctx) app.Caller {
	claims := authn.ClaimsOf(c)
	return app.Caller{UserID: claims.UserID, Admin: claims.IsAdmin()}
}

func refOf(c *fiber.Ctx) (domain.Ref, error) { return domain.ParseRef(c.Params("ref")) }

func views(vms []*domain.VM) []app.VMView {
	out := make([]app.VMView, 0, len(vms))
	for _, vm := range vms {
		out = append(out, app.ViewOf(vm))
	}
	return out
}

func (h handlers) osTypes(c *fiber.Ctx) error {
	catalogue, err := h.app.Queries.ListOSTypes.Handle(c.UserContext(), app.ListOSTypes{})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"os_types": catalogue})
}

func (h handlers) list(c *fiber.Ctx) error {
	vms, err := h.app.Queries.ListVMs.Handle(c.UserContext(), app.ListVMs{Caller: callerOf(c), All: c.QueryBool("all")})
	if err != nil {
		return err
	}
	return c.JSON(views(vms))
}

func (h handlers) create(c *fiber.Ctx) error {
	var in createRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	vm, err := h.app.Commands.CreateVM.Handle(c.UserContext(), app.CreateVM{
		Caller: callerOf(c), Name: *in.Name, CPU: *in.CPU, MemoryMiB: *in.Memory, OSType: *in.OSType, Start: in.Start,
	})
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(app.ViewOf(vm))
}

func (h handlers) get(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	vm, err := h.app.Queries.GetVM.Handle(c.UserContext(), app.GetVM{Caller: callerOf(c), Ref: ref})
	if err != nil {
		return err
	}
	return c.JSON(app.ViewOf(vm))
}

// actionMessages are the success messages of the action endpoint.
var actionMessages = map[domain.Action]string{
	domain.ActionStart:     "VM started",
	domain.ActionStop:      "VM stopped",
	domain.ActionRestart:   "VM restarted",
	domain.ActionDelete:    "VM deleted",
	domain.ActionUpdate:    "VM updated",
	domain.ActionPause:     "VM paused",
	domain.ActionResume:    "VM resumed",
	domain.ActionForceStop: "VM force stopped",
}

func (h handlers) action(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	var in actionRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	action, err := domain.ParseAction(*in.Action)
	if err != nil {
		return err
	}
	ctx, caller, wait := c.UserContext(), callerOf(c), h.actionWait
	var vm *domain.VM
	switch action {
	case domain.ActionDelete:
		vm, err = h.app.Commands.DeleteVM.Handle(ctx, app.DeleteVM{Caller: caller, Ref: ref, Wait: wait})
	case domain.ActionUpdate:
		// One of cpu and memory may be left out: the other is kept (refused when both are missing).
		vm, err = h.app.Commands.ResizeVM.Handle(ctx, app.ResizeVM{Caller: caller, Ref: ref, CPU: in.CPU, MemoryMiB: in.Memory, Wait: wait})
	default:
		vm, err = h.app.Commands.ChangePower.Handle(ctx, app.ChangePower{Caller: caller, Ref: ref, Action: action, Wait: wait})
	}
	if err != nil {
		return err
	}
	if vm.Busy() {
		// Not done within the wait: the action goes on, the VM shows its task until a change ends it.
		return c.Status(http.StatusAccepted).JSON(actionResponse{VMView: app.ViewOf(vm),
			Message: fmt.Sprintf("VM %s in progress", strings.ReplaceAll(string(action), "_", " "))})
	}
	return c.JSON(actionResponse{VMView: app.ViewOf(vm), Message: actionMessages[action]})
}

func (h handlers) delete(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	vm, err := h.app.Commands.DeleteVM.Handle(c.UserContext(), app.DeleteVM{Caller: callerOf(c), Ref: ref})
	if err != nil {
		return err
	}
	return c.JSON(deleteResponse{Message: "VM deleted", VMUUID: vm.UUID.String()})
}
