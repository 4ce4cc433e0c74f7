// Command vm-service owns LIMEN's virtual machines (schema vm): their lifecycle on libvirt and the
// events that announce every change.
package main

import (
	"context"

	"limen/libs/libvirtconn"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/process"
	"limen/vm-service/internal/service"
	"limen/vm-service/migrations"
)

func main() {
	process.Main(service.Name, func(c service.Config) string { return c.LogLevel }, run)
}

func run(ctx context.Context, cfg service.Config, env process.Env) error {
	pool, err := pgdb.Open(ctx, cfg.DatabaseURL, "vm", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool, "vm"); err != nil {
		return err
	}

	conn := libvirtconn.New(libvirtconn.Config{URI: cfg.LibvirtURI, Socket: cfg.LibvirtSocket}, env.Log)
	var svc *service.Service
	// After the drain: requests still draining keep their task claims alive until they are done.
	defer func() {
		if svc != nil {
			svc.Close()
		}
	}()
	return process.Serve(ctx, cfg.ListenAddr, cfg.DrainTimeout, env.Log, func(ctx context.Context) (*service.Service, error) {
		var err error
		svc, err = service.New(ctx, cfg, pool, conn, env.Log, env.Telemetry)
		return svc, err
	}, conn.Run)
}
