// Package postgres keeps media-service's attachment history in schema media, each change together
// with its event in the outbox of the same schema.
package postgres

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/media-service/internal/domain"
)

// Topic and event type of media changes (ARCHITECTURE "Events").
const (
	Topic       = "limen.media.events"
	TypeChanged = "limen.media.changed"
)

// History implements app.History.
type History struct {
	pool   *pgxpool.Pool
	events *outbox.Writer
}

func NewHistory(pool *pgxpool.Pool, events *outbox.Writer) *History {
	return &History{pool: pool, events: events}
}

// mediaEvent is the event's data: what the WebSocket pushes as media_update.
type mediaEvent struct {
	VMUUID    string `json:"vm_uuid"`
	MediaPath string `json:"media_path"`
	Attached  bool   `json:"attached"`
}

// Change holds a transaction-scoped advisory lock on the VM while change runs, so that replicas apply
// one VM's attach and eject requests one at a time and record them in the order they happened.
func (h *History) Change(ctx context.Context, vm uuid.UUID, change func(ctx context.Context) (domain.Change, error)) error {
	return pgdb.InTx(ctx, h.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('limen-media:' || $1::text, 0))`, vm); err != nil {
			return err
		}
		c, err := change(ctx)
		if err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO media_changes (vm_uuid, owner_id, actor_id, action, iso_path, at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			c.VMUUID, c.OwnerID, c.ActorID, string(c.Action), c.ISOPath, c.At).Scan(&id); err != nil {
			return err
		}
		data := mediaEvent{VMUUID: c.VMUUID.String()}
		if c.Action == domain.ActionAttach {
			data.MediaPath, data.Attached = c.ISOPath, true
		}
		// The history id grows with every change, so it orders one VM's media events.
		return h.events.Add(ctx, tx, outbox.Event{Topic: Topic, Type: TypeChanged, Subject: c.VMUUID.String(),
			OwnerID: c.OwnerID, Sequence: id, Data: data})
	})
}
