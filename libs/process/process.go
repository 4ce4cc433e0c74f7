// Package process is the start and the end every LIMEN service shares: its configuration from the
// environment, a context that SIGINT and SIGTERM cancel, JSON logs, telemetry flushed at exit, and a
// single line on stderr with exit status 1 when the service fails.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"limen/libs/config"
	"limen/libs/contract"
	"limen/libs/logging"
	"limen/libs/telemetry"
)

// telemetryFlush bounds the export of the last spans at exit.
const telemetryFlush = 5 * time.Second

// Env is what a service's run function gets besides its configuration.
type Env struct {
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
}

// Configuration is a service's configuration: its own settings and, embedded, the shared ones.
type Configuration interface {
	Shared() contract.Settings
}

// Main loads C from the environment (exiting with one clear line when a value is bad) and calls run
// until it returns; ctx ends at the first SIGINT or SIGTERM. It is all a service's main does.
func Main[C Configuration](name string, run func(ctx context.Context, cfg C, env Env) error) {
	cfg := config.MustLoad[C](name)
	if err := start(name, cfg, run); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func start[C Configuration](name string, cfg C, run func(context.Context, C, Env) error) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tel, err := telemetry.Setup(ctx, name)
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), telemetryFlush)
		defer cancel()
		err = errors.Join(err, tel.Shutdown(flushCtx))
	}()
	return run(ctx, cfg, Env{Log: logging.New(name, cfg.Shared().LogLevel), Telemetry: tel})
}
