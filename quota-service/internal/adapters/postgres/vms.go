package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"limen/quota-service/internal/domain"
)

// recordVM records a VM (the one target names: uuid and user_id) at $2 vCPUs, $3 MiB and version $4
// unless the recorded state is as new or the VM is gone (VM uuids are never reused), settles as
// committed the pending reservations that create it (it exists), and changes the user's usage by
// what that changed. The user's row must be locked already: every writer of a user's VMs and
// reservations holds that lock, so this statement's snapshot is current.
const recordVM = `WITH target AS (%s), created AS (
	UPDATE reservations r SET state = 'committed', settled_at = now() FROM target
	WHERE r.state = 'pending' AND r.vm_uuid = target.uuid AND r.user_id = target.user_id AND r.vms > 0
	RETURNING greatest(r.vms, 0) AS vms, greatest(r.cpu, 0) AS cpu, greatest(r.memory, 0) AS memory
), old AS (
	SELECT v.cpu, v.memory FROM vms v, target WHERE v.uuid = target.uuid AND v.deleted_at IS NULL
), put AS (
	INSERT INTO vms AS v (uuid, user_id, cpu, memory, version) SELECT uuid, user_id, $2, $3, $4 FROM target
	ON CONFLICT (uuid) DO UPDATE SET cpu = excluded.cpu, memory = excluded.memory, version = excluded.version, updated_at = now()
	WHERE v.deleted_at IS NULL AND v.version < excluded.version
	RETURNING v.cpu, v.memory
), delta AS (
	SELECT coalesce((SELECT 1 - (SELECT count(*) FROM old) FROM put), 0) - coalesce((SELECT sum(vms) FROM created), 0) AS vms,
	       coalesce((SELECT put.cpu - coalesce((SELECT cpu FROM old), 0) FROM put), 0) - coalesce((SELECT sum(cpu) FROM created), 0) AS cpu,
	       coalesce((SELECT put.memory - coalesce((SELECT memory FROM old), 0) FROM put), 0) - coalesce((SELECT sum(memory) FROM created), 0) AS memory
)
UPDATE quotas SET vms = quotas.vms + delta.vms, cpu = quotas.cpu + delta.cpu, memory = quotas.memory + delta.memory, updated_at = now()
FROM delta, target WHERE quotas.user_id = target.user_id`

var (
	// recordVMSQL is recordVM for VM $1 of user $5.
	recordVMSQL = fmt.Sprintf(recordVM, `SELECT $1::uuid AS uuid, $5::bigint AS user_id`)
	// recordCommittedSQL is recordVM for the VM of reservation $1, if it is committed.
	recordCommittedSQL = fmt.Sprintf(recordVM, `SELECT vm_uuid AS uuid, user_id FROM reservations WHERE key = $1 AND state = 'committed'`)
)

func (s *Store) ApplyVM(ctx context.Context, vm domain.VMState) error {
	return s.pipelined(ctx, func(send func(*pgx.Batch) error) error {
		b := &pgx.Batch{}
		b.Queue(createSQL, vm.OwnerID, s.defaults.VMs, s.defaults.CPU, s.defaults.MemoryMiB)
		b.Queue(lockQuotaSQL, vm.OwnerID)
		b.Queue(recordVMSQL, vm.UUID, vm.CPU, vm.MemoryMiB, vm.Version, vm.OwnerID)
		return send(b)
	})
}

// removeVMSQL records that VM $1 of user $2 is gone, releases its pending reservations and frees
// what both took, under the user's lock (taken by the statement before). A VM never recorded gets
// a tombstone all the same, so that a late report of it counts nothing.
const removeVMSQL = `WITH held AS (
	UPDATE reservations SET state = 'released', settled_at = now()
	WHERE state = 'pending' AND vm_uuid = $1 AND user_id = $2
	RETURNING greatest(vms, 0) AS vms, greatest(cpu, 0) AS cpu, greatest(memory, 0) AS memory
), gone AS (
	UPDATE vms SET deleted_at = now(), updated_at = now() WHERE uuid = $1 AND deleted_at IS NULL
	RETURNING cpu, memory
), tombstone AS (
	INSERT INTO vms (uuid, user_id, cpu, memory, version, deleted_at) VALUES ($1, $2, 0, 0, 0, now())
	ON CONFLICT (uuid) DO NOTHING
), freed AS (
	SELECT (SELECT count(*) FROM gone) + (SELECT coalesce(sum(vms), 0) FROM held) AS vms,
	       (SELECT coalesce(sum(cpu), 0) FROM gone) + (SELECT coalesce(sum(cpu), 0) FROM held) AS cpu,
	       (SELECT coalesce(sum(memory), 0) FROM gone) + (SELECT coalesce(sum(memory), 0) FROM held) AS memory
)
UPDATE quotas SET vms = quotas.vms - freed.vms, cpu = quotas.cpu - freed.cpu, memory = quotas.memory - freed.memory, updated_at = now()
FROM freed WHERE user_id = $2`

func (s *Store) RemoveVM(ctx context.Context, vm uuid.UUID, owner int64) error {
	return s.pipelined(ctx, func(send func(*pgx.Batch) error) error {
		b := &pgx.Batch{}
		b.Queue(lockQuotaSQL, owner)
		b.Queue(removeVMSQL, vm, owner)
		return send(b)
	})
}
