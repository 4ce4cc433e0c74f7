package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/auth-service/internal/app"
	"limen/libs/pgdb"
)

// Throttle implements app.Throttle with one row per key (table login_throttle, which counts
// registrations too) and a fixed window that starts at a key's first attempt.
type Throttle struct {
	pool *pgxpool.Pool
}

func NewThrottle(pool *pgxpool.Pool) *Throttle { return &Throttle{pool: pool} }

// Reserve counts the attempt in one transaction: each key's row is inserted or updated by a single
// INSERT ... ON CONFLICT DO UPDATE that increments only while the key is under its limit (or starts a
// new window when the old one has ended), so the check and the count are one step that Postgres
// serialises on the row's lock. A key at its limit updates nothing and returns no row; then the
// transaction is rolled back, taking back the other keys' counts (all or none). Keys are taken in
// sorted order, so that two attempts sharing keys always lock them in the same order and never
// deadlock.
func (t *Throttle) Reserve(ctx context.Context, limits []app.Limit, window time.Duration, now time.Time) ([]app.Reserved, time.Duration, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	sorted := slices.SortedFunc(slices.Values(limits), func(a, b app.Limit) int { return strings.Compare(a.Key, b.Key) })
	var reserved []app.Reserved
	var locked time.Duration
	err := pgdb.InTx(ctx, t.pool, func(tx pgx.Tx) error {
		reserved, locked = reserved[:0], 0
		for _, l := range sorted {
			var start time.Time
			err := tx.QueryRow(ctx, `INSERT INTO login_throttle AS t (key, failures, window_start) VALUES ($1, 1, $2)
				ON CONFLICT (key) DO UPDATE SET
					failures     = CASE WHEN t.window_start + $3 <= $2 THEN 1 ELSE t.failures + 1 END,
					window_start = CASE WHEN t.window_start + $3 <= $2 THEN $2 ELSE t.window_start END
				WHERE t.window_start + $3 <= $2 OR t.failures < $4
				RETURNING window_start`, l.Key, now, window, l.Max).Scan(&start)
			if errors.Is(err, pgx.ErrNoRows) {
				// At its limit; ON CONFLICT has locked the row, so its window start holds still.
				if err := tx.QueryRow(ctx, `SELECT window_start FROM login_throttle WHERE key = $1`, l.Key).Scan(&start); err != nil {
					return err
				}
				locked = max(locked, start.Add(window).Sub(now), time.Second)
				continue
			}
			if err != nil {
				return err
			}
			reserved = append(reserved, app.Reserved{Key: l.Key, WindowStart: start})
		}
		if locked > 0 {
			return errLocked
		}
		return nil
	})
	if errors.Is(err, errLocked) {
		return nil, locked, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return reserved, 0, nil
}

// errLocked rolls back a reservation that one of its keys refused.
var errLocked = errors.New("throttled")

// Release decrements each reserved key, only within the window the attempt was counted in (a later
// window's count is not the attempt's to take back); resetKey's row is cleared instead.
func (t *Throttle) Release(ctx context.Context, reserved []app.Reserved, resetKey string) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	for _, r := range reserved {
		sql := `UPDATE login_throttle SET failures = greatest(failures - 1, 0) WHERE key = $1 AND window_start = $2`
		if r.Key == resetKey {
			sql = `UPDATE login_throttle SET failures = 0 WHERE key = $1 AND window_start = $2`
		}
		if _, err := t.pool.Exec(ctx, sql, r.Key, r.WindowStart); err != nil {
			return err
		}
	}
	return nil
}

// PruneExpired deletes counters whose window started before cutoff (older than the longest window):
// an attempt would start a new window there anyway.
func (t *Throttle) PruneExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	tag, err := t.pool.Exec(ctx, `DELETE FROM login_throttle WHERE window_start < $1`, cutoff)
	return tag.RowsAffected(), err
}
