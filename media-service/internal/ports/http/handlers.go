// Package http is media-service's Fiber port: the media guide's routes, and the admin's ISO upload and
// delete beyond it.
package http

import (
	"net/http"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"limen/libs/authn"
	"limen/libs/web"
	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
)

// UseCases are what the handlers call.
type UseCases struct {
	ListISOs  app.ListISOs
	GetMedia  app.GetMedia
	Change    app.ChangeMedia
	UploadISO app.UploadISO
	DeleteISO app.DeleteISO
}

type handlers struct {
	uc UseCases
}

// Mount adds media-service's routes to app.
func Mount(app *fiber.App, uc UseCases, verifier *authn.Verifier) {
	h := handlers{uc: uc}
	api := app.Group("/api/vms", authn.RequireToken(verifier))
	api.Get("/isos", h.listISOs)
	api.Post("/isos", authn.RequireAdmin(), h.uploadISO)
	api.Delete("/isos/:name", authn.RequireAdmin(), h.deleteISO)
	api.Get("/:ref/media", h.getMedia)
	api.Post("/:ref/media", h.changeMedia)
}

func callerOf(c *fiber.Ctx) app.Caller {
	claims := authn.ClaimsOf(c)
	return app.Caller{UserID: claims.UserID, Admin: claims.IsAdmin()}
}

func (h handlers) listISOs(c *fiber.Ctx) error {
	isos, err := h.uc.ListISOs.Handle(c.UserContext())
	if err != nil {
		return toHTTP(err)
	}
	out := isoListResponse{ISOs: make([]isoResponse, 0, len(isos)), Count: len(isos)}
	for _, iso := range isos {
		out.ISOs = append(out.ISOs, toISOResponse(iso))
	}
	return c.JSON(out)
}

func (h handlers) getMedia(c *fiber.Ctx) error {
	m, err := h.uc.GetMedia.Handle(c.UserContext(), callerOf(c), c.Params("ref"))
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(mediaResponse{VMUUID: m.VMUUID.String(), MediaPath: m.Path, Attached: m.Attached})
}

func (h handlers) changeMedia(c *fiber.Ctx) error {
	var in mediaRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	action, err := domain.ParseAction(*in.Action)
	if err != nil {
		return toHTTP(err)
	}
	ctx, caller, ref := c.UserContext(), callerOf(c), c.Params("ref")
	if action == domain.ActionDetach {
		vm, err := h.uc.Change.Detach(ctx, caller, ref)
		if err != nil {
			return toHTTP(err)
		}
		return c.JSON(detachResponse{Message: "Media detached successfully", VMUUID: vm.UUID.String()})
	}
	vm, path, err := h.uc.Change.Attach(ctx, caller, ref, in.ISOPath)
	if err != nil {
		return toHTTP(err)
	}
	return c.JSON(attachResponse{Message: "Media attached successfully", VMUUID: vm.UUID.String(), ISOPath: path})
}

func (h handlers) uploadISO(c *fiber.Ctx) error {
	body, size, err := web.UploadBody(c, h.uc.UploadISO.MaxBytes)
	if err != nil {
		return err
	}
	announced, err := announcedSHA256(c)
	if err != nil {
		return toHTTP(err)
	}
	iso, sum, err := h.uc.UploadISO.Handle(c.UserContext(), c.Query("name"), size, body, announced)
	if err != nil {
		return toHTTP(err)
	}
	return c.Status(http.StatusCreated).JSON(uploadResponse{Message: "ISO uploaded successfully", ISO: toISOResponse(iso), SHA256: sum})
}

func (h handlers) deleteISO(c *fiber.Ctx) error {
	// Fiber hands path parameters over still escaped: "a%20b.iso" names the ISO "a b.iso", which the
	// upload accepts (its name is a decoded query value) and the list shows. An escape that does not
	// decode names no ISO (and is answered like any other name that is no ISO's).
	name := c.Params("name")
	if decoded, err := url.PathUnescape(name); err == nil {
		name = decoded
	}
	if err := h.uc.DeleteISO.Handle(c.UserContext(), name); err != nil {
		return toHTTP(err)
	}
	return c.JSON(deleteISOResponse{Message: "ISO deleted successfully", Name: name})
}
