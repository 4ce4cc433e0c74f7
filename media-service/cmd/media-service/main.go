// Command media-service owns the ISO library and the VMs' CD-ROM drives (schema media), and announces
// every change of a drive.
package main

import (
	"context"
	"errors"
	"net"

	"golang.org/x/sync/errgroup"

	"limen/libs/libvirtconn"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/process"
	"limen/libs/web"
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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn := libvirtconn.New(libvirtconn.Config{URI: cfg.LibvirtURI, Socket: cfg.LibvirtSocket}, env.Log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return conn.Run(ctx) })
	svc, err := service.New(ctx, cfg, pool, conn, env.Log, env.Telemetry)
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", cfg.ListenAddr); err == nil {
			g.Go(func() error { return svc.Run(ctx) })
			g.Go(func() error { return web.Serve(ctx, svc.App, ln, cfg.DrainTimeout, env.Log) })
		}
	}
	if err != nil {
		cancel()
	}
	return errors.Join(err, g.Wait())
}
