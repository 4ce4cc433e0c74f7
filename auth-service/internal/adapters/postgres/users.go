// Package postgres stores auth-service's users, refresh tokens and login counters in schema auth.
package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"limen/auth-service/internal/domain"
	"limen/libs/contract"
	"limen/libs/outbox"
	"limen/libs/pgdb"
)

// Users implements app.Users. A change that revokes tokens (role, approval, deletion) records its
// event on contract.TopicUserEvents in the same transaction.
type Users struct {
	pool   *pgxpool.Pool
	events *outbox.Writer
}

func NewUsers(pool *pgxpool.Pool, events *outbox.Writer) *Users {
	return &Users{pool: pool, events: events}
}

const userColumns = `id, uuid, username, password_hash, role, approved, token_version, created_at, updated_at`

func scanUser(row pgx.Row) (*domain.User, error) {
	var u domain.User
	var role string
	err := row.Scan(&u.ID, &u.UUID, &u.Username, &u.PasswordHash, &role, &u.Approved, &u.TokenVersion, &u.CreatedAt, &u.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, domain.ErrUserNotFound
	}
	u.Role = domain.Role(role)
	return &u, err
}

func (r *Users) Create(ctx context.Context, u *domain.User) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	err := r.pool.QueryRow(ctx, `INSERT INTO users (uuid, username, password_hash, role, approved, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		u.UUID, u.Username, u.PasswordHash, string(u.Role), u.Approved, u.CreatedAt, u.UpdatedAt).Scan(&u.ID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return domain.ErrUsernameTaken
	}
	return err
}

func (r *Users) ByUsername(ctx context.Context, username string) (*domain.User, error) {
	if strings.ContainsRune(username, 0) {
		// Postgres text cannot hold a NUL byte, so no account has one (the query would fail: 500).
		return nil, domain.ErrUserNotFound
	}
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return scanUser(r.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE lower(username) = lower($1)`, username))
}

func (r *Users) ByID(ctx context.Context, id int64) (*domain.User, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return scanUser(r.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
}

func (r *Users) List(ctx context.Context, limit, offset int) ([]*domain.User, int, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var total int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := r.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY id LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*domain.User, error) { return scanUser(row) })
	return users, total, err
}

// lockForChange locks every active admin (so the count cannot change under us) and the target user.
func lockForChange(ctx context.Context, tx pgx.Tx, id int64) (*domain.User, domain.Admins, error) {
	rows, err := tx.Query(ctx, `SELECT id FROM users WHERE role = 'admin' AND approved ORDER BY id FOR UPDATE`)
	if err != nil {
		return nil, 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, 0, err
	}
	u, err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, id))
	return u, domain.Admins(len(ids)), err
}

func (r *Users) Update(ctx context.Context, id int64, change func(*domain.User, domain.Admins) error) (*domain.User, error) {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	var updated *domain.User
	err := pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		u, admins, err := lockForChange(ctx, tx, id)
		if err != nil {
			return err
		}
		version := u.TokenVersion
		if err := change(u, admins); err != nil {
			return err
		}
		updated = u
		_, err = tx.Exec(ctx, `UPDATE users SET role = $2, approved = $3, password_hash = $4, token_version = $5, updated_at = $6 WHERE id = $1`,
			u.ID, string(u.Role), u.Approved, u.PasswordHash, u.TokenVersion, u.UpdatedAt)
		if err != nil || u.TokenVersion == version {
			return err
		}
		return recordUserEvent(ctx, tx, r.events, contract.TypeUserChanged, contract.UserChange{UserID: u.ID, TokenVersion: u.TokenVersion})
	})
	return updated, err
}

func (r *Users) Delete(ctx context.Context, id int64, withVMs bool, check func(*domain.User, domain.Admins) error) error {
	ctx, cancel := pgdb.Deadline(ctx)
	defer cancel()
	return pgdb.InTx(ctx, r.pool, func(tx pgx.Tx) error {
		u, admins, err := lockForChange(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := check(u, admins); err != nil {
			return err
		}
		if _, err = tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id); err != nil {
			return err
		}
		return recordUserEvent(ctx, tx, r.events, contract.TypeUserDeleted,
			contract.UserChange{UserID: u.ID, TokenVersion: u.TokenVersion + 1, DeleteVMs: withVMs})
	})
}

// recordUserEvent adds an event of contract.TopicUserEvents, keyed by the user's id, to tx.
func recordUserEvent(ctx context.Context, tx pgx.Tx, events *outbox.Writer, eventType string, change contract.UserChange) error {
	return events.Add(ctx, tx, outbox.Event{Topic: contract.TopicUserEvents, Type: eventType, Subject: strconv.FormatInt(change.UserID, 10),
		OwnerID: change.UserID, Sequence: change.TokenVersion, Data: change})
}
