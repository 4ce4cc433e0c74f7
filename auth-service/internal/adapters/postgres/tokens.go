package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/auth-service/internal/app"
	"limen/auth-service/internal/domain"
	"limen/libs/contract"
	"limen/libs/outbox"
	"limen/libs/pgdb"
)

// RefreshTokens implements app.RefreshTokens. Ending a login records its event on contract.TopicUserEvents
// in the same transaction, so the login's access tokens stop working everywhere too.
type RefreshTokens struct {
	pool   *pgxpool.Pool
	events *outbox.Writer
}

func NewRefreshTokens(pool *pgxpool.Pool, events *outbox.Writer) *RefreshTokens {
	return &RefreshTokens{pool: pool, events: events}
}

func (r *RefreshTokens) Save(ctx context.Context, t domain.RefreshToken) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
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

func (r *RefreshTokens) Rotate(ctx context.Context, rot app.Rotation) (domain.RefreshToken, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var spent domain.RefreshToken
	now := rot.Now
	err := pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		var revokedAt *time.Time
		err := tx.QueryRow(ctx, `SELECT token_hash, family_id, user_id, expires_at, used_at, rotated_by, revoked_at
			FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE`, rot.Presented).
			Scan(&spent.Hash, &spent.FamilyID, &spent.UserID, &spent.ExpiresAt, &spent.UsedAt, &spent.RotatedBy, &revokedAt)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return domain.ErrInvalidRefreshToken
		case err != nil:
			return err
		case revokedAt != nil || !now.Before(spent.ExpiresAt):
			return domain.ErrInvalidRefreshToken
		case spent.UsedAt != nil && !rot.Reusable(spent):
			return errReused
		case spent.UsedAt != nil:
			// The same client again within the grace: a sibling, the spent token left as it was so
			// that the grace runs from the first rotation.
			return save(ctx, tx, rot.Next(spent))
		}
		if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET used_at = $2, rotated_by = $3 WHERE token_hash = $1`,
			rot.Presented, now, rot.Client); err != nil {
			return err
		}
		return save(ctx, tx, rot.Next(spent))
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
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		var family uuid.UUID
		var userID int64
		err := tx.QueryRow(ctx, `SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1`, hash).Scan(&family, &userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // not ours: nothing to end
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL`, family, now)
		if err != nil || tag.RowsAffected() == 0 {
			return err // already ended: its event was recorded then
		}
		return recordUserEvent(ctx, tx, r.events, contract.TypeSessionEnded,
			contract.UserChange{UserID: userID, SessionID: family.String()})
	})
}

func (r *RefreshTokens) RevokeUser(ctx context.Context, userID int64, now time.Time) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	_, err := r.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL`, userID, now)
	return err
}

// PruneExpired deletes refresh tokens that expired before cutoff: they can be neither used nor
// reused, so they only grow the table.
func (r *RefreshTokens) PruneExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	tag, err := r.pool.Exec(ctx, `DELETE FROM refresh_tokens WHERE expires_at < $1`, cutoff)
	return tag.RowsAffected(), err
}
