// Command media-service owns the ISO library and the VMs' CD-ROM drives (schema media), and announces
// every change of a drive.
package main

import (
	"context"

	"limen/libs/libvirtconn"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/process"
	"limen/media-service/internal/service"
	"limen/media-service/migrations"
)

func main() {
	process.Main(service.Name, func(c service.Config) string { return c.LogLevel }, run)
}

func run(ctx context.Context, cfg service.Config, env process.Env) error {
	pool, err := pgdb.Open(ctx, cfg.DatabaseURL, "media", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool, "media"); err != nil {
		return err
	}

	conn := libvirtconn.New(libvirtconn.Config{URI: cfg.LibvirtURI, Socket: cfg.LibvirtSocket}, env.Log)
	return process.Serve(ctx, cfg.ListenAddr, cfg.DrainTimeout, env.Log, func(ctx context.Context) (*service.Service, error) {
		return service.New(ctx, cfg, pool, conn, env.Log, env.Telemetry)
	}, conn.Run)
}
