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
