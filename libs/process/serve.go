package process

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/errgroup"

	"limen/libs/web"
)

// Service is a service's HTTP app and the background work it does beside it (an outbox relay, a
// status watcher).
type Service interface {
	App() *fiber.App
	Run(ctx context.Context) error
}

// Serve starts the alongside functions (a libvirt connection, say), builds the service once they
// are running, and serves it on addr until ctx is done; then it drains requests for up to drain and
// waits for everything to stop. The first failure stops the rest and is returned.
func Serve[S Service](ctx context.Context, addr string, drain time.Duration, log *slog.Logger,
	build func(ctx context.Context) (S, error), alongside ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	for _, fn := range alongside {
		g.Go(func() error { return fn(ctx) })
	}
	svc, err := build(ctx)
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			g.Go(func() error { return svc.Run(ctx) })
			g.Go(func() error { return web.Serve(ctx, svc.App(), ln, drain, log) })
		}
	}
	if err != nil {
		cancel()
	}
	return errors.Join(err, g.Wait())
}
