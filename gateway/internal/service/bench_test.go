package service

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"limen/libs/authn"
	"limen/libs/config"
	"limen/libs/logging"
	"limen/libs/process"
	"limen/libs/telemetry"
	"limen/libs/testkit/jwttest"
)

// BenchmarkProxiedRequest is an authenticated GET /api/vms through the gateway as main builds it
// (telemetry, request ids, access log at warn, CORS, body guard, JWT, header hygiene, proxy) to a
// fasthttp upstream on loopback, as `make bench` runs it. The request is handed to the app's
// handler directly, so that what is measured (CPU and allocations per request, -benchmem) is the
// gateway's and its upstream client's, not a load generator's.
func BenchmarkProxiedRequest(b *testing.B) {
	handler, token := benchGateway(b)
	b.ReportAllocs()
	b.ResetTimer()
	before := cpuTime(b)
	defer func() {
		user, sys := cpuTime(b).sub(before)
		b.ReportMetric(float64(user.Microseconds())/float64(b.N), "user-µs/op")
		b.ReportMetric(float64(sys.Microseconds())/float64(b.N), "sys-µs/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		var fctx fasthttp.RequestCtx
		fctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}, nil)
		for pb.Next() {
			fctx.Request.Reset()
			fctx.Response.Reset()
			fctx.Request.Header.SetMethod(fasthttp.MethodGet)
			fctx.Request.SetRequestURI("/api/vms")
			fctx.Request.Header.SetHost("gateway.bench")
			fctx.Request.Header.Set(fasthttp.HeaderAuthorization, token)
			handler(&fctx)
			if fctx.Response.StatusCode() != fasthttp.StatusOK {
				b.Fatalf("status %d: %s", fctx.Response.StatusCode(), fctx.Response.Body())
			}
		}
	})
}

// rusage is the process's CPU time so far. User time is the steadier figure on a shared machine:
// the kernel's share (loopback to the upstream) swings with the neighbours.
type rusage struct{ user, sys time.Duration }

func cpuTime(b *testing.B) rusage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return rusage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano())}
}

func (r rusage) sub(o rusage) (user, sys time.Duration) { return r.user - o.user, r.sys - o.sys }

// benchGateway is the gateway in front of a trivial fasthttp upstream, and a valid Authorization
// header for it.
func benchGateway(b *testing.B) (fasthttp.RequestHandler, string) {
	b.Helper()
	body := []byte(`[{"id":1,"uuid":"550e8400-e29b-41d4-a716-446655440000","name":"bench","cpu":2,"memory":2048,"status":"Running","os_type":"ubuntu-server","owner_id":1}]`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	upstream := &fasthttp.Server{Handler: func(c *fasthttp.RequestCtx) {
		c.SetContentType("application/json")
		c.SetBody(body)
	}}
	go func() { _ = upstream.Serve(ln) }()
	b.Cleanup(func() { _ = upstream.Shutdown() })

	issuer := jwttest.New(b)
	for k, v := range map[string]string{"LIMEN_JWKS_URL": issuer.JWKSURL, "KAFKA_BROKERS": "", "LIMEN_METRICS_ADDR": "off",
		"VM_SERVICE_URL": "http://" + ln.Addr().String(), "OTEL_EXPORTER_OTLP_ENDPOINT": "", "LOG_LEVEL": "warn"} {
		b.Setenv(k, v)
	}
	cfg, err := config.Load[Config]()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	tel, err := telemetry.Setup(ctx, Name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := New(ctx, cfg, log, tel)
	if err != nil {
		b.Fatal(err)
	}
	return svc.App().Handler(), "Bearer " + issuer.Token(b, 1, authn.RoleUser)
}

// TestServeForProfile runs the gateway as main does until SIGTERM, when LIMEN_BENCH_SERVE is set
// (skipped otherwise): deployments/bench/run.sh with BENCH_PPROF runs it in place of the gateway, so
// that the test binary's -test.cpuprofile and -test.memprofile profile the gateway under wrk (and
// wsbench, given a script that runs it, under its sockets).
func TestServeForProfile(t *testing.T) {
	if os.Getenv("LIMEN_BENCH_SERVE") == "" {
		t.Skip("LIMEN_BENCH_SERVE unset")
	}
	cfg, err := config.Load[Config]()
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tel, err := telemetry.Setup(ctx, Name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	// SIGUSR1 writes the live heap (after a collection) to LIMEN_BENCH_HEAP: what idle sockets hold.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			runtime.GC()
			if f, err := os.Create(os.Getenv("LIMEN_BENCH_HEAP")); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
		}
	}()
	if err := Run(ctx, cfg, process.Env{Log: logging.New(Name, cfg.LogLevel), Telemetry: tel}); err != nil {
		t.Fatal(err)
	}
}
