package process_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/libs/process"
)

type service struct {
	app *fiber.App
	ran atomic.Bool
}

func (s *service) App() *fiber.App { return s.app }
func (s *service) Run(ctx context.Context) error {
	s.ran.Store(true)
	<-ctx.Done()
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The alongside work outlives the server: a request still draining after the signal can use it.
func TestServe_AlongsideWorkStopsAfterTheServerDrained(t *testing.T) {
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	var alongsideUp atomic.Bool
	alongside := func(ctx context.Context) error {
		alongsideUp.Store(true)
		<-ctx.Done()
		alongsideUp.Store(false)
		return nil
	}
	started := make(chan struct{})
	sawAlongside := make(chan bool, 1)
	svc := &service{app: fiber.New(fiber.Config{DisableStartupMessage: true})}
	svc.app.Get("/slow", func(c *fiber.Ctx) error {
		close(started)
		time.Sleep(300 * time.Millisecond) // the signal arrives meanwhile
		sawAlongside <- alongsideUp.Load()
		return c.SendString("done")
	})
	done := make(chan error, 1)
	go func() {
		done <- process.Serve(ctx, addr, 5*time.Second, quiet, func(context.Context) (*service, error) { return svc, nil }, alongside)
	}()
	answered := make(chan int, 1)
	go func() {
		for range 100 {
			resp, err := http.Get("http://" + addr + "/slow")
			if err == nil {
				resp.Body.Close()
				answered <- resp.StatusCode
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		answered <- 0
	}()
	<-started
	stop()
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("the draining request got %d", code)
	}
	if !<-sawAlongside {
		t.Fatal("the alongside work stopped before the server drained")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if alongsideUp.Load() || !svc.ran.Load() {
		t.Fatalf("after Serve: alongside up %v, service ran %v", alongsideUp.Load(), svc.ran.Load())
	}
}

func TestServe_AFailingAlongsideStopsTheService(t *testing.T) {
	boom := errors.New("libvirt URI unusable")
	err := process.Serve(context.Background(), freeAddr(t), time.Second, quiet,
		func(ctx context.Context) (*service, error) { <-ctx.Done(); return nil, ctx.Err() },
		func(context.Context) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}
