package libvirtconn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/libvirtconn"
	"limen/libs/testkit/libvirttest"
)

func TestMain(m *testing.M) { libvirttest.Main(m) }

type harness struct {
	m        *libvirtconn.Manager
	connects chan time.Time // one per OnConnect call
}

// start runs a Manager on the package's daemon until the test ends.
func start(t *testing.T) *harness {
	t.Helper()
	return startOn(t, libvirttest.Shared(t).SocketPath())
}

// startOn runs a Manager on the daemon reached through sock until the test ends.
func startOn(t *testing.T, sock string) *harness {
	t.Helper()
	h := &harness{
		m: libvirtconn.New(libvirtconn.Config{URI: libvirttest.Shared(t).URI(), Socket: sock},
			slog.New(slog.NewTextHandler(t.Output(), nil))),
		connects: make(chan time.Time, 16),
	}
	h.m.OnConnect(func(context.Context) { h.connects <- time.Now() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := h.m.WaitConnected(wctx); err != nil {
		t.Fatalf("WaitConnected: %v", err)
	}
	h.waitConnect(t, time.Second)
	return h
}

func (h *harness) waitConnect(t *testing.T, within time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-h.connects:
		return at
	case <-time.After(within):
		t.Fatalf("OnConnect not called within %v", within)
		return time.Time{}
	}
}

func (h *harness) client(t *testing.T) *libvirt.Libvirt {
	t.Helper()
	lv, err := h.m.Client()
	if err != nil {
		t.Fatal(err)
	}
	return lv
}

// defineAndStart boots a 64 MiB diskless guest (under a second with TCG) and removes it when the test
// ends, through whatever connection is live by then.
func (h *harness) defineAndStart(t *testing.T) (libvirt.Domain, time.Time) {
	t.Helper()
	lv := h.client(t)
	id := uuid.New()
	dom, err := lv.DomainDefineXML(fmt.Sprintf(`<domain type='qemu'>
  <name>libvirtconn-%s</name><uuid>%s</uuid>
  <memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
</domain>`, id.String()[:8], id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lv, err := h.m.Client()
		if err != nil {
			t.Errorf("cleanup of %s: %v", dom.Name, err)
			return
		}
		_ = lv.DomainDestroy(dom)
		if err := lv.DomainUndefine(dom); err != nil {
			t.Errorf("undefine %s: %v", dom.Name, err)
		}
	})
	startedAt := time.Now()
	if err := lv.DomainCreate(dom); err != nil {
		t.Fatal(err)
	}
	return dom, startedAt
}

// waitEvent skips other events until dom reports want; it fails after within.
func (h *harness) waitEvent(t *testing.T, dom libvirt.Domain, want libvirt.DomainEventType, within time.Duration) libvirtconn.LifecycleEvent {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev := <-h.m.Events():
			if ev.UUID == dom.UUID && ev.Event == int32(want) {
				if ev.Name != dom.Name {
					t.Errorf("event name %q, want %q", ev.Name, dom.Name)
				}
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event for %s within %v", want, dom.Name, within)
		}
	}
}

func TestConnect_ClientWorksAndReady(t *testing.T) {
	h := start(t)
	if _, err := h.client(t).ConnectGetLibVersion(); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

func TestEvents_StartedAndStopped(t *testing.T) {
	h := start(t)
	dom, startedAt := h.defineAndStart(t)
	created := time.Now()
	h.waitEvent(t, dom, libvirt.DomainEventStarted, time.Second)
	t.Logf("Started event %v after DomainCreate returned (it took %v)",
		time.Since(created).Round(time.Millisecond), created.Sub(startedAt).Round(time.Millisecond))

	if err := h.client(t).DomainDestroy(dom); err != nil {
		t.Fatal(err)
	}
	ev := h.waitEvent(t, dom, libvirt.DomainEventStopped, time.Second)
	if ev.Detail != int32(libvirt.DomainEventStoppedDestroyed) {
		t.Errorf("stop detail %d, want destroyed", ev.Detail)
	}
}

func TestReconnect_AfterDaemonRestart(t *testing.T) {
	h := start(t)
	d := libvirttest.Shared(t)
	ctx := context.Background()

	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for {
		_, cerr := h.m.Client()
		rerr := h.m.Ready(ctx)
		if errors.Is(cerr, libvirtconn.ErrDisconnected) && rerr != nil {
			break
		}
		if time.Since(killed) > time.Second {
			t.Fatalf("still connected 1s after kill: Client %v, Ready %v", cerr, rerr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("disconnect noticed %v after kill", time.Since(killed).Round(time.Millisecond))

	restartBegan := time.Now()
	if err := d.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	at := h.waitConnect(t, 15*time.Second)
	t.Logf("reconnected %v after Restart returned (%v after it began; daemon start-up took %v)",
		at.Sub(restarted).Round(time.Millisecond), at.Sub(restartBegan).Round(time.Millisecond),
		restarted.Sub(restartBegan).Round(time.Millisecond))
	if err := h.m.Ready(ctx); err != nil {
		t.Fatalf("Ready after reconnect: %v", err)
	}

	dom, _ := h.defineAndStart(t)
	h.waitEvent(t, dom, libvirt.DomainEventStarted, time.Second)
}

// A host that stops answering without closing the connection (a remote one dropping off the network)
// never fires Disconnected; the periodic ping must give up on it and reconnect.
func TestReconnect_AfterConnectionHangs(t *testing.T) {
	p := newFreezingProxy(t, libvirttest.Shared(t).SocketPath())
	h := startOn(t, p.path)

	p.freeze()
	frozen := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := h.m.Ready(ctx); err == nil {
		t.Fatal("Ready passed on a hung connection")
	}
	at := h.waitConnect(t, 15*time.Second)
	t.Logf("reconnected %v after the connection hung", at.Sub(frozen).Round(time.Millisecond))

	dom, _ := h.defineAndStart(t)
	h.waitEvent(t, dom, libvirt.DomainEventStarted, time.Second)
}

// freezingProxy forwards a unix socket to another; freeze makes every connection open so far go
// silent without closing it, while later connections work.
type freezingProxy struct {
	path string
	done chan struct{} // closed when the test ends, releasing frozen pipes

	mu    sync.Mutex
	hangs []chan struct{} // one per connection, closed by freeze
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	p := &freezingProxy{path: filepath.Join(t.TempDir(), "proxy.sock"), done: make(chan struct{})}
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		close(p.done)
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("unix", target)
			if err != nil {
				client.Close()
				continue
			}
			hang := make(chan struct{})
			p.mu.Lock()
			conns = append(conns, client, server)
			p.hangs = append(p.hangs, hang)
			p.mu.Unlock()
			go p.pipe(client, server, hang)
			go p.pipe(server, client, hang)
		}
	}()
	return p
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, hang := range p.hangs {
		close(hang)
	}
	p.hangs = nil
}

func (p *freezingProxy) pipe(dst, src net.Conn, hang chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		select {
		case <-hang:
			<-p.done
			return
		default:
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func TestRun_RejectsUnsupportedTransport(t *testing.T) {
	m := libvirtconn.New(libvirtconn.Config{URI: "qemu+ssh://host/system"}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Run(ctx); err == nil {
		t.Fatal("Run accepted an ssh URI")
	}
	if _, err := m.Client(); !errors.Is(err, libvirtconn.ErrDisconnected) {
		t.Fatalf("Client: %v", err)
	}
}
