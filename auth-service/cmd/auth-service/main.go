// Command auth-service owns LIMEN's users, passwords and tokens (schema auth).
package main

import (
	"context"

	"limen/auth-service/internal/service"
	"limen/auth-service/migrations"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/process"
)

func main() {
	process.Main(service.Name, func(c service.Config) string { return c.LogLevel }, run)
}

func run(ctx context.Context, cfg service.Config, env process.Env) error {
	pool, err := pgdb.Open(ctx, cfg.DatabaseURL, "auth", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool, "auth"); err != nil {
		return err
	}
	return process.Serve(ctx, cfg.ListenAddr, cfg.DrainTimeout, env.Log, func(ctx context.Context) (*service.Service, error) {
		return service.New(ctx, cfg, pool, env.Log, env.Telemetry)
	})
}
