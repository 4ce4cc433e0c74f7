// Package postgres stores vm-service's VMs in schema vm, each change together with its event in the
// outbox of the same schema.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/contract"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// VMs implements app.Repository. Every method bounds its database work with pgdb.Deadline (the
// caller's deadline, or pgdb.CallTimeout), so a hung connection never hangs a request or a loop.
type VMs struct {
	pool    *pgxpool.Pool
	events  *outbox.Writer
	columns string
}

// NewVMs stores VMs in pool. A task counts as live (it blocks other actions) while the process that
// claimed it has heartbeated within taskLease (see Replica).
func NewVMs(pool *pgxpool.Pool, events *outbox.Writer, taskLease time.Duration) *VMs {
	return &VMs{pool: pool, events: events, columns: vmColumns + `, ` + taskLive(taskLease) + ` AS task_live`}
}

const vmColumns = `id, uuid, owner_id, name, cpu, memory_mib, os_type, disk_gb, status, status_reason, host,
	task, task_since, version, created_at, updated_at, task_owner, boot_order`

// taskLive is true for a VM's task whose process still heartbeats, judged by the database's clock so
// replicas' clocks never matter. A task claimed before claims named their process has no owner and
// lives for domain.LegacyTaskStaleAfter, as it did then.
func taskLive(lease time.Duration) string {
	return fmt.Sprintf(`CASE WHEN vms.task = '' THEN false
		WHEN vms.task_owner IS NULL THEN vms.task_since > now() - interval '%d milliseconds'
		ELSE EXISTS (SELECT 1 FROM replicas r WHERE r.id = vms.task_owner AND r.heartbeat_at > now() - interval '%d milliseconds') END`,
		domain.LegacyTaskStaleAfter.Milliseconds(), lease.Milliseconds())
}

func scanVM(row pgx.Row) (*domain.VM, error) {
	var vm domain.VM
	var status, task, bootOrder string
	var taskSince *time.Time
	var taskOwner *uuid.UUID
	err := row.Scan(&vm.ID, &vm.UUID, &vm.OwnerID, &vm.Name, &vm.CPU, &vm.MemoryMiB, &vm.OSType, &vm.DiskGB,
		&status, &vm.StatusReason, &vm.Host, &task, &taskSince, &vm.Version, &vm.CreatedAt, &vm.UpdatedAt,
		&taskOwner, &bootOrder, &vm.TaskLive)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.ErrVMNotFound
	}
	if err != nil {
		return nil, err
	}
	vm.Status, vm.Task, vm.BootOrder = domain.Status(status), domain.Action(task), domain.BootOrder(bootOrder)
	if taskSince != nil {
		vm.TaskSince = *taskSince
	}
	if taskOwner != nil {
		vm.TaskOwner = *taskOwner
	}
	return &vm, nil
}

func (r *VMs) Add(ctx context.Context, vm *domain.VM) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO vms (uuid, owner_id, name, cpu, memory_mib, os_type, disk_gb, status,
			status_reason, host, version, created_at, updated_at, boot_order)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`,
			vm.UUID, vm.OwnerID, vm.Name, vm.CPU, vm.MemoryMiB, vm.OSType, vm.DiskGB, string(vm.Status),
			vm.StatusReason, vm.Host, vm.Version, vm.CreatedAt, vm.UpdatedAt, string(vm.BootOrder)).Scan(&vm.ID)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.ConstraintName == "vms_owner_name_key" {
			return domain.ErrNameTaken
		}
		if err != nil {
			return err
		}
		return r.publish(ctx, tx, contract.TypeVMUpdated, vm, vm.Version)
	})
}

func (r *VMs) Usage(ctx context.Context, ownerID int64) (domain.Usage, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var u domain.Usage
	err := r.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(cpu), 0), coalesce(sum(memory_mib), 0) FROM vms WHERE owner_id = $1`,
		ownerID).Scan(&u.VMs, &u.CPU, &u.MemoryMiB)
	return u, err
}

func (r *VMs) Get(ctx context.Context, ref domain.Ref) (*domain.VM, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	if ref.ID != 0 {
		return scanVM(r.pool.QueryRow(ctx, `SELECT `+r.columns+` FROM vms WHERE id = $1`, ref.ID))
	}
	return scanVM(r.pool.QueryRow(ctx, `SELECT `+r.columns+` FROM vms WHERE uuid = $1`, ref.UUID))
}

func (r *VMs) List(ctx context.Context, ownerID int64) ([]*domain.VM, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var rows pgx.Rows
	var err error
	if ownerID == 0 {
		rows, err = r.pool.Query(ctx, `SELECT `+r.columns+` FROM vms ORDER BY id`)
	} else {
		rows, err = r.pool.Query(ctx, `SELECT `+r.columns+` FROM vms WHERE owner_id = $1 ORDER BY id`, ownerID)
	}
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*domain.VM, error) { return scanVM(row) })
}

func (r *VMs) NameTaken(ctx context.Context, ownerID int64, name string) (bool, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var taken bool
	err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM vms WHERE owner_id = $1 AND name = $2)`, ownerID, name).Scan(&taken)
	return taken, err
}

func (r *VMs) Update(ctx context.Context, id uuid.UUID, change func(*domain.VM) error) (*domain.VM, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var vm *domain.VM
	err := pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		var err error
		vm, err = r.update(ctx, tx, id, change)
		return err
	})
	if err != nil {
		return nil, err
	}
	return vm, nil
}

// update is Update within tx, for changes that write more than the VM in the same transaction.
func (r *VMs) update(ctx context.Context, tx pgx.Tx, id uuid.UUID, change func(*domain.VM) error) (*domain.VM, error) {
	vm, err := scanVM(tx.QueryRow(ctx, `SELECT `+r.columns+` FROM vms WHERE uuid = $1 FOR UPDATE`, id))
	if err != nil {
		return nil, err
	}
	before := vm.Version
	if err := change(vm); err != nil {
		return nil, err
	}
	if vm.Version != before {
		// One write is one event: a change that touched the VM twice (a task's end and the status it
		// left) still moves the version by one, so readers see its events' sequence without gaps.
		vm.Version = before + 1
	}
	var taskSince *time.Time
	var taskOwner *uuid.UUID
	if vm.Task != "" {
		taskSince = &vm.TaskSince
		if vm.TaskOwner != uuid.Nil {
			taskOwner = &vm.TaskOwner
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE vms SET cpu = $2, memory_mib = $3, status = $4, status_reason = $5, host = $6,
		task = $7, task_since = $8, version = $9, updated_at = $10, task_owner = $11, boot_order = $12 WHERE id = $1`,
		vm.ID, vm.CPU, vm.MemoryMiB, string(vm.Status), vm.StatusReason, vm.Host, string(vm.Task), taskSince,
		vm.Version, vm.UpdatedAt, taskOwner, string(vm.BootOrder)); err != nil {
		return nil, err
	}
	if vm.Version != before {
		if err := r.publish(ctx, tx, contract.TypeVMUpdated, vm, vm.Version); err != nil {
			return nil, err
		}
	}
	return vm, nil
}

func (r *VMs) Remove(ctx context.Context, vm *domain.VM) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		var version int64
		err := tx.QueryRow(ctx, `DELETE FROM vms WHERE uuid = $1 RETURNING version`, vm.UUID).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.ErrVMNotFound
		}
		if err != nil {
			return err
		}
		// The deletion comes after every update of the VM, so it takes the next sequence number.
		return r.publish(ctx, tx, contract.TypeVMDeleted, vm, version+1)
	})
}

func (r *VMs) publish(ctx context.Context, tx pgx.Tx, eventType string, vm *domain.VM, sequence int64) error {
	return r.events.Add(ctx, tx, vmEvent(eventType, vm, sequence))
}

// vmEvent is the event of a VM's change: the VM as the API shows it, which readers of other services
// decode as contract.VMRef.
func vmEvent(eventType string, vm *domain.VM, sequence int64) outbox.Event {
	return outbox.Event{
		Topic: contract.TopicVMEvents, Type: eventType, Subject: vm.UUID.String(), OwnerID: vm.OwnerID, Sequence: sequence,
		Data: app.ViewOf(vm),
	}
}
