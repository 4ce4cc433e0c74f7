package outbox

import (
	"context"
	"embed"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"

	"limen/libs/pgdb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates the outbox table in schema, which must be the pool's search_path schema (as
// pgdb.Open sets it) because Writer and Relay name the table without a schema. Its versions are kept
// in their own goose table, so they never clash with the service's migrations in the same schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	files, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return pgdb.MigrateTracked(ctx, pool, schema, "outbox_goose_db_version", files)
}

// Open is the database of a service that publishes through the outbox: its schema with the service's
// migrations (pgdb.Open) and the outbox table beside them.
func Open(ctx context.Context, dsn, schema string, serviceMigrations fs.FS) (*pgxpool.Pool, error) {
	pool, err := pgdb.Open(ctx, dsn, schema, serviceMigrations)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
