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

// Listener is a Service that opens its listeners itself rather than plain TCP on addr: the public
// one, which serves App (wrapped in TLS, say), and apps of its own on further listeners (one that
// only monitoring reaches, say). When Listen fails, it has closed whatever it opened.
type Listener interface {
	Listen(addr string) (public net.Listener, more []web.Listening, err error)
}

// Serve starts the alongside functions (a libvirt connection, say), builds the service once they
// are running, and serves it on addr (and on whatever else it listens on, see Listener) until ctx is
// done; then it drains requests for up to drain, stops the service's background work and only then
// the alongside functions, which the draining requests may still need. The first failure stops
// everything and is returned.
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
		var served []web.Listening
		if served, err = listen(svc, addr); err == nil {
			front.Go(func() error { return svc.Run(ctx) })
			front.Go(func() error { return web.ServeAll(ctx, drain, log, served...) })
		}
	}
	if err != nil {
		cancel()
	}
	err = errors.Join(err, front.Wait())
	stopBack()
	return errors.Join(err, back.Wait())
}

// listen opens what svc answers on: its App on addr, or whatever it opens as a Listener.
func listen(svc Service, addr string) ([]web.Listening, error) {
	own, ok := svc.(Listener)
	if !ok {
		ln, err := net.Listen("tcp", addr)
		return []web.Listening{{App: svc.App(), Listener: ln}}, err
	}
	public, more, err := own.Listen(addr)
	if err != nil {
		return nil, err
	}
	return append([]web.Listening{{App: svc.App(), Listener: public}}, more...), nil
}
