package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/pgdb"
)

// Replica is one vm-service process in vm.replicas: a random id per start, named in every task the
// process claims, and a heartbeat it keeps fresh. A process whose heartbeat is older than the lease is
// dead: its claims block nothing (see VMs' task_live) and the next replica to start releases them.
// Heartbeats and their ages are the database's clock, so replicas' clocks never matter.
type Replica struct {
	pool  *pgxpool.Pool
	id    uuid.UUID
	host  string
	lease time.Duration
}

// NewReplica gives this process a fresh identity; nothing is written until Beat.
// lease is how long a process stays alive after its last beat.
func NewReplica(pool *pgxpool.Pool, host string, lease time.Duration) *Replica {
	return &Replica{pool: pool, id: uuid.New(), host: host, lease: lease}
}

// ID is this process's identity in task claims.
func (r *Replica) ID() uuid.UUID { return r.id }

// Beat records that this process is alive; the first beat registers it. A row another replica deleted
// while this one could not beat (the database out of reach) is made again.
func (r *Replica) Beat(ctx context.Context) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	_, err := r.pool.Exec(ctx, `INSERT INTO replicas (id, host) VALUES ($1, $2)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`, r.id, r.host)
	return err
}

// ReleaseDead frees the VMs claimed by processes whose heartbeat is older than the lease (they crashed
// or were killed mid-operation) and forgets those processes; it returns how many VMs it freed. Claims
// without an owner (made before claims named their process) are freed once their legacy age passed.
// The resync that follows reads those VMs' real state.
func (r *Replica) ReleaseDead(ctx context.Context) (int64, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var released int64
	err := pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE vms SET task = '', task_since = NULL, task_owner = NULL
			WHERE task <> '' AND NOT (`+taskLive(r.lease)+`)`)
		if err != nil {
			return err
		}
		released = tag.RowsAffected()
		_, err = tx.Exec(ctx, fmt.Sprintf(`DELETE FROM replicas WHERE heartbeat_at <= now() - interval '%d milliseconds' AND id <> $1`,
			r.lease.Milliseconds()), r.id)
		return err
	})
	return released, err
}

// Leave deletes this process's row at a clean exit: any claim still in its name is dead at once.
func (r *Replica) Leave(ctx context.Context) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	_, err := r.pool.Exec(ctx, `DELETE FROM replicas WHERE id = $1`, r.id)
	return err
}
