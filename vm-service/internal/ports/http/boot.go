package http

import (
	"github.com/gofiber/fiber/v2"

	"limen/libs/web"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

type bootOrderRequest struct {
	BootOrder *string `json:"boot_order" validate:"required"`
}

type bootOrderResponse struct {
	BootOrder string `json:"boot_order"`
}

type finalizeResponse struct {
	Message string     `json:"message"`
	VMUUID  string     `json:"vm_uuid"`
	VM      app.VMView `json:"vm"`
}

func (h handlers) getBootOrder(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	vm, err := h.app.Queries.GetVM.Handle(c.UserContext(), app.GetVM{Caller: callerOf(c), Ref: ref})
	if err != nil {
		return err
	}
	return c.JSON(bootOrderResponse{BootOrder: string(vm.BootOrder)})
}

func (h handlers) setBootOrder(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	var in bootOrderRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	order, err := domain.ParseBootOrder(*in.BootOrder)
	if err != nil {
		return err
	}
	vm, err := h.app.Commands.SetBootOrder.Handle(c.UserContext(), app.SetBootOrder{Caller: callerOf(c), Ref: ref, Order: order})
	if err != nil {
		return err
	}
	message := "Boot order saved"
	if vm.BootOrderPending() {
		message = "Boot order saved; it applies at the VM's next start"
	}
	return c.JSON(actionResponse{VMView: app.ViewOf(vm), Message: message})
}

func (h handlers) finalizeInstall(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	vm, err := h.app.Commands.FinalizeInstall.Handle(c.UserContext(), app.FinalizeInstall{Caller: callerOf(c), Ref: ref})
	if err != nil {
		return err
	}
	message := "Installation finalized: CD-ROM ejected, the VM boots from its disk"
	if vm.BootOrderPending() {
		message = "Installation finalized: CD-ROM ejected; the VM boots from its disk from its next start"
	}
	return c.JSON(finalizeResponse{Message: message, VMUUID: vm.UUID.String(), VM: app.ViewOf(vm)})
}
