// Package pgdb connects a service to its own Postgres schema and applies the service's embedded
// migrations with goose. Each service owns one schema; its pool's search_path points there, so SQL in
// adapters names tables without a schema prefix.
package pgdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Deadlines every connection gets, enforced by the server whatever the client does: no statement
// runs longer than StatementTimeout, no lock is waited for longer than LockTimeout, and a transaction
// left idle (a client stuck between statements) is ended after IdleInTransactionTimeout. Migrations
// run under the same limits (LIMEN's are small DDL), except the wait for another replica's.
const (
	StatementTimeout         = 5 * time.Second
	LockTimeout              = 3 * time.Second
	IdleInTransactionTimeout = 10 * time.Second
	// CallTimeout is the client-side deadline Deadline gives a database call whose context has none
	// (background loops): a connection that hangs (a dead host, no RST) must not hang the caller.
	CallTimeout = 10 * time.Second
)

// Deadline bounds a database call: ctx's own deadline if it has one, else CallTimeout.
func Deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, CallTimeout)
}

// Open connects to dsn with search_path set to schema, creates the schema if needed and applies the
// migrations found at the root of migrations (goose's NNNNN_name.sql files).
func Open(ctx context.Context, dsn, schema string, migrations fs.FS) (*pgxpool.Pool, error) {
	if !identifier.MatchString(schema) {
		return nil, fmt.Errorf("invalid schema name %q", schema)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	for name, d := range map[string]time.Duration{"statement_timeout": StatementTimeout, "lock_timeout": LockTimeout,
		"idle_in_transaction_session_timeout": IdleInTransactionTimeout} {
		if _, set := cfg.ConnConfig.RuntimeParams[name]; !set { // a DSN's own setting wins
			cfg.ConnConfig.RuntimeParams[name] = strconv.FormatInt(d.Milliseconds(), 10)
		}
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, pool, schema, migrations); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// Migrate applies pending migrations. Replicas starting together serialise on an advisory lock of
// their own schema, so services never wait on each other.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, migrations fs.FS) error {
	return MigrateTracked(ctx, pool, schema, "goose_db_version", migrations)
}

// MigrateTracked is Migrate recording its versions in versionTable instead of goose_db_version, so a
// library (the outbox) can keep its own migrations in a service's schema without their version numbers
// clashing with the service's.
func MigrateTracked(ctx context.Context, pool *pgxpool.Pool, schema, versionTable string, migrations fs.FS) error {
	if !identifier.MatchString(schema) {
		return fmt.Errorf("invalid schema name %q", schema)
	}
	if !identifier.MatchString(versionTable) {
		return fmt.Errorf("invalid version table name %q", versionTable)
	}
	// CREATE SCHEMA IF NOT EXISTS is not safe against itself: two replicas starting together can both
	// find no schema, and the second insert fails on pg_namespace's unique index.
	if err := InTx(ctx, pool, func(tx pgx.Tx) error {
		// Another replica may be migrating under this lock for longer than lock_timeout.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5min'"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockID(schema)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
		return err
	}); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID(schema)), lock.WithLockTimeout(1, 300))
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithTableName(schema+"."+versionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migrations for %s: %w", schema, err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", schema, err)
	}
	return nil
}

func lockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("limen-migrations:" + schema))
	return int64(h.Sum64() >> 1)
}

// Ping is a readiness check for the pool.
func Ping(pool *pgxpool.Pool) func(context.Context) error {
	return func(ctx context.Context) error { return pool.Ping(ctx) }
}

// InTx runs fn in a transaction, committing when it returns nil and rolling back otherwise.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, ignoreClosed(tx.Rollback(ctx)))
	}
	return tx.Commit(ctx)
}

func ignoreClosed(err error) error {
	if errors.Is(err, pgx.ErrTxClosed) || errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
