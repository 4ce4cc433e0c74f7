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
	"limen/libs/web"
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

// listeningService opens its own listeners: the public one counts its connections (as TLS would wrap
// them), and a second app answers on a listener of its own.
type listeningService struct {
	service
	internalAddr string
	accepted     atomic.Int32
	listenErr    error
}

type countingListener struct {
	net.Listener
	accepted *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return conn, err
}

func (s *listeningService) Listen(addr string) (net.Listener, []web.Listening, error) {
	if s.listenErr != nil {
		return nil, nil, s.listenErr
	}
	public, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	internal, err := net.Listen("tcp", s.internalAddr)
	if err != nil {
		public.Close()
		return nil, nil, err
	}
	internalApp := fiber.New(fiber.Config{DisableStartupMessage: true})
	internalApp.Get("/metrics", func(c *fiber.Ctx) error { return c.SendString("internal") })
	return countingListener{public, &s.accepted}, []web.Listening{{App: internalApp, Listener: internal}}, nil
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	for range 100 {
		resp, err := http.Get(url)
		if err == nil {
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
	return 0, ""
}

func TestServe_AListenerServesItsAppOnItsOwnListenersAndStopsThemAll(t *testing.T) {
	addr, internalAddr := freeAddr(t), freeAddr(t)
	svc := &listeningService{service: service{app: fiber.New(fiber.Config{DisableStartupMessage: true})}, internalAddr: internalAddr}
	svc.app.Get("/api", func(c *fiber.Ctx) error { return c.SendString("public") })
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- process.Serve(ctx, addr, time.Second, quiet, func(context.Context) (*listeningService, error) { return svc, nil })
	}()

	if status, body := getBody(t, "http://"+addr+"/api"); status != http.StatusOK || body != "public" {
		t.Fatalf("public listener: %d %q", status, body)
	}
	if svc.accepted.Load() == 0 {
		t.Fatal("the public app was not served on the service's own listener")
	}
	if status, body := getBody(t, "http://"+internalAddr+"/metrics"); status != http.StatusOK || body != "internal" {
		t.Fatalf("further listener: %d %q", status, body)
	}
	if status, _ := getBody(t, "http://"+internalAddr+"/api"); status != http.StatusNotFound {
		t.Fatalf("the further listener serves the public app: %d", status)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !svc.ran.Load() {
		t.Fatal("the service's background work never ran")
	}
	for _, a := range []string{addr, internalAddr} {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts after Serve returned", a)
		}
	}
}

func TestServe_AListenerThatCannotListenStopsStartUp(t *testing.T) {
	refused := errors.New("certificate unreadable")
	svc := &listeningService{service: service{app: fiber.New(fiber.Config{DisableStartupMessage: true})}, listenErr: refused}
	err := process.Serve(context.Background(), freeAddr(t), time.Second, quiet,
		func(context.Context) (*listeningService, error) { return svc, nil })
	if !errors.Is(err, refused) || svc.ran.Load() {
		t.Fatalf("got %v, background work ran %v", err, svc.ran.Load())
	}
}
