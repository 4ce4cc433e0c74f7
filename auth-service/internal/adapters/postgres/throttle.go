package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/auth-service/internal/app"
)

// LoginThrottle implements app.LoginThrottle with one row per key and a fixed window that starts at
// the first failure.
type LoginThrottle struct {
	pool *pgxpool.Pool
}

func NewLoginThrottle(pool *pgxpool.Pool) *LoginThrottle { return &LoginThrottle{pool: pool} }

func (t *LoginThrottle) LockedFor(ctx context.Context, limits []app.LoginLimit, window time.Duration, now time.Time) (time.Duration, error) {
	var locked time.Duration
	for _, l := range limits {
		var failures int
		var start time.Time
		err := t.pool.QueryRow(ctx, `SELECT failures, window_start FROM login_throttle WHERE key = $1`, l.Key).Scan(&failures, &start)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if left := start.Add(window).Sub(now); failures >= l.Max && left > locked {
			locked = left
		}
	}
	return locked, nil
}

func (t *LoginThrottle) RecordFailure(ctx context.Context, limits []app.LoginLimit, window time.Duration, now time.Time) error {
	for _, l := range limits {
		_, err := t.pool.Exec(ctx, `INSERT INTO login_throttle AS t (key, failures, window_start) VALUES ($1, 1, $2)
			ON CONFLICT (key) DO UPDATE SET
				failures     = CASE WHEN t.window_start + $3 <= $2 THEN 1 ELSE t.failures + 1 END,
				window_start = CASE WHEN t.window_start + $3 <= $2 THEN $2 ELSE t.window_start END`,
			l.Key, now, window)
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *LoginThrottle) Reset(ctx context.Context, key string) error {
	_, err := t.pool.Exec(ctx, `DELETE FROM login_throttle WHERE key = $1`, key)
	return err
}
