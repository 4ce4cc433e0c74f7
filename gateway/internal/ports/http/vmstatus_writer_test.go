package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"limen/gateway/internal/app"
	porthttp "limen/gateway/internal/ports/http"
	"limen/libs/authn"
	"limen/libs/testkit/jwttest"
	"limen/libs/web"
)

// An idle socket costs one goroutine, its reader: the writer runs only while there is something to
// send. Many sockets of one user all get the user's events.
func TestVMStatus_IdleSocketsHoldOneGoroutineEach(t *testing.T) {
	g := startLiveGateway(t, liveOptions{maxPerUser: 200})
	token := g.issuer.Token(t, userA, authn.RoleUser)
	before := runtime.NumGoroutine()
	const sockets = 100
	conns := make([]*websocket.Conn, sockets)
	for i := range conns {
		conns[i], _ = g.connect(t, token)
	}
	// The dialing side adds none (its sockets are read only when the test reads them); a few more are
	// the gateway's keep-alive connection to vm-service and the stand-in's.
	const most = sockets + sockets/4
	var idle int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if idle = runtime.NumGoroutine() - before; idle <= most || time.Now().After(deadline) {
			break
		}
	}
	if idle > most {
		t.Fatalf("%d idle sockets hold %d goroutines", sockets, idle)
	}
	g.update(t, vmA, userA, 1, "Running")
	for i, conn := range conns {
		if m := read(t, conn); m.Type != "vm_update" || m.VM["uuid"] != vmA {
			t.Fatalf("socket %d got %+v", i, m)
		}
	}
}

// failingLister is a vm-service that cannot list.
type failingLister struct{}

func (failingLister) ListVMs(context.Context, string, bool) (json.RawMessage, error) {
	return nil, errors.New("vm-service down")
}

func TestVMStatus_NoFirstListClosesWith1011(t *testing.T) {
	issuer := jwttest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	verifier, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: issuer.JWKSURL, Issuer: jwttest.Issuer, Audience: jwttest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	application := app.Application{Queries: app.Queries{
		CheckHealth:   app.NewCheckHealthHandler(app.HealthSources{Services: readinessOf(nil), Timeout: time.Second, Now: time.Now}),
		WatchVMStatus: app.WatchVMStatusHandler{Hub: app.NewVMStatusHub(0), VMs: failingLister{}},
	}}
	fiberApp := web.NewApp(web.AppConfig{Service: "gateway", Logger: log})
	porthttp.Mount(fiberApp, application, porthttp.Routes{Verifier: verifier, Proxy: porthttp.NewProxy(nil, time.Second),
		VMStatus: porthttp.NewVMStatus(ctx, application.Queries.WatchVMStatus, verifier, log)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = fiberApp.Listener(ln) }()
	t.Cleanup(func() { _ = fiberApp.Shutdown() })
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+porthttp.VMStatusPath+"?token="+issuer.Token(t, userA, authn.RoleUser), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if code := closeCode(t, conn, 5*time.Second); code != websocket.CloseInternalServerErr {
		t.Fatalf("closed with %d", code)
	}
}
