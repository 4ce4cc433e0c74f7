package http

import (
	"bytes"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"limen/libs/web"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// snapshotRequest is the body of a snapshot's creation; a missing name is the domain's to refuse,
// with the contract's message.
type snapshotRequest struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
}

// snapshotDone answers a restore or a deletion.
type snapshotDone struct {
	Message    string `json:"message"`
	SnapshotID int64  `json:"snapshot_id"`
}

// mountSnapshots adds the snapshot routes: a VM's under vms (/api/vms, token checked), one
// snapshot's under snapshots (/api/snapshots, token checked).
func (h handlers) mountSnapshots(vms, snapshots fiber.Router) {
	vms.Get("/:ref/snapshots", h.listSnapshots)
	vms.Post("/:ref/snapshots", h.createSnapshot)
	snapshots.Post("/:id/restore", h.restoreSnapshot)
	snapshots.Delete("/:id", h.deleteSnapshot)
}

func snapshotViews(snaps []*domain.Snapshot) []app.SnapshotView {
	out := make([]app.SnapshotView, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, app.SnapshotViewOf(s))
	}
	return out
}

func (h handlers) listSnapshots(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	snaps, err := h.app.Queries.ListSnapshots.Handle(c.UserContext(), app.ListSnapshots{Caller: callerOf(c), Ref: ref})
	if err != nil {
		return err
	}
	return c.JSON(snapshotViews(snaps))
}

func (h handlers) createSnapshot(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	var in snapshotRequest
	// No body at all names no snapshot either: the same 400 as an empty name.
	if len(bytes.TrimSpace(c.Body())) > 0 {
		if err := web.DecodeJSON(c, &in); err != nil {
			return err
		}
	}
	cmd := app.CreateSnapshot{Caller: callerOf(c), Ref: ref}
	if in.Name != nil {
		cmd.Name = *in.Name
	}
	if in.Description != nil {
		cmd.Description = *in.Description
	}
	snap, err := h.app.Commands.CreateSnapshot.Handle(c.UserContext(), cmd)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(app.SnapshotViewOf(snap))
}

func (h handlers) restoreSnapshot(c *fiber.Ctx) error {
	id, err := domain.ParseSnapshotID(c.Params("id"))
	if err != nil {
		return err
	}
	snap, err := h.app.Commands.RestoreSnapshot.Handle(c.UserContext(), app.RestoreSnapshot{Caller: callerOf(c), ID: id})
	if err != nil {
		return err
	}
	return c.JSON(snapshotDone{Message: "Snapshot restored successfully", SnapshotID: snap.ID})
}

func (h handlers) deleteSnapshot(c *fiber.Ctx) error {
	id, err := domain.ParseSnapshotID(c.Params("id"))
	if err != nil {
		return err
	}
	snap, err := h.app.Commands.DeleteSnapshot.Handle(c.UserContext(), app.DeleteSnapshot{Caller: callerOf(c), ID: id})
	if err != nil {
		return err
	}
	return c.JSON(snapshotDone{Message: "Snapshot deleted successfully", SnapshotID: snap.ID})
}
