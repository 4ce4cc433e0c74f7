// Package http is vm-service's Fiber port: it decodes requests, calls the use cases and renders the
// contract's bodies.
package http

import (
	"crypto/subtle"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"limen/libs/authn"
	"limen/libs/web"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// UseCases are what the handlers call.
type UseCases struct {
	List    app.ListVMs
	Get     app.GetVM
	Create  app.CreateVM
	Power   *app.ChangePower
	Resize  app.ResizeVM
	Delete  app.DeleteVM
	OSTypes app.ListOSTypes
	Usage   app.OwnerUsage
}

// Config is what the port needs besides the use cases.
type Config struct {
	Verifier *authn.Verifier
	// InternalToken is the shared secret peer services present on /internal routes.
	InternalToken string
}

type handlers struct {
	uc UseCases
}

// Mount adds vm-service's routes to app.
func Mount(app *fiber.App, uc UseCases, cfg Config) {
	h := handlers{uc: uc}
	api := app.Group("/api/vms", authn.RequireToken(cfg.Verifier))
	api.Get("/os-types", h.osTypes)
	api.Get("/", h.list)
	api.Post("/", h.create)
	api.Get("/:ref", h.get)
	api.Post("/:ref/action", h.action)
	api.Delete("/:ref", h.delete)

	internal := app.Group("/internal", requireServiceToken(cfg.InternalToken))
	internal.Get("/vms/:ref", h.internalGet)
	internal.Get("/owners/:id/usage", h.internalUsage)
}

func callerOf(c *fiber.Ctx) app.Caller {
	claims := authn.ClaimsOf(c)
	return app.Caller{UserID: claims.UserID, Admin: claims.IsAdmin()}
}

func refOf(c *fiber.Ctx) (domain.Ref, error) {
	ref, err := domain.ParseRef(c.Params("ref"))
	if err != nil {
		return domain.Ref{}, toHTTP(err)
	}
	return ref, nil
}

func views(vms []*domain.VM) []app.VMView {
	out := make([]app.VMView, 0, len(vms))
	for _, vm := range vms {
		out = append(out, app.ViewOf(vm))
	}
	return out
}

func (h handlers) osTypes(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"os_types": h.uc.OSTypes.Handle()})
}

func (h handlers) list(c *fiber.Ctx) error {
	vms, err := h.uc.List.Handle(c.UserContext(), callerOf(c), c.QueryBool("all"))
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(views(vms))
}

func (h handlers) create(c *fiber.Ctx) error {
	var in createRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	vm, err := h.uc.Create.Handle(c.UserContext(), callerOf(c), app.CreateVMRequest{
		Name: *in.Name, CPU: *in.CPU, MemoryMiB: *in.Memory, OSType: *in.OSType, Start: in.Start,
	})
	if err != nil {
		return toHTTP(err)
	}
	return c.Status(http.StatusCreated).JSON(app.ViewOf(vm))
}

func (h handlers) get(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	vm, err := h.uc.Get.Handle(c.UserContext(), callerOf(c), ref)
	if err != nil {
		return toHTTP(err)
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
		return toHTTP(err)
	}
	ctx, caller := c.UserContext(), callerOf(c)
	var vm *domain.VM
	switch action {
	case domain.ActionDelete:
		vm, err = h.uc.Delete.Handle(ctx, caller, ref)
	case domain.ActionUpdate:
		// One of cpu and memory may be left out: the other is kept (refused when both are missing).
		vm, err = h.uc.Resize.Handle(ctx, caller, ref, app.ResizeRequest{CPU: in.CPU, MemoryMiB: in.Memory})
	default:
		vm, err = h.uc.Power.Handle(ctx, caller, ref, action)
	}
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(actionResponse{Message: actionMessages[action], VM: app.ViewOf(vm)})
}

func (h handlers) delete(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	vm, err := h.uc.Delete.Handle(c.UserContext(), callerOf(c), ref)
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(deleteResponse{Message: "VM deleted", VMUUID: vm.UUID.String()})
}

func (h handlers) internalGet(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	vm, err := h.uc.Get.Handle(c.UserContext(), app.Caller{Admin: true}, ref)
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(internalVMResponse{ID: vm.ID, UUID: vm.UUID.String(), Name: vm.Name, OwnerID: vm.OwnerID,
		Status: string(vm.Status), Host: vm.Host, CPU: vm.CPU, Memory: vm.MemoryMiB})
}

func (h handlers) internalUsage(c *fiber.Ctx) error {
	owner, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || owner <= 0 {
		return web.NewError(http.StatusBadRequest, "Invalid user id: "+c.Params("id"))
	}
	usage, err := h.uc.Usage.Handle(c.UserContext(), owner)
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(ownerUsageResponse{VMs: usage.VMs, CPU: usage.CPU, Memory: usage.MemoryMiB})
}

// requireServiceToken admits peer services that present the shared internal token. With no token
// configured the internal API is closed, never open.
func requireServiceToken(token string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		got := authn.BearerToken(c.Get(fiber.HeaderAuthorization))
		if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return web.Unauthorized()
		}
		return c.Next()
	}
}
