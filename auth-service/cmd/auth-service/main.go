// Command auth-service owns LIMEN's users, passwords and tokens (schema auth).
package main

import (
	"context"
	"net"

	"limen/auth-service/internal/service"
	"limen/auth-service/migrations"
	"limen/libs/pgdb"
	"limen/libs/process"
	"limen/libs/web"
)

const name = "auth-service"

func main() {
	process.Main(name, func(c service.Config) string { return c.LogLevel }, run)
}

func run(ctx context.Context, cfg service.Config, env process.Env) error {
	pool, err := pgdb.Open(ctx, cfg.DatabaseURL, "auth", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()

	app, err := service.New(ctx, cfg, pool, env.Log, env.Telemetry)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	return web.Serve(ctx, app, ln, cfg.DrainTimeout, env.Log)
}
