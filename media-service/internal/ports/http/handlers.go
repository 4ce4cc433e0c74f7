// Package http is media-service's Fiber port: reading and changing a VM's CD-ROM drive, listing the
// ISO library, and the admin's ISO upload and delete (docs/openapi.yaml).
package http

import (
	"net/http"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/web"
	"limen/media-service/internal/app"
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

// Mount adds media-service's routes to fiberApp.
func Mount(fiberApp *fiber.App, application app.Application, cfg Config) {
	h := handlers{app: application}
	api := fiberApp.Group("/api/vms", authn.RequireToken(cfg.Verifier))
	api.Get("/isos", h.listISOs)
	api.Post("/isos", authn.RequireAdmin(), h.uploadISO)
	api.Delete("/isos/:name", authn.RequireAdmin(), h.deleteISO)
	api.Get("/:ref/media", h.getMedia)
	api.Post("/:ref/media", h.changeMedia)

	// The token guards the whole prefix, so even an unknown internal path tells a stranger nothing.
	fiberApp.Use(contract.InternalPrefix, authn.RequireServiceToken(cfg.InternalToken))
	fiberApp.Post(contract.InternalEjectRoute, h.internalEject)
}

func callerOf(c *fiber.Ctx) app.Caller {
	claims := authn.ClaimsOf(c)
	return app.Caller{UserID: claims.UserID, Admin: claims.IsAdmin()}
}

func (h handlers) listISOs(c *fiber.Ctx) error {
	isos, err := h.app.Queries.ListISOs.Handle(c.UserContext(), app.ListISOs{})
	if err != nil {
		return err
	}
	out := isoListResponse{ISOs: make([]isoResponse, 0, len(isos)), Count: len(isos)}
	for _, iso := range isos {
		out.ISOs = append(out.ISOs, toISOResponse(iso))
	}
	return c.JSON(out)
}

func (h handlers) getMedia(c *fiber.Ctx) error {
	m, err := h.app.Queries.GetMedia.Handle(c.UserContext(), app.GetMedia{Caller: callerOf(c), Ref: c.Params("ref")})
	if err != nil {
		return err
	}
	return c.JSON(mediaResponse{VMUUID: m.VMUUID.String(), MediaPath: m.Path, Attached: m.Attached})
}

func (h handlers) changeMedia(c *fiber.Ctx) error {
	var in mediaRequest
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	m, err := h.app.Commands.ChangeMedia.Handle(c.UserContext(),
		app.ChangeMedia{Caller: callerOf(c), Ref: c.Params("ref"), Action: *in.Action, ISOPath: in.ISOPath})
	if err != nil {
		return err
	}
	if !m.Attached {
		return c.JSON(detachResponse{Message: "Media detached successfully", VMUUID: m.VMUUID.String()})
	}
	return c.JSON(attachResponse{Message: "Media attached successfully", VMUUID: m.VMUUID.String(), ISOPath: m.Path})
}

func (h handlers) uploadISO(c *fiber.Ctx) error {
	body, size, err := web.UploadBody(c, h.app.Commands.UploadISO.MaxBytes)
	if err != nil {
		return err
	}
	announced, err := announcedSHA256(c)
	if err != nil {
		return err
	}
	up, err := h.app.Commands.UploadISO.Handle(c.UserContext(),
		app.UploadISO{Name: c.Query("name"), Size: size, Body: body, AnnouncedSHA256: announced})
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(uploadResponse{Message: "ISO uploaded successfully", ISO: toISOResponse(up.ISO), SHA256: up.SHA256})
}

func (h handlers) deleteISO(c *fiber.Ctx) error {
	// Fiber hands path parameters over still escaped: "a%20b.iso" names the ISO "a b.iso", which the
	// upload accepts (its name is a decoded query value) and the list shows. An escape that does not
	// decode names no ISO (and is answered like any other name that is no ISO's).
	name := c.Params("name")
	if decoded, err := url.PathUnescape(name); err == nil {
		name = decoded
	}
	if err := h.app.Commands.DeleteISO.Handle(c.UserContext(), app.DeleteISO{Name: name}); err != nil {
		return err
	}
	return c.JSON(deleteISOResponse{Message: "ISO deleted successfully", Name: name})
}
