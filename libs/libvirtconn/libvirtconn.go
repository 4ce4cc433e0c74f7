// Package libvirtconn keeps a process's single libvirt connection alive.
//
// go-libvirt has no keepalive and no call timeouts, and a Libvirt object whose connection died has lost
// its event subscriptions. So the Manager watches each connection (its Disconnected channel plus a
// periodic cheap call, for a remote host that vanishes without closing TCP), replaces a dead one with a
// brand-new Libvirt object, subscribes to lifecycle events again and calls the OnConnect hooks, because
// events sent while the connection was down are lost and only a resync repairs the state.
package libvirtconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
)

// ErrDisconnected is returned by Client and Ready while there is no live connection.
var ErrDisconnected = errors.New("libvirt: not connected")

const (
	eventBuffer = 256
	// pingInterval is how often a live connection is probed: a dead local socket is noticed at once
	// through Disconnected, but a remote host that drops off the network leaves calls hanging forever.
	pingInterval = time.Second
	pingTimeout  = 5 * time.Second
	// connectTimeout bounds a dial plus the handshake, which has no deadline of its own in go-libvirt.
	connectTimeout = 10 * time.Second
	// closeTimeout bounds the polite ConnectClose at shutdown before the socket is simply closed.
	closeTimeout = 2 * time.Second
)

// Config says which libvirt to reach.
type Config struct {
	// URI is what to open: "qemu:///system" (default), "qemu:///session", or a remote
	// "qemu+tcp://host[:port]/system" or "qemu+tls://host[:port]/system". TLS uses go-libvirt's TLS dialer
	// with libvirt's standard PKI files (clientcert.pem and private/clientkey.pem under /etc/pki/libvirt,
	// /etc/pki/CA/cacert.pem, or ~/.pki/libvirt for non-root); the URI parameters pkipath and no_verify
	// work as in libvirt. SSH transports are not supported: tunnel to qemu+tcp instead.
	URI string
	// Socket is the unix socket for local URIs; "" means the URI's socket parameter, else libvirt's
	// default: /var/run/libvirt/libvirt-sock for system, $XDG_RUNTIME_DIR/libvirt/libvirt-sock
	// (or ~/.cache/libvirt/libvirt-sock) for session.
	Socket string
	// ReconnectMin/ReconnectMax bound the reconnect backoff (defaults 200ms / 5s).
	ReconnectMin, ReconnectMax time.Duration
}

// LifecycleEvent is a domain lifecycle change reported by libvirt. Event is a libvirt.DomainEventType
// (Defined, Started, Stopped, ...) and Detail its reason, kept as libvirt's numbers.
type LifecycleEvent struct {
	UUID   [16]byte
	Name   string
	Event  int32
	Detail int32
}

// Manager owns the connection; Run drives it, everything else may be called from any goroutine.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	events    chan LifecycleEvent
	onConnect []func(ctx context.Context)

	mu sync.Mutex
	lv *libvirt.Libvirt // nil while disconnected
	up chan struct{}    // closed while lv is set, so WaitConnected can block on it
}

// New prepares a Manager; nothing is dialled before Run.
func New(cfg Config, log *slog.Logger) *Manager {
	if cfg.URI == "" {
		cfg.URI = string(libvirt.QEMUSystem)
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 200 * time.Millisecond
	}
	if cfg.ReconnectMax < cfg.ReconnectMin {
		cfg.ReconnectMax = max(5*time.Second, cfg.ReconnectMin)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Manager{
		cfg:    cfg,
		log:    log.With("libvirt_uri", cfg.URI),
		events: make(chan LifecycleEvent, eventBuffer),
		up:     make(chan struct{}),
	}
}

// OnConnect registers fn, called in the Run goroutine after every later successful (re)connect once
// events are subscribed, so a resync done there misses nothing. It may be called while Run connects:
// a service needs the first connection to set itself up before it can say what to do on the next.
func (m *Manager) OnConnect(fn func(ctx context.Context)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onConnect = append(m.onConnect, fn)
}

// Events delivers lifecycle events of every domain across reconnects. It is never closed. A slow
// consumer loses events (each drop is logged) rather than stalling libvirt; the next resync repairs.
func (m *Manager) Events() <-chan LifecycleEvent { return m.events }

// Client returns the live connection, or ErrDisconnected while there is none. Callers must not keep it
// across reconnects: a dead connection is never revived, it is replaced.
func (m *Manager) Client() (*libvirt.Libvirt, error) {
	m.mu.Lock()
	lv := m.lv
	m.mu.Unlock()
	if lv == nil || !lv.IsConnected() {
		return nil, ErrDisconnected
	}
	return lv, nil
}

// Ready is the readiness check: nil when connected and libvirt answers a cheap call.
func (m *Manager) Ready(ctx context.Context) error {
	lv, err := m.Client()
	if err != nil {
		return err
	}
	if err := ping(ctx, lv); err != nil {
		return fmt.Errorf("libvirt: %w", err)
	}
	return nil
}

// WaitConnected blocks until connected or ctx is done.
func (m *Manager) WaitConnected(ctx context.Context) error {
	m.mu.Lock()
	up := m.up
	m.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run connects and keeps the connection up until ctx is done, then disconnects and returns nil. It
// returns an error at once only for a URI it cannot use; connection failures are retried forever.
func (m *Manager) Run(ctx context.Context) error {
	dialer, name, err := dialerFor(m.cfg)
	if err != nil {
		return err
	}
	delay := m.cfg.ReconnectMin
	for {
		c, err := m.connect(ctx, dialer, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Half to full delay: replicas of a service retry against a restarted daemon out of step.
			wait := delay/2 + rand.N(delay/2+1)
			m.log.Warn("libvirt connect failed", "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			delay = min(2*delay, m.cfg.ReconnectMax)
			continue
		}
		delay = m.cfg.ReconnectMin
		m.log.Info("libvirt connected")
		m.serve(ctx, c)
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("libvirt connection lost; reconnecting")
	}
}

// conn is one connection's worth of state: go-libvirt objects are not reused after a disconnect.
type conn struct {
	lv        *libvirt.Libvirt
	dialer    *abortDialer
	forwarded chan struct{} // closed when the event forwarder has stopped
}

func (m *Manager) connect(ctx context.Context, d socket.Dialer, name libvirt.ConnectURI) (*conn, error) {
	ad := &abortDialer{Dialer: d}
	stop := context.AfterFunc(ctx, ad.abort)
	defer stop()
	timer := time.AfterFunc(connectTimeout, ad.abort)
	defer timer.Stop()

	lv := libvirt.NewWithDialer(ad)
	if err := lv.ConnectToURI(name); err != nil {
		ad.abort()
		return nil, err
	}
	// Not ctx: go-libvirt stops a cancelled subscription's queue before unregistering it, and an event
	// arriving in between blocks its socket reader for good. The subscription ends with the connection.
	in, err := lv.LifecycleEvents(context.Background())
	if err != nil {
		ad.abort()
		return nil, fmt.Errorf("subscribe to lifecycle events: %w", err)
	}
	c := &conn{lv: lv, dialer: ad, forwarded: make(chan struct{})}
	go m.forward(in, c.forwarded)
	return c, nil
}

func (m *Manager) forward(in <-chan libvirt.DomainEventLifecycleMsg, done chan<- struct{}) {
	defer close(done)
	for msg := range in {
		ev := LifecycleEvent{UUID: msg.Dom.UUID, Name: msg.Dom.Name, Event: msg.Event, Detail: msg.Detail}
		select {
		case m.events <- ev:
		default:
			m.log.Warn("libvirt lifecycle event dropped: consumer too slow", "domain", ev.Name,
				"event", libvirt.DomainEventType(ev.Event).String())
		}
	}
}

// serve publishes c, runs the hooks and watches c until it dies or ctx ends, then tears it down.
func (m *Manager) serve(ctx context.Context, c *conn) {
	m.setClient(c.lv)
	m.mu.Lock()
	hooks := slices.Clone(m.onConnect)
	m.mu.Unlock()
	for _, fn := range hooks {
		fn(ctx)
	}
	m.watch(ctx, c.lv)
	m.setClient(nil)
	if ctx.Err() != nil {
		timer := time.AfterFunc(closeTimeout, c.dialer.abort)
		if err := c.lv.Disconnect(); err != nil {
			m.log.Debug("libvirt disconnect", "err", err)
		}
		timer.Stop()
	}
	// Closing the socket also unblocks calls still waiting on a host that stopped answering.
	c.dialer.abort()
	<-c.forwarded
}

func (m *Manager) watch(ctx context.Context, lv *libvirt.Libvirt) {
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lv.Disconnected():
			return
		case <-tick.C:
			// Also catches a go-libvirt race: a socket that dies during the handshake can leave
			// Disconnected open forever, while calls on it fail at once.
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := ping(pctx, lv)
			cancel()
			if err != nil && ctx.Err() == nil {
				m.log.Warn("libvirt ping failed", "err", err)
				return
			}
		}
	}
}

func (m *Manager) setClient(lv *libvirt.Libvirt) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lv = lv
	if lv != nil {
		close(m.up)
	} else {
		m.up = make(chan struct{})
	}
}

// ping bounds a go-libvirt call by ctx; the abandoned call returns once its socket is closed.
func ping(ctx context.Context, lv *libvirt.Libvirt) error {
	done := make(chan error, 1)
	go func() {
		_, err := lv.ConnectGetLibVersion()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// abortDialer remembers the socket it dialled so the Manager can close it: go-libvirt calls have no
// deadline, and closing the socket is what makes every pending one return.
type abortDialer struct {
	socket.Dialer

	mu      sync.Mutex
	conn    net.Conn
	aborted bool
}

func (d *abortDialer) Dial() (net.Conn, error) {
	c, err := d.Dialer.Dial()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.aborted {
		c.Close()
		return nil, errors.New("connection attempt aborted")
	}
	d.conn = c
	return c, nil
}

func (d *abortDialer) abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.aborted = true
	if d.conn != nil {
		_ = d.conn.Close()
	}
}
