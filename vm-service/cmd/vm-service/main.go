// Command vm-service owns LIMEN's virtual machines (schema vm): their lifecycle on libvirt and the
// events that announce every change.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"limen/libs/config"
	"limen/libs/libvirtconn"
	"limen/libs/logging"
	"limen/libs/outbox"
	"limen/libs/pgdb"
	"limen/libs/telemetry"
	"limen/libs/web"
	"limen/vm-service/internal/service"
	"limen/vm-service/migrations"
)

func main() {
	cfg := config.MustLoad[service.Config](service.Name)
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", service.Name, err)
		os.Exit(1)
	}
}

func run(cfg service.Config) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := logging.New(service.Name, cfg.LogLevel)

	tel, err := telemetry.Setup(ctx, service.Name)
	if err != nil {
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, tel.Shutdown(shutdownCtx))
	}()

	pool, err := pgdb.Open(ctx, cfg.DatabaseURL, "vm", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := outbox.Migrate(ctx, pool, "vm"); err != nil {
		return err
	}

	conn := libvirtconn.New(libvirtconn.Config{URI: cfg.LibvirtURI, Socket: cfg.LibvirtSocket}, log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return conn.Run(ctx) })

	svc, err := service.New(ctx, cfg, pool, conn, log, tel)
	if err != nil {
		stop()
		return errors.Join(err, g.Wait())
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		stop()
		return errors.Join(err, g.Wait())
	}
	g.Go(func() error { return svc.Run(ctx) })
	g.Go(func() error { return web.Serve(ctx, svc.App, ln, cfg.DrainTimeout, log) })
	return g.Wait()
}
