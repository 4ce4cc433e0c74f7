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
// are running, and serves it on addr until ctx is done; then it drains requests for up to drain, stops
// the service's background work and only then the alongside functions, which the draining requests may
// still need. The first failure stops everything and is returned.
func Serve[S Service](ctx context.Context, addr string, drain time.Duration, log *slog.Logger,
	build func(ctx context.Context) (S, error), alongside ...func(context.Context) error) error {
	backCtx, stopBack := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBack()
	back, backCtx := errgroup.WithContext(backCtx)
	for _, fn := range alongside {
		back.Go(func() error { return fn(backCtx) })
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopWithBack := context.AfterFunc(backCtx, cancel)
	defer stopWithBack()
	front, ctx := errgroup.WithContext(ctx)
	svc, err := build(ctx)
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			front.Go(func() error { return svc.Run(ctx) })
			front.Go(func() error { return web.Serve(ctx, svc.App(), ln, drain, log) })
		}
	}
	if err != nil {
		cancel()
	}
	err = errors.Join(err, front.Wait())
	stopBack()
	return errors.Join(err, back.Wait())
}
