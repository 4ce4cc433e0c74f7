package http

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"limen/libs/contract"
	"limen/libs/web"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// The /internal routes: what the other services ask of vm-service, with the shared internal token
// (authn.RequireServiceToken), never routed by the gateway.

func (h handlers) internalGet(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	vm, err := h.app.Queries.GetVM.Handle(c.UserContext(), app.GetVM{Caller: app.Caller{Admin: true}, Ref: ref})
	if err != nil {
		return err
	}
	return c.JSON(internalVM(vm))
}

func (h handlers) internalUsage(c *fiber.Ctx) error {
	owner, err := ownerID(c.Params("id"))
	if err != nil {
		return err
	}
	usage, err := h.app.Queries.OwnerUsage.Handle(c.UserContext(), app.OwnerUsage{OwnerID: owner})
	if err != nil {
		return err
	}
	return c.JSON(contract.OwnerUsage{VMs: usage.VMs, CPU: usage.CPU, Memory: usage.MemoryMiB})
}

func (h handlers) internalOwnersUsage(c *fiber.Ctx) error {
	raw := c.Query("ids")
	if raw == "" {
		return web.NewError(http.StatusBadRequest, "Query 'ids' is required: user ids separated by commas")
	}
	var ids []int64
	for field := range strings.SplitSeq(raw, ",") {
		id, err := ownerID(field)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	usage, err := h.app.Queries.OwnersUsage.Handle(c.UserContext(), app.OwnersUsage{OwnerIDs: ids})
	if err != nil {
		return err
	}
	out := make(contract.OwnersUsage, len(usage))
	for id, u := range usage {
		out[strconv.FormatInt(id, 10)] = contract.OwnerUsage{VMs: u.VMs, CPU: u.CPU, Memory: u.MemoryMiB}
	}
	return c.JSON(out)
}

func (h handlers) internalOwnerVMs(c *fiber.Ctx) error {
	owner, err := ownerID(c.Params("id"))
	if err != nil {
		return err
	}
	// The VMs the owner sees as their own.
	vms, err := h.app.Queries.ListVMs.Handle(c.UserContext(), app.ListVMs{Caller: app.Caller{UserID: owner}})
	if err != nil {
		return err
	}
	out := make([]contract.InternalVM, 0, len(vms))
	for _, vm := range vms {
		out = append(out, internalVM(vm))
	}
	return c.JSON(out)
}

// ownerID is a user id as the internal routes take it: a positive decimal number.
func ownerID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, web.NewError(http.StatusBadRequest, "Invalid user id: "+s)
	}
	return id, nil
}

func internalVM(vm *domain.VM) contract.InternalVM {
	return contract.InternalVM{ID: vm.ID, UUID: vm.UUID.String(), Name: vm.Name, OwnerID: vm.OwnerID,
		Status: string(vm.Status), Host: vm.Host, CPU: vm.CPU, Memory: vm.MemoryMiB}
}
