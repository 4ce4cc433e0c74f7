// Package postgres keeps quota-service's quotas, reservations and counted VMs in schema quota.
//
// Every change of one user's usage takes that user's quotas row lock first, and changes the row's
// usage together with the reservations and VMs it sums, in the same transaction. So the usage on the
// row is always the user's live VMs plus the growth of their pending reservations, and a reservation
// is admitted or refused by one statement that locks the row, decides and writes: never a read
// followed by a separate write. A statement reads through a snapshot taken when it starts, before
// any lock it waits for: what the lock guards is read either from the locked row itself (reserve)
// or by a later statement of the transaction.
package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/pgdb"
	"limen/quota-service/internal/domain"
)

// Store implements app.Quotas, app.Reservations, app.VMs and app.Upkeep. Every method bounds its
// database work with pgdb.Deadline (the caller's deadline, or pgdb.CallTimeout).
type Store struct {
	pool *pgxpool.Pool
	// defaults are the limits a user's quota starts with.
	defaults domain.Resources
}

// New keeps quotas in pool; a user's quota is made with defaults.
func New(pool *pgxpool.Pool, defaults domain.Resources) *Store {
	return &Store{pool: pool, defaults: defaults}
}

const quotaColumns = `id, user_id, max_vms, max_cpu, max_memory, vms, cpu, memory`

func scanQuota(row pgx.Row) (domain.Quota, error) {
	var q domain.Quota
	err := row.Scan(&q.ID, &q.UserID, &q.Limits.VMs, &q.Limits.CPU, &q.Limits.MemoryMiB, &q.Usage.VMs, &q.Usage.CPU, &q.Usage.MemoryMiB)
	return q, err
}

const reservationColumns = `key, user_id, vm_uuid, vms, cpu, memory, state, expires_at`

func scanReservation(row pgx.Row) (domain.Reservation, error) {
	var r domain.Reservation
	var state string
	err := row.Scan(&r.Key, &r.UserID, &r.VM, &r.Change.VMs, &r.Change.CPU, &r.Change.MemoryMiB, &state, &r.ExpiresAt)
	r.State = domain.State(state)
	return r, err
}

// found turns "no row" into false.
func found(err error) (bool, error) {
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// createSQL makes user $1's quota with the default limits $2, $3, $4, unless there is one.
const createSQL = `INSERT INTO quotas (user_id, max_vms, max_cpu, max_memory) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING`

func (s *Store) create(ctx context.Context, userID int64) error {
	_, err := s.pool.Exec(ctx, createSQL, userID, s.defaults.VMs, s.defaults.CPU, s.defaults.MemoryMiB)
	return err
}

// pipelined runs one transaction on one connection, its statements sent in batches, so that a change
// under a user's lock costs one or two round trips rather than one per statement, and holds the lock
// that much shorter. A single batch is a transaction of its own (the server commits it at the batch's
// one Sync, or rolls it back at its first error); a transaction over two batches, which decides in
// between, queues BEGIN first and COMMIT last. Whatever fails is rolled back.
func (s *Store) pipelined(ctx context.Context, fn func(send func(*pgx.Batch) error) error) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection released inside a transaction is closed rather than reused (pgxpool).
	defer conn.Release()
	err = fn(func(b *pgx.Batch) error { return conn.SendBatch(ctx, b).Close() })
	if err != nil {
		_, _ = conn.Exec(ctx, "ROLLBACK")
	}
	return err
}

// lockQuotaSQL takes the lock of user $1's quota row (no row: nothing to lock).
const lockQuotaSQL = `SELECT id FROM quotas WHERE user_id = $1 FOR UPDATE`

// lockReservationQuotaSQL takes the lock of the quota row of reservation $1's user.
const lockReservationQuotaSQL = `SELECT id FROM quotas WHERE user_id = (SELECT user_id FROM reservations WHERE key = $1) FOR UPDATE`
