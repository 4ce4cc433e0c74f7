package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/contract"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/vm-service/internal/adapters/procfs"
	"limen/vm-service/internal/domain"
)

// Replica is one vm-service process in vm.replicas: a random id per start, named in every task the
// process claims, and a heartbeat it keeps fresh. A process whose heartbeat is older than the lease is
// dead: its claims block nothing (see VMs' task_live) and the next replica to start releases them.
// Heartbeats and their ages are the database's clock, so replicas' clocks never matter.
//
// The row also names the operating-system process (procfs.Process: kernel boot, PID namespace, PID,
// start time). A replica starting up does not wait out the lease of a process on its own machine that
// is no longer running (killed mid-action and replaced, say): see ReleaseDead.
type Replica struct {
	pool   *pgxpool.Pool
	events *outbox.Writer
	id     uuid.UUID
	host   string
	lease  time.Duration
	// self is this process; the zero Process when /proc cannot tell (then only heartbeats count).
	self procfs.Process
}

// NewReplica gives this process a fresh identity; nothing is written until Beat.
// lease is how long a process stays alive after its last beat.
// A released claim is a change of its VM, recorded in events as any other.
func NewReplica(pool *pgxpool.Pool, events *outbox.Writer, host string, lease time.Duration) *Replica {
	self, _ := procfs.Self() // no Linux /proc: the heartbeat alone decides
	return &Replica{pool: pool, events: events, id: uuid.New(), host: host, lease: lease, self: self}
}

// Process is the operating-system process this replica runs as (the zero Process when unknown).
func (r *Replica) Process() procfs.Process { return r.self }

// ID is this process's identity in task claims.
func (r *Replica) ID() uuid.UUID { return r.id }

// Beat records that this process is alive; the first beat registers it. A row another replica deleted
// while this one could not beat (the database out of reach) is made again.
func (r *Replica) Beat(ctx context.Context) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var bootID, namespace *string
	var pid, start *int64
	if r.self.Sees(r.self) {
		p := r.self
		pid64 := int64(p.PID)
		bootID, namespace, pid, start = &p.BootID, &p.Namespace, &pid64, &p.Start
	}
	_, err := r.pool.Exec(ctx, `INSERT INTO replicas (id, host, boot_id, pid_ns, pid, proc_start) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`, r.id, r.host, bootID, namespace, pid, start)
	return err
}

// ReleaseDead frees the VMs claimed by dead processes and forgets those processes; it returns how many
// VMs it freed. A process is dead when its heartbeat is older than the lease (it crashed or was killed
// mid-operation, anywhere), or at once when it ran on this very machine and is no longer running there:
// same kernel boot and PID namespace as this process, so /proc shows it, and its PID is gone, reused
// by a process started at another time, or a zombie (procfs). A live replica elsewhere, even one with
// the same host name, is never judged by /proc, only by its heartbeat; nor is a process whose row
// does not name it (an older version). Claims without an owner (made before claims named their
// process) are freed once their legacy age passed. Each freed VM moves to its next version with an
// event, so every reader sees the task gone. The resync that follows reads those VMs' real state.
// A dead delete claim is left to that resync (it blocks nothing already): it removes the record of a VM
// whose domain the delete had removed, and releases the claim of one whose domain is still there;
// released here, a VM deleted on the hypervisor would have become an Error VM instead.
func (r *Replica) ReleaseDead(ctx context.Context) (int64, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	gone, err := r.goneHere(ctx)
	if err != nil {
		return 0, err
	}
	var released int64
	err = pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		// Without its row, a process's claims are dead (taskLive) and released just below.
		if _, err := tx.Exec(ctx, `DELETE FROM replicas WHERE id = ANY($1)`, gone); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `UPDATE vms SET task = '', task_since = NULL, task_owner = NULL, version = version + 1,
			updated_at = now() WHERE task <> '' AND task <> 'delete' AND NOT (`+taskLive(r.lease)+`)
			RETURNING `+vmColumns+`, false`)
		if err != nil {
			return err
		}
		freed, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*domain.VM, error) { return scanVM(row) })
		if err != nil {
			return err
		}
		for _, vm := range freed {
			if err := r.events.Add(ctx, tx, vmEvent(contract.TypeVMUpdated, vm, vm.Version)); err != nil {
				return err
			}
		}
		released = int64(len(freed))
		_, err = tx.Exec(ctx, fmt.Sprintf(`DELETE FROM replicas WHERE heartbeat_at <= now() - interval '%d milliseconds' AND id <> $1`,
			r.lease.Milliseconds()), r.id)
		return err
	})
	return released, err
}

// goneHere lists the other processes recorded on this machine (same boot and PID namespace) that no
// longer run. A row /proc cannot be read for is left to its heartbeat.
func (r *Replica) goneHere(ctx context.Context) ([]uuid.UUID, error) {
	if !r.self.Sees(r.self) {
		return nil, nil
	}
	rows, err := r.pool.Query(ctx, `SELECT id, pid, proc_start FROM replicas
		WHERE id <> $1 AND boot_id = $2 AND pid_ns = $3 AND pid IS NOT NULL AND proc_start IS NOT NULL`,
		r.id, r.self.BootID, r.self.Namespace)
	if err != nil {
		return nil, err
	}
	type recorded struct {
		id         uuid.UUID
		pid, start int64
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (recorded, error) {
		var p recorded
		return p, row.Scan(&p.id, &p.pid, &p.start)
	})
	if err != nil {
		return nil, err
	}
	gone := []uuid.UUID{}
	for _, p := range list {
		dead, err := r.self.Gone(procfs.Process{BootID: r.self.BootID, Namespace: r.self.Namespace, PID: int(p.pid), Start: p.start})
		if err == nil && dead {
			gone = append(gone, p.id)
		}
	}
	return gone, nil
}

// Leave deletes this process's row at a clean exit: any claim still in its name is dead at once.
func (r *Replica) Leave(ctx context.Context) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	_, err := r.pool.Exec(ctx, `DELETE FROM replicas WHERE id = $1`, r.id)
	return err
}
