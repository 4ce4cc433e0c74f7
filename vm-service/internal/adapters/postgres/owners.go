package postgres

import (
	"context"

	"limen/libs/pgdb"
	"limen/vm-service/internal/domain"
)

// UsageByOwner implements app.UsageByOwner: one grouped query for every owner asked for; an owner
// without VMs is absent from the answer.
func (r *VMs) UsageByOwner(ctx context.Context, ownerIDs []int64) (map[int64]domain.Usage, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	rows, err := r.pool.Query(ctx, `SELECT owner_id, count(*), coalesce(sum(cpu), 0), coalesce(sum(memory_mib), 0)
		FROM vms WHERE owner_id = ANY($1) GROUP BY owner_id`, ownerIDs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	usage := make(map[int64]domain.Usage, len(ownerIDs))
	for rows.Next() {
		var owner int64
		var u domain.Usage
		if err := rows.Scan(&owner, &u.VMs, &u.CPU, &u.MemoryMiB); err != nil {
			return nil, err
		}
		usage[owner] = u
	}
	return usage, rows.Err()
}
