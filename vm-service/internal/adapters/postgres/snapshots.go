package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"limen/libs/contract"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// Snapshots implements app.SnapshotRepository beside VMs: a VM's snapshots are written only under its
// row lock, in the transaction of the VM's own change, so the rules spanning them (a name once per VM,
// the limit) are checked against what is really there, and a snapshot's end commits with its task's.
type Snapshots struct {
	vms *VMs
}

// NewSnapshots keeps snapshots beside vms.
func NewSnapshots(vms *VMs) *Snapshots { return &Snapshots{vms: vms} }

const snapshotColumns = `s.id, s.vm_id, v.uuid, s.name, s.description, s.state, s.cpu, s.memory_mib, s.machine_name,
	s.taken, s.created_at, s.updated_at FROM snapshots s JOIN vms v ON v.id = s.vm_id`

func scanSnapshot(row pgx.Row) (*domain.Snapshot, error) {
	var s domain.Snapshot
	var state string
	err := row.Scan(&s.ID, &s.VMID, &s.VMUUID, &s.Name, &s.Description, &state, &s.CPU, &s.MemoryMiB, &s.Machine,
		&s.Taken, &s.CreatedAt, &s.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.ErrSnapshotNotFound
	}
	if err != nil {
		return nil, err
	}
	s.State = domain.Status(state)
	return &s, nil
}

func (r *Snapshots) Get(ctx context.Context, id int64) (*domain.Snapshot, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return scanSnapshot(r.vms.pool.QueryRow(ctx, `SELECT `+snapshotColumns+` WHERE s.id = $1`, id))
}

func (r *Snapshots) List(ctx context.Context, vmID int64) ([]*domain.Snapshot, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return list(ctx, r.vms.pool, vmID)
}

func list(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, vmID int64) ([]*domain.Snapshot, error) {
	var rows pgx.Rows
	var err error
	if vmID == 0 {
		rows, err = q.Query(ctx, `SELECT `+snapshotColumns+` ORDER BY s.id`)
	} else {
		rows, err = q.Query(ctx, `SELECT `+snapshotColumns+` WHERE s.vm_id = $1 ORDER BY s.id`, vmID)
	}
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (*domain.Snapshot, error) { return scanSnapshot(row) })
}

func (r *Snapshots) Update(ctx context.Context, id uuid.UUID, change func(*domain.VM, *domain.Snapshots) error) (*domain.VM, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var vm *domain.VM
	err := pgdb.InTx(ctx, r.vms.pool, func(tx pgx.Tx) error {
		var err error
		vm, err = r.vms.update(ctx, tx, id, func(vm *domain.VM) error {
			// The VM's row is locked: its snapshots cannot change until this transaction ends.
			current, err := list(ctx, tx, vm.ID)
			if err != nil {
				return err
			}
			before := make(map[int64]domain.Snapshot, len(current))
			for _, s := range current {
				before[s.ID] = *s
			}
			set := &domain.Snapshots{List: current}
			if err := change(vm, set); err != nil {
				return err
			}
			return r.store(ctx, tx, vm, before, set)
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return vm, nil
}

// store writes what changed from before to set: new snapshots are inserted (their ids set), changed
// ones updated, missing ones deleted; a snapshot becoming taken, and a taken one going, are announced.
func (r *Snapshots) store(ctx context.Context, tx pgx.Tx, vm *domain.VM, before map[int64]domain.Snapshot, set *domain.Snapshots) error {
	for _, s := range set.List {
		old, known := before[s.ID]
		delete(before, s.ID)
		switch {
		case s.ID == 0:
			err := tx.QueryRow(ctx, `INSERT INTO snapshots (vm_id, name, description, state, cpu, memory_mib, machine_name,
				taken, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
				vm.ID, s.Name, s.Description, string(s.State), s.CPU, s.MemoryMiB, s.Machine, s.Taken, s.CreatedAt,
				s.UpdatedAt).Scan(&s.ID)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.ConstraintName == "snapshots_vm_name_key" {
				return domain.ErrSnapshotNameTaken
			}
			if err != nil {
				return err
			}
		case !known || old == *s:
			continue
		default:
			if _, err := tx.Exec(ctx, `UPDATE snapshots SET description = $2, state = $3, taken = $4, updated_at = $5 WHERE id = $1`,
				s.ID, s.Description, string(s.State), s.Taken, s.UpdatedAt); err != nil {
				return err
			}
		}
		if s.Taken && !old.Taken {
			if err := r.publish(ctx, tx, contract.TypeSnapshotUpdated, vm, s); err != nil {
				return err
			}
		}
	}
	for id, gone := range before {
		if _, err := tx.Exec(ctx, `DELETE FROM snapshots WHERE id = $1`, id); err != nil {
			return err
		}
		if gone.Taken {
			if err := r.publish(ctx, tx, contract.TypeSnapshotDeleted, vm, &gone); err != nil {
				return err
			}
		}
	}
	return nil
}

// publish adds a snapshot event, numbered from snapshot_events under the VM's row lock, so a VM's
// snapshot events are numbered in commit order.
func (r *Snapshots) publish(ctx context.Context, tx pgx.Tx, eventType string, vm *domain.VM, s *domain.Snapshot) error {
	var sequence int64
	if err := tx.QueryRow(ctx, `SELECT nextval('snapshot_events')`).Scan(&sequence); err != nil {
		return err
	}
	return r.vms.events.Add(ctx, tx, outbox.Event{
		Topic: contract.TopicVMEvents, Type: eventType, Subject: vm.UUID.String(), OwnerID: vm.OwnerID, Sequence: sequence,
		Data: app.SnapshotViewOf(s),
	})
}
