// Command auth-service owns LIMEN's users, passwords and tokens (schema auth).
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

	"limen/auth-service/internal/service"
	"limen/auth-service/migrations"
	"limen/libs/config"
	"limen/libs/logging"
	"limen/libs/pgdb"
	"limen/libs/telemetry"
	"limen/libs/web"
)

const name = "auth-service"

func main() {
	cfg := config.MustLoad[service.Config](name)
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(cfg service.Config) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := logging.New(name, cfg.LogLevel)

	tel, err := telemetry.Setup(ctx, name)
	if err != nil {
		return err
	}
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, tel.Shutdown(shutdownCtx))
	}()

	pool, err := pgdb.Open(ctx, cfg.DatabaseURL, "auth", migrations.FS)
	if err != nil {
		return err
	}
	defer pool.Close()

	app, err := service.New(ctx, cfg, pool, log, tel)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	return web.Serve(ctx, app, ln, cfg.DrainTimeout, log)
}
