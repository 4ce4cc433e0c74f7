package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"limen/libs/pgdb"
	"limen/quota-service/internal/domain"
)

func (s *Store) Find(ctx context.Context, userID int64) (domain.Quota, bool, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	q, err := scanQuota(s.pool.QueryRow(ctx, `SELECT `+quotaColumns+` FROM quotas WHERE user_id = $1`, userID))
	ok, err := found(err)
	return q, ok, err
}

func (s *Store) Quota(ctx context.Context, userID int64) (domain.Quota, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	if q, ok, err := s.Find(ctx, userID); err != nil || ok {
		return q, err
	}
	if err := s.create(ctx, userID); err != nil {
		return domain.Quota{}, err
	}
	q, ok, err := s.Find(ctx, userID)
	if err == nil && !ok {
		return q, domain.ErrUserNotFound // removed with its user in between
	}
	return q, err
}

func (s *Store) List(ctx context.Context, limit, offset int) ([]domain.Quota, int, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+quotaColumns+` FROM quotas ORDER BY user_id LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	quotas, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (domain.Quota, error) { return scanQuota(row) })
	if err != nil {
		return nil, 0, err
	}
	var total int
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM quotas`).Scan(&total)
	return quotas, total, err
}

func (s *Store) SetLimits(ctx context.Context, userID int64, change domain.LimitsChange) (domain.Quota, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return scanQuota(s.pool.QueryRow(ctx, `INSERT INTO quotas AS q (user_id, max_vms, max_cpu, max_memory)
		VALUES ($1, coalesce($2::bigint, $5), coalesce($3::bigint, $6), coalesce($4::bigint, $7))
		ON CONFLICT (user_id) DO UPDATE SET max_vms = coalesce($2::bigint, q.max_vms), max_cpu = coalesce($3::bigint, q.max_cpu),
			max_memory = coalesce($4::bigint, q.max_memory), updated_at = now()
		RETURNING `+quotaColumns,
		userID, change.VMs, change.CPU, change.MemoryMiB, s.defaults.VMs, s.defaults.CPU, s.defaults.MemoryMiB))
}
