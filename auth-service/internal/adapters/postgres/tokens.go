package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/auth-service/internal/domain"
	"limen/libs/pgdb"
)

// RefreshTokens implements app.RefreshTokens.
type RefreshTokens struct {
	pool *pgxpool.Pool
}

func NewRefreshTokens(pool *pgxpool.Pool) *RefreshTokens { return &RefreshTokens{pool: pool} }

func (r *RefreshTokens) Save(ctx context.Context, t domain.RefreshToken) error {
	return save(ctx, r.pool, t)
}

// execer is what a pool and a transaction share.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func save(ctx context.Context, db execer, t domain.RefreshToken) error {
	_, err := db.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES ($1, $2, $3, $4)`,
		t.Hash, t.FamilyID, t.UserID, t.ExpiresAt)
	return err
}

// errReused marks a spent token presented again; its family is revoked in a transaction of its own
// (the rotation's transaction is rolled back).
var errReused = errors.New("refresh token reused")

func (r *RefreshTokens) Rotate(ctx context.Context, presented []byte, now time.Time, next func(domain.RefreshToken) domain.RefreshToken) (domain.RefreshToken, error) {
	var spent domain.RefreshToken
	err := pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		var usedAt, revokedAt *time.Time
		err := tx.QueryRow(ctx, `SELECT token_hash, family_id, user_id, expires_at, used_at, revoked_at
			FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`, presented).
			Scan(&spent.Hash, &spent.FamilyID, &spent.UserID, &spent.ExpiresAt, &usedAt, &revokedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return domain.ErrInvalidRefreshToken
		case err != nil:
			return err
		case revokedAt != nil || !now.Before(spent.ExpiresAt):
			return domain.ErrInvalidRefreshToken
		case usedAt != nil:
			return errReused
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1`, presented, now); err != nil {
			return err
		}
		return save(ctx, tx, next(spent))
	})
	if errors.Is(err, errReused) {
		if err := r.revokeFamily(ctx, spent.FamilyID, now); err != nil {
			return domain.RefreshToken{}, err
		}
		return domain.RefreshToken{}, domain.ErrInvalidRefreshToken
	}
	return spent, err
}

func (r *RefreshTokens) revokeFamily(ctx context.Context, family uuid.UUID, now time.Time) error {
	_, err := r.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL`, family, now)
	return err
}

func (r *RefreshTokens) RevokeFamilyOf(ctx context.Context, hash []byte, now time.Time) error {
	_, err := r.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2
		WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL`, hash, now)
	return err
}

func (r *RefreshTokens) RevokeUser(ctx context.Context, userID int64, now time.Time) error {
	_, err := r.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL`, userID, now)
	return err
}
