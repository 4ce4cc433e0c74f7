package postgres

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/pgdb"
)

// Installation is this installation's identity, made by the first migration run.
func Installation(ctx context.Context, pool *pgxpool.Pool) (uuid.UUID, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var id uuid.UUID
	err := pool.QueryRow(ctx, `SELECT id FROM installation`).Scan(&id)
	return id, err
}
