// Package postgres keeps media-service's attachment history in schema media, each change together
// with its event in the outbox of the same schema.
package postgres

import (
	"context"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/contract"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
)

// History implements app.History and app.Claims (claims.go).
type History struct {
	pool   *pgxpool.Pool
	events *outbox.Writer

	mu    sync.Mutex
	turns map[uuid.UUID]*turn      // this process's queue per VM, ahead of the database claim
	held  map[uuid.UUID]*heldClaim // the claims this process holds, by token
}

func NewHistory(pool *pgxpool.Pool, events *outbox.Writer) *History {
	return &History{pool: pool, events: events, turns: map[uuid.UUID]*turn{}, held: map[uuid.UUID]*heldClaim{}}
}

// Record stores the change and its event and ends the claim in one short transaction. It holds the
// VM's advisory lock for that transaction only (no hypervisor call inside), so that one VM's history
// ids, and with them its events' order, follow the order of its changes even should a claim have
// been lost (expired) under a change.
func (h *History) Record(ctx context.Context, claim app.Claim, c domain.Change) error {
	leave := h.drop(claim.Token)
	defer leave()
	// The drive has changed: a caller gone since must not keep that from the history.
	ctx, cancel := pgdb.Deadline(context.WithoutCancel(ctx))
	defer cancel()
	err := pgdb.InTx(ctx, h.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('limen-media:' || $1::text, 0))`, c.VMUUID); err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO media_changes (vm_uuid, owner_id, actor_id, action, iso_path, at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			c.VMUUID, c.OwnerID, c.ActorID, string(c.Action), c.ISOPath, c.At).Scan(&id); err != nil {
			return err
		}
		data := contract.MediaChange{VMUUID: c.VMUUID.String()}
		if c.Action == domain.ActionAttach {
			data.MediaPath, data.Attached = c.ISOPath, true
		}
		// The history id grows with every change, so it orders one VM's media events.
		if err := h.events.Add(ctx, tx, outbox.Event{Topic: contract.TopicMediaEvents, Type: contract.TypeMediaChanged,
			Subject: c.VMUUID.String(), OwnerID: c.OwnerID, Sequence: id, Data: data}); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM media_claims WHERE token = $1`, claim.Token)
		return err
	})
	if err != nil {
		_ = h.endClaim(ctx, claim.Token) // else it expires
	}
	return err
}
