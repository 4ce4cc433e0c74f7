package service_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/web"
	"limen/vm-service/internal/service"
)

// pgProxy passes TCP connections to Postgres through, until down: then it drops every connection and
// refuses new ones (the listener is closed), as a Postgres that went away; up listens again.
type pgProxy struct {
	t        testing.TB
	upstream string
	addr     string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// newPGProxy proxies dsn's server; the proxy's DSN is p.dsn(dsn).
func newPGProxy(t testing.TB, dsn string) *pgProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{t: t, upstream: u.Host, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *pgProxy) dsn(dsn string) string {
	u, _ := url.Parse(dsn)
	u.Host = p.addr
	return u.String()
}

func (p *pgProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *pgProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *pgProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

func (p *pgProxy) up() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}

// While the database is away, vm-service answers 503 with Retry-After (not 500); a lifecycle event
// whose update failed meanwhile is repaired as soon as the database is back, not at the next periodic
// resync (an hour here).
func TestDatabaseOutage_503WhileDown_MissedStatusRepairedWhenBack(t *testing.T) {
	var proxy *pgProxy
	s := newStackVia(t, func(dsn string) string { proxy = newPGProxy(t, dsn); return proxy.dsn(dsn) },
		func(c *service.Config) { c.ResyncInterval = time.Hour })
	alice := s.token(1, "user")
	vm := s.create(alice, "outage")
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID)))
	if err != nil {
		t.Fatal(err)
	}

	proxy.down()
	for _, path := range []string{"/api/vms", "/api/vms/" + vm.UUID} {
		a := s.call("GET", path, alice, "")
		if a.status != http.StatusServiceUnavailable || string(a.body) != `{"code":503,"message":"`+web.MessageUnavailable+`"}` {
			t.Fatalf("GET %s with the database away: %d %s", path, a.status, a.body)
		}
	}
	// The guest is started behind LIMEN's back: its event's update fails.
	if err := l.DomainCreate(dom); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	proxy.up()
	back := time.Now()
	for {
		a := s.call("GET", "/api/vms/"+vm.UUID, alice, "")
		var got vmJSON
		if a.status == http.StatusOK {
			a.decode(t, &got)
			if got.Status == "Running" {
				t.Logf("Running %s after the database was back", time.Since(back).Round(time.Millisecond))
				return
			}
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("5 s after the database was back: %d %s; the guest runs", a.status, a.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
