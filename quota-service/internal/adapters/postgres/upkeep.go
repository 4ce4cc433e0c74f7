package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"limen/libs/pgdb"
	"limen/quota-service/internal/domain"
)

// expireSQL expires user $1's pending reservations past their time and frees their holds, under the
// user's lock (taken by the statement before); it says how many.
const expireSQL = `WITH ended AS (
	UPDATE reservations SET state = 'expired', settled_at = now()
	WHERE state = 'pending' AND user_id = $1 AND expires_at <= now()
	RETURNING greatest(vms, 0) AS vms, greatest(cpu, 0) AS cpu, greatest(memory, 0) AS memory
), freed AS (
	SELECT count(*) AS n, coalesce(sum(vms), 0) AS vms, coalesce(sum(cpu), 0) AS cpu, coalesce(sum(memory), 0) AS memory FROM ended
), changed AS (
	UPDATE quotas SET vms = quotas.vms - freed.vms, cpu = quotas.cpu - freed.cpu, memory = quotas.memory - freed.memory, updated_at = now()
	FROM freed WHERE user_id = $1 AND freed.n > 0
)
SELECT n FROM freed`

func (s *Store) ExpireDue(ctx context.Context) (int, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT user_id FROM reservations WHERE state = 'pending' AND expires_at <= now()`)
	if err != nil {
		return 0, err
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, err
	}
	expired := 0
	for _, userID := range users {
		var n int
		err := s.pipelined(ctx, func(send func(*pgx.Batch) error) error {
			b := &pgx.Batch{}
			b.Queue(lockQuotaSQL, userID)
			b.Queue(expireSQL, userID).QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
			return send(b)
		})
		if err != nil {
			return expired, err
		}
		expired += n
	}
	return expired, nil
}

// expectedUsage is what user %[1]s holds according to the VMs and reservations tables.
const expectedUsage = `SELECT l.vms + h.vms, l.cpu + h.cpu, l.memory + h.memory FROM
	(SELECT count(*)::bigint AS vms, coalesce(sum(cpu), 0)::bigint AS cpu, coalesce(sum(memory), 0)::bigint AS memory
	   FROM vms WHERE user_id = %[1]s AND deleted_at IS NULL) l,
	(SELECT coalesce(sum(greatest(vms, 0)), 0)::bigint AS vms, coalesce(sum(greatest(cpu, 0)), 0)::bigint AS cpu,
	        coalesce(sum(greatest(memory, 0)), 0)::bigint AS memory
	   FROM reservations WHERE user_id = %[1]s AND state = 'pending') h`

func (s *Store) RepairDrift(ctx context.Context) ([]domain.Drift, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	// One statement sees one snapshot, in which every committed change moved usage and what it sums
	// together: a difference here is drift, not a change in flight.
	rows, err := s.pool.Query(ctx, `SELECT q.user_id FROM quotas q, LATERAL (`+fmt.Sprintf(expectedUsage, "q.user_id")+`) e(vms, cpu, memory)
		WHERE (q.vms, q.cpu, q.memory) <> (e.vms, e.cpu, e.memory)`)
	if err != nil {
		return nil, err
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	var drifts []domain.Drift
	for _, userID := range users {
		err := pgdb.InTx(ctx, s.pool, func(tx pgx.Tx) error {
			// The lock first: the next statement's snapshot then holds every change made under it.
			d := domain.Drift{UserID: userID}
			ok, err := found(tx.QueryRow(ctx, `SELECT vms, cpu, memory FROM quotas WHERE user_id = $1 FOR UPDATE`, userID).
				Scan(&d.Was.VMs, &d.Was.CPU, &d.Was.MemoryMiB))
			if err != nil || !ok {
				return err
			}
			if err := tx.QueryRow(ctx, fmt.Sprintf(expectedUsage, "$1"), userID).Scan(&d.Now.VMs, &d.Now.CPU, &d.Now.MemoryMiB); err != nil {
				return err
			}
			if d.Was == d.Now {
				return nil
			}
			drifts = append(drifts, d)
			_, err = tx.Exec(ctx, `UPDATE quotas SET vms = $2, cpu = $3, memory = $4, updated_at = now() WHERE user_id = $1`,
				userID, d.Now.VMs, d.Now.CPU, d.Now.MemoryMiB)
			return err
		})
		if err != nil {
			return drifts, err
		}
	}
	return drifts, nil
}

func (s *Store) UserIDs(ctx context.Context) ([]int64, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT user_id FROM quotas ORDER BY user_id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

func (s *Store) ForgetUser(ctx context.Context, userID int64) error {
	return s.pipelined(ctx, func(send func(*pgx.Batch) error) error {
		b := &pgx.Batch{}
		b.Queue(lockQuotaSQL, userID)
		for _, table := range []string{"reservations", "vms", "quotas"} {
			b.Queue(`DELETE FROM `+table+` WHERE user_id = $1`, userID)
		}
		return send(b)
	})
}

func (s *Store) Purge(ctx context.Context, before time.Time) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `DELETE FROM reservations WHERE state <> 'pending' AND settled_at < $1`, before); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM vms WHERE deleted_at < $1`, before)
	return err
}
