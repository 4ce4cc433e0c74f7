package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"limen/libs/pgdb"
	"limen/quota-service/internal/domain"
)

// reserve admits a reservation and holds its growth in one statement. It decides on q: the quota
// row locked, as it stands once the lock is held (a lock that waits returns the row as the holder
// left it). The statement's snapshot is older than that wait, so neither the decision nor the new
// usage may read the row through the snapshot: an UPDATE filters on the snapshot's row and only
// re-reads the rows that passed. So admissions of one user take turns, each sees the others'
// growth, and a refusal comes with the usage it was refused on. The condition mirrors
// domain.Resources.Admit: only growth is checked. A known key admits nothing; two requests with the
// same new key both find it unknown, and the second fails on the primary key.
const reserve = `WITH q AS (
	SELECT ` + quotaColumns + ` FROM quotas WHERE user_id = $2 FOR UPDATE
), known AS (
	SELECT EXISTS (SELECT 1 FROM reservations WHERE key = $1) AS known
), grow AS (
	UPDATE quotas SET vms = q.vms + $4, cpu = q.cpu + $5, memory = q.memory + $6, updated_at = now()
	FROM q, known
	WHERE quotas.user_id = q.user_id AND NOT known.known
	  AND ($4 = 0 OR q.vms + $4 <= q.max_vms) AND ($5 = 0 OR q.cpu + $5 <= q.max_cpu) AND ($6 = 0 OR q.memory + $6 <= q.max_memory)
	RETURNING quotas.user_id
), made AS (
	INSERT INTO reservations (key, user_id, vm_uuid, vms, cpu, memory, expires_at)
	SELECT $1, user_id, $3, $7, $8, $9, now() + make_interval(secs => $10) FROM grow
	RETURNING expires_at
)
SELECT known.known, made.expires_at, q.id IS NOT NULL, coalesce(q.id, 0), coalesce(q.user_id, 0), coalesce(q.max_vms, 0),
	coalesce(q.max_cpu, 0), coalesce(q.max_memory, 0), coalesce(q.vms, 0), coalesce(q.cpu, 0), coalesce(q.memory, 0)
FROM known LEFT JOIN q ON true LEFT JOIN made ON true`

func (s *Store) Reserve(ctx context.Context, r domain.Reservation, ttl time.Duration, admit func(domain.Quota) error) (domain.Reservation, bool, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	growth := r.Change.Growth()
	for range 2 { // a second time once the user's quota is made
		var known, hasQuota bool
		var expires *time.Time
		var q domain.Quota
		err := s.pool.QueryRow(ctx, reserve, r.Key, r.UserID, r.VM, growth.VMs, growth.CPU, growth.MemoryMiB,
			r.Change.VMs, r.Change.CPU, r.Change.MemoryMiB, ttl.Seconds()).Scan(&known, &expires, &hasQuota,
			&q.ID, &q.UserID, &q.Limits.VMs, &q.Limits.CPU, &q.Limits.MemoryMiB, &q.Usage.VMs, &q.Usage.CPU, &q.Usage.MemoryMiB)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "23505":
			known = true
		case err != nil:
			return domain.Reservation{}, false, err
		case expires != nil:
			made := r
			made.ExpiresAt = *expires
			return made, true, nil
		}
		switch {
		case known:
			existing, err := scanReservation(s.pool.QueryRow(ctx, `SELECT `+reservationColumns+` FROM reservations WHERE key = $1`, r.Key))
			return existing, false, err
		case !hasQuota:
			if err := s.create(ctx, r.UserID); err != nil {
				return domain.Reservation{}, false, err
			}
			continue
		}
		if err := admit(q); err != nil {
			return domain.Reservation{}, false, err
		}
		return domain.Reservation{}, false, fmt.Errorf("reservation %s refused on %+v, which admits it", r.Key, q)
	}
	return domain.Reservation{}, false, fmt.Errorf("quota of user %d vanished while it was made", r.UserID)
}

// endPendingSQL ends reservation $1 as $2 if it is pending, and frees the growth it held.
const endPendingSQL = `WITH ended AS (
	UPDATE reservations SET state = $2, settled_at = now() WHERE key = $1 AND state = 'pending'
	RETURNING user_id, greatest(vms, 0) AS vms, greatest(cpu, 0) AS cpu, greatest(memory, 0) AS memory
)
UPDATE quotas SET vms = quotas.vms - ended.vms, cpu = quotas.cpu - ended.cpu, memory = quotas.memory - ended.memory, updated_at = now()
FROM ended WHERE quotas.user_id = ended.user_id`

// Settle ends a pending reservation (the common case) in one round trip: what end makes of a
// pending reservation depends on its state alone, so it is asked before the reservation is read,
// and the batch ends the reservation only if it is still pending under the lock (a committed one's
// VM is recorded again, which changes nothing). A reservation in another state (a repeat, a late
// commit, a conflict) is decided on as it stands, in a transaction of its own.
func (s *Store) Settle(ctx context.Context, key string, end func(domain.Reservation) (domain.Reservation, error), vm *domain.VMState) (domain.Reservation, error) {
	pending, err := end(domain.Reservation{Key: key, State: domain.Pending})
	if err != nil {
		return domain.Reservation{}, err
	}
	var r domain.Reservation
	var ok bool
	err = s.pipelined(ctx, func(send func(*pgx.Batch) error) error {
		b := &pgx.Batch{}
		readLocked(b, key, &r, &ok)
		b.Queue(endPendingSQL, key, string(pending.State))
		if vm != nil && pending.State == domain.Committed {
			b.Queue(recordCommittedSQL, key, vm.CPU, vm.MemoryMiB, vm.Version)
		}
		return send(b)
	})
	switch {
	case err != nil:
		return domain.Reservation{}, err
	case !ok:
		return domain.Reservation{}, domain.ErrReservationNotFound
	case r.State == domain.Pending:
		r.State = pending.State
		return r, nil
	}
	return s.settleAsItStands(ctx, key, end, vm)
}

// settleAsItStands ends a reservation that is no longer pending (so it holds nothing) as end decides
// on it, reading it under its user's lock first: two round trips.
func (s *Store) settleAsItStands(ctx context.Context, key string, end func(domain.Reservation) (domain.Reservation, error), vm *domain.VMState) (domain.Reservation, error) {
	var settled domain.Reservation
	err := s.pipelined(ctx, func(send func(*pgx.Batch) error) error {
		var r domain.Reservation
		var ok bool
		read := &pgx.Batch{}
		read.Queue("BEGIN")
		readLocked(read, key, &r, &ok)
		if err := send(read); err != nil {
			return err
		}
		if !ok {
			return domain.ErrReservationNotFound
		}
		next, err := end(r)
		if err != nil {
			return err
		}
		write := &pgx.Batch{}
		if next.State != r.State {
			write.Queue(`UPDATE reservations SET state = $2, settled_at = now() WHERE key = $1`, key, string(next.State))
		}
		if vm != nil && next.State == domain.Committed {
			write.Queue(recordCommittedSQL, key, vm.CPU, vm.MemoryMiB, vm.Version)
		}
		write.Queue("COMMIT")
		settled = next
		return send(write)
	})
	return settled, err
}

// readLocked queues the lock of reservation key's quota row, then the read of the reservation into r
// (ok: there is one), which so sees every change made under the lock before.
func readLocked(b *pgx.Batch, key string, r *domain.Reservation, ok *bool) {
	b.Queue(lockReservationQuotaSQL, key)
	b.Queue(`SELECT `+reservationColumns+` FROM reservations WHERE key = $1`, key).QueryRow(func(row pgx.Row) error {
		var err error
		*r, err = scanReservation(row)
		*ok, err = found(err)
		return err
	})
}
