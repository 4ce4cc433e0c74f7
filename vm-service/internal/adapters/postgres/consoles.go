package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/pgdb"
	"limen/vm-service/internal/domain"
)

// ticketMemory is how long expired tickets are kept before Issue forgets them: long enough that a
// late redemption still finds (and refuses) its ticket rather than nothing.
const ticketMemory = time.Hour

// ConsoleTickets implements app.ConsoleTickets.
type ConsoleTickets struct{ pool *pgxpool.Pool }

// NewConsoleTickets keeps tickets in pool.
func NewConsoleTickets(pool *pgxpool.Pool) *ConsoleTickets { return &ConsoleTickets{pool: pool} }

func (r *ConsoleTickets) Issue(ctx context.Context, hash []byte, t domain.ConsoleTicket) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	if _, err := r.pool.Exec(ctx, `DELETE FROM console_tickets WHERE expires_at < $1`, t.ExpiresAt.Add(-ticketMemory)); err != nil {
		return err
	}
	_, err := r.pool.Exec(ctx, `INSERT INTO console_tickets (hash, vm_uuid, protocol, user_id, admin, token_version, session_id, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		hash, t.VMUUID, string(t.Protocol), t.UserID, t.Admin, t.TokenVersion, t.SessionID, t.ExpiresAt)
	return err
}

// Redeem spends the ticket in one statement: of parallel attempts, one finds it unspent.
func (r *ConsoleTickets) Redeem(ctx context.Context, hash []byte) (domain.ConsoleTicket, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var t domain.ConsoleTicket
	var protocol string
	err := r.pool.QueryRow(ctx, `UPDATE console_tickets SET used_at = now() WHERE hash = $1 AND used_at IS NULL
		RETURNING vm_uuid, protocol, user_id, admin, token_version, session_id, expires_at`, hash).
		Scan(&t.VMUUID, &protocol, &t.UserID, &t.Admin, &t.TokenVersion, &t.SessionID, &t.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ConsoleTicket{}, domain.ErrConsoleTicket
	}
	t.Protocol = domain.ConsoleProtocol(protocol)
	return t, err
}

// MachineRuns implements app.MachineRuns.
type MachineRuns struct{ pool *pgxpool.Pool }

// NewMachineRuns keeps runs in pool.
func NewMachineRuns(pool *pgxpool.Pool) *MachineRuns { return &MachineRuns{pool: pool} }

// Seen keeps the first sighting of each run: of several processes recording the same run, the first
// one's time stays.
func (r *MachineRuns) Seen(ctx context.Context, running map[uuid.UUID]int64, now time.Time) (map[uuid.UUID]time.Time, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	ids := make([]uuid.UUID, 0, len(running))
	runs := make([]int64, 0, len(running))
	for id, run := range running {
		ids, runs = append(ids, id), append(runs, run)
	}
	since := make(map[uuid.UUID]time.Time, len(running))
	err := pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM machine_runs WHERE vm_uuid <> ALL($1)`, ids); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO machine_runs AS m (vm_uuid, run_id, started_at)
			SELECT id, run, $3 FROM unnest($1::uuid[], $2::bigint[]) AS r (id, run)
			ON CONFLICT (vm_uuid) DO UPDATE SET run_id = EXCLUDED.run_id, started_at = EXCLUDED.started_at
				WHERE m.run_id <> EXCLUDED.run_id`, ids, runs, now); err != nil {
			return err
		}
		// A run recorded before (by this process or another) keeps its first sighting.
		rows, err := tx.Query(ctx, `SELECT vm_uuid, started_at FROM machine_runs WHERE vm_uuid = ANY($1)`, ids)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			var at time.Time
			if err := rows.Scan(&id, &at); err != nil {
				return err
			}
			since[id] = at
		}
		return rows.Err()
	})
	return since, err
}
