package http

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
)

// internalEject empties a VM's drive for a peer service (vm-service finishing an installation): the
// detach of the public route, for any VM, recorded and announced the same way.
func (h handlers) internalEject(c *fiber.Ctx) error {
	_, err := h.app.Commands.ChangeMedia.Handle(c.UserContext(),
		app.ChangeMedia{Caller: app.System, Ref: c.Params("ref"), Action: string(domain.ActionDetach)})
	if err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}
