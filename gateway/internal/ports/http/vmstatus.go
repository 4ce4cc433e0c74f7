package http

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"limen/gateway/internal/app"
	"limen/gateway/internal/domain"
	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/logging"
	"limen/libs/web"
)

// VMStatusPath is the live status WebSocket.
const VMStatusPath = "/ws/vm-status"

// Close codes the live status socket ends with, besides the client's own.
const (
	// CloseTokenExpired: the access token ran out; the client should reconnect with a fresh one.
	CloseTokenExpired = 4401
	// CloseAccessRevoked: the user's token was revoked (role or approval changed, user deleted,
	// session ended); a fresh login decides what the user may still see.
	CloseAccessRevoked = 4403
	closeTooSlow       = websocket.ClosePolicyViolation
	closeNoAnswer      = websocket.ClosePolicyViolation
	closeShutdown      = websocket.CloseGoingAway
	closeNoList        = websocket.CloseInternalServerErr
)

const (
	// DefaultPingInterval is how often the server pings a client (/ws/vm-status in docs/openapi.yaml).
	DefaultPingInterval = 30 * time.Second
	// defaultWriteTimeout bounds one write: a client that cannot take a message in that time is cut off.
	defaultWriteTimeout = 10 * time.Second
	// maxClientMessage bounds what a client may send; it has nothing to say, so anything is ignored.
	maxClientMessage = 4 << 10
)

// VMStatus serves the live status WebSocket. Connections end with a close frame when the token
// expires (4401) or is revoked (4403), the client falls behind (1008), stops answering pings (1008),
// its user opens more than MaxPerUser sockets (1008, the oldest goes), the first VM list cannot be
// fetched (1011) or the server stops (1001).
//
// An open socket costs one goroutine, which reads: a client has nothing to say beyond its pongs and
// its close. Everything the socket sends goes through its writer (socket.wake), which runs in a
// goroutine of its own only while there is something to send, and sends all that waits in one write
// (socket.send). Messages alike for every client (all but lists) are encoded and framed once
// (app.SharedMessage).
type VMStatus struct {
	Watch app.WatchVMStatusHandler
	// Verifier checks an open socket's token again when auth-service revokes tokens of its user.
	Verifier *authn.Verifier
	Log      *slog.Logger
	// PingInterval is how often the server pings; a client that has not answered for two intervals is
	// closed (0: DefaultPingInterval).
	PingInterval time.Duration
	// WriteTimeout bounds one write (0: 10 s).
	WriteTimeout time.Duration
	// AllowedOrigins are the browser origins besides the gateway's own that may open the socket
	// (LIMEN_CORS_ORIGINS; see CheckOrigin).
	AllowedOrigins []string
	// MaxPerUser caps each user's open sockets; a newer one closes the oldest (0: DefaultMaxPerUser).
	MaxPerUser int

	// sockets holds each user to MaxPerUser.
	sockets userSockets
	// stopping ends every connection when the server shuts down: Fiber's graceful shutdown does not
	// wait for hijacked connections.
	stopping <-chan struct{}
	clients  metric.Int64UpDownCounter
	upgrader websocket.FastHTTPUpgrader
}

const (
	// readBufferSize is a socket's read buffer: what a client sends is small (pongs, its close).
	readBufferSize = 256
	// keptMessages bounds the writer's buffer a socket keeps between runs; a larger one, after a
	// burst, goes.
	keptMessages = 16
	// batchBytes is about the most one write sends: the writer writes its batch once it holds that
	// much, and pools buffers up to that size.
	batchBytes = 64 << 10
)

// batches are the writers' buffers, in which the frames of one write are put together.
var batches = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// NewVMStatus serves the live status use case until ctx ends, when every socket is closed (1001).
func NewVMStatus(ctx context.Context, watch app.WatchVMStatusHandler, verifier *authn.Verifier, log *slog.Logger) *VMStatus {
	clients, err := otel.Meter("limen/gateway").Int64UpDownCounter("limen.ws.clients",
		metric.WithDescription("Clients connected to the live status WebSocket."))
	if err != nil {
		log.Warn("metric limen.ws.clients unavailable", "err", err)
	}
	// The writer frames messages itself (socket.send); with a pool, which it never uses, a Conn
	// allocates no write buffer of its own.
	s := &VMStatus{Watch: watch, Verifier: verifier, Log: log, stopping: ctx.Done(), clients: clients,
		upgrader: websocket.FastHTTPUpgrader{ReadBufferSize: readBufferSize, WriteBufferPool: &sync.Pool{},
			// CheckOrigin (the middleware) has decided.
			CheckOrigin: func(*fasthttp.RequestCtx) bool { return true }}}
	context.AfterFunc(ctx, func() {
		s.sockets.each(func(sock *socket) { sock.shutDown(closeShutdown, "Server shutting down", "") })
	})
	return s
}

// UserChanged closes the user's sockets whose token auth-service has since revoked (4403); call it
// on every change the revocation list applies.
func (s *VMStatus) UserChanged(userID int64) { s.sockets.notify(userID) }

// localIdentity is the Fiber local under which Accept hands the verified caller to the socket.
const localIdentity = "limen.vmstatus.identity"

type identity struct {
	viewer  domain.Viewer
	token   string
	expires time.Time
	// requestID ties the socket's log lines and vm-service calls to the upgrade request.
	requestID string
}

// Accept takes the upgrade Authenticate let through (with the token in `?token=`, `Authorization:
// Bearer` or the session cookie), unless there is no vm-service to list VMs (503) or the request is
// no WebSocket upgrade (426). The socket shows the VMs GET /api/vms would list with the same `all`.
func (s *VMStatus) Accept(c *fiber.Ctx) error {
	who, _ := callerOf(c)
	if s.Watch.VMs == nil {
		return web.NewError(http.StatusServiceUnavailable, "Service unavailable")
	}
	if !websocket.FastHTTPIsWebSocketUpgrade(c.Context()) {
		return fiber.ErrUpgradeRequired
	}
	c.Locals(localIdentity, identity{
		viewer: domain.NewViewer(who.claims.UserID, who.claims.IsAdmin(), c.QueryBool("all")),
		// A copy: the caller's token is the request's bytes, which fasthttp reuses once the socket
		// is open (the upgrade request is let go), and the socket checks it again on revocations.
		token: strings.Clone(who.token), expires: who.claims.ExpiresAt.Time,
		// A copy: the id as the request has it keeps the request's context alive.
		requestID: strings.Clone(logging.RequestID(c.UserContext())),
	})
	return c.Next()
}

// Upgrade is the handler that takes the connection over once Accept took it.
func (s *VMStatus) Upgrade() fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, ok := c.Locals(localIdentity).(identity)
		if !ok {
			return fiber.ErrUpgradeRequired
		}
		// The socket is served in a goroutine of its own, which closes it: fasthttp, which keeps
		// hijacked connections open (web.NewApp), lets go of the upgrade request once this returns.
		err := s.upgrader.Upgrade(c.Context(), func(conn *websocket.Conn) { go s.serve(conn, id) })
		if err != nil {
			return fiber.ErrUpgradeRequired
		}
		return nil
	}
}

// recovered, deferred by each of a socket's goroutines, logs a panic rather than letting it end the
// process, and ends the connection.
func (sock *socket) recovered() {
	if r := recover(); r != nil {
		sock.status.Log.ErrorContext(sock.logCtx(), "live status: panic", "panic", r, "stack", string(debug.Stack()))
		sock.broken()
	}
}

func (s *VMStatus) pingInterval() time.Duration {
	if s.PingInterval > 0 {
		return s.PingInterval
	}
	return DefaultPingInterval
}

func (s *VMStatus) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return defaultWriteTimeout
}

// serve runs one socket in a goroutine of its own, which reads it until the client goes or the socket
// is closed; the socket is done with, and its connection closed, when it returns.
func (s *VMStatus) serve(conn *websocket.Conn, id identity) {
	ctx := logging.WithRequestID(context.Background(), id.requestID)
	// The first list goes out before anything else: its writer runs from the start. The client
	// leaving ends its fetch.
	listCtx, stopList := context.WithCancel(ctx)
	sock := &socket{status: s, conn: conn, id: id, writing: true, stopList: stopList}
	sock.slot = s.sockets.open(sock, s.maxPerUser())
	if s.clients != nil {
		s.clients.Add(ctx, 1)
		defer s.clients.Add(context.Background(), -1)
	}
	select {
	case <-s.stopping:
		sock.shutDown(closeShutdown, "Server shutting down", "")
	default:
	}
	// The client answers pings with pongs, which keep the read deadline moving. Its pings and its
	// close are answered by the writer (and finish), the only ones that write.
	ping := s.pingInterval()
	conn.SetReadLimit(maxClientMessage)
	_ = conn.SetReadDeadline(time.Now().Add(2 * ping))
	conn.SetPongHandler(func(string) error {
		sock.mu.Lock()
		shut := sock.shut
		sock.mu.Unlock()
		if shut {
			return nil // closing: the close's grace stands
		}
		return conn.SetReadDeadline(time.Now().Add(2 * ping))
	})
	conn.SetPingHandler(func(data string) error {
		sock.mu.Lock()
		sock.pong = &data
		sock.mu.Unlock()
		sock.wake()
		return nil
	})
	conn.SetCloseHandler(func(int, string) error { return nil })
	sock.writers.Add(1)
	go sock.start(listCtx)
	var err error
	defer func() { sock.finish(err) }()
	defer sock.recovered()
	for err == nil {
		var r io.Reader
		if _, r, err = conn.NextReader(); err == nil {
			_, err = io.Copy(io.Discard, r)
		}
	}
}

// socket is one open connection. Its writer sends the first list, then whatever wake finds to do:
// the session's messages, pings, a token check after a revocation, and the close the socket ends
// with.
type socket struct {
	status  *VMStatus
	conn    *websocket.Conn
	id      identity
	slot    *socketSlot
	writers sync.WaitGroup
	// session and the timer are set by start, before it hands the writer on.
	session *app.StatusSession
	// timer fires when the next ping is due, or the token expires if that comes first.
	timer *time.Timer
	// msgs is the writer's buffer, kept between runs.
	msgs []app.StatusMessage

	mu sync.Mutex
	// writing: a writer runs; again: something arrived since it looked.
	writing, again bool
	ping, recheck  bool
	// pong is what the client's last unanswered ping carried.
	pong *string
	// closing is the first reason given to close, if any; shut: the close is sent or the connection
	// broken, nothing more is written.
	closing *ending
	shut    bool
	// done: the reader ended, no writer starts any more.
	done bool
	// stopList ends the first list's fetch; nil once it is over (the socket keeps no context it
	// does not need).
	stopList context.CancelFunc
}

// ending is how the socket is to end, and what to log about it.
type ending struct {
	code         int
	reason, note string
}

// start is the writer's first run: it opens the session, sends the first list, arms the timers and
// goes on with what arrived meanwhile.
func (sock *socket) start(listCtx context.Context) {
	defer sock.writers.Done()
	defer sock.recovered()
	s := sock.status
	session, err := s.Watch.Handle(listCtx, app.WatchVMStatus{Viewer: sock.id.viewer, Token: sock.id.token, Wake: sock.wake})
	clientGone := listCtx.Err() != nil
	sock.mu.Lock()
	sock.stopList()
	sock.stopList = nil
	sock.mu.Unlock()
	if err != nil {
		if !clientGone {
			s.Log.WarnContext(sock.logCtx(), "live status: no VM list", "user_id", sock.id.viewer.UserID, "err", err)
			sock.close(&ending{code: closeNoList, reason: "VM list unavailable"})
		}
		return
	}
	sock.session = session
	if !sock.send(session.First()) {
		return
	}
	sock.timer = time.AfterFunc(sock.untilTimer(), sock.timerFired)
	sock.run()
}

// untilTimer is how long until the next ping is due or the token expires, whichever comes first.
func (sock *socket) untilTimer() time.Duration {
	return min(sock.status.pingInterval(), time.Until(sock.id.expires))
}

// timerFired closes the socket if the token has expired (4401), and has the writer ping otherwise.
func (sock *socket) timerFired() {
	if !time.Now().Before(sock.id.expires) {
		sock.shutDown(CloseTokenExpired, "Token expired", "")
		return
	}
	sock.mu.Lock()
	sock.ping = true
	sock.mu.Unlock()
	sock.wake()
}

// logCtx carries the request id into the socket's logs (the socket keeps no context: it is rarely
// needed).
func (sock *socket) logCtx() context.Context {
	return logging.WithRequestID(context.Background(), sock.id.requestID)
}

// wake has the writer look at what there is to do, starting it unless it runs.
func (sock *socket) wake() {
	sock.mu.Lock()
	defer sock.mu.Unlock()
	switch {
	case sock.done || sock.shut:
	case sock.writing:
		sock.again = true
	default:
		sock.writing = true
		sock.writers.Add(1)
		go func() {
			defer sock.writers.Done()
			defer sock.recovered()
			sock.run()
		}()
	}
}

// shutDown has the writer close the socket with code (unless it is closing already); note, when
// given, is logged then.
func (sock *socket) shutDown(code int, reason, note string) {
	sock.mu.Lock()
	if sock.closing == nil {
		sock.closing = &ending{code: code, reason: reason, note: note}
	}
	sock.mu.Unlock()
	sock.wake()
}

// recheck has the writer check the token again: auth-service revoked some of its user's.
func (sock *socket) requestRecheck() {
	sock.mu.Lock()
	sock.recheck = true
	sock.mu.Unlock()
	sock.wake()
}

// run is the writer: it does what there is to do until nothing is left, then stops.
func (sock *socket) run() {
	s := sock.status
	for {
		sock.mu.Lock()
		if sock.done || sock.shut {
			sock.writing = false
			sock.mu.Unlock()
			return
		}
		sock.again = false
		closing, ping, recheck, pong := sock.closing, sock.ping, sock.recheck, sock.pong
		sock.ping, sock.recheck, sock.pong = false, false, nil
		sock.mu.Unlock()

		if closing != nil {
			sock.close(closing)
			return
		}
		if recheck {
			if _, err := s.Verifier.Verify(sock.id.token); err != nil {
				sock.close(&ending{code: CloseAccessRevoked, reason: "Access revoked", note: "live status: token revoked, disconnected"})
				return
			}
		}
		if pong != nil && !sock.control(websocket.PongMessage, []byte(*pong)) {
			return
		}
		msgs, cut := sock.session.Take(sock.msgs[:0])
		if !sock.send(msgs...) {
			return
		}
		clear(msgs)
		if cap(msgs) <= keptMessages {
			sock.msgs = msgs
		} else {
			sock.msgs = nil
		}
		if cut {
			sock.close(&ending{code: closeTooSlow, reason: "Client too slow", note: "live status: client too slow, disconnected"})
			return
		}
		if ping {
			if !sock.control(websocket.PingMessage, nil) {
				return
			}
			sock.timer.Reset(sock.untilTimer())
		}

		sock.mu.Lock()
		if !sock.again {
			sock.writing = false
			sock.mu.Unlock()
			return
		}
		sock.mu.Unlock()
	}
}

// send writes msgs, in order, in as few writes as it can (one, unless they come to more than
// batchBytes); false means the connection is broken and done with. A message every client gets alike
// goes out as the frame made for the first; a list is encoded here.
//
// The writer writes frames to the connection itself rather than through the Conn, one write for
// many messages: with thousands of sockets, writes are what the gateway spends its time on. Only the
// writer writes (the client's pings and close are answered by it); the Conn's own close after a
// client's protocol error is one whole write, which the connection does not interleave with others.
func (sock *socket) send(msgs ...app.StatusMessage) bool {
	bp := batches.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= batchBytes {
			*bp = (*bp)[:0]
			batches.Put(bp)
		}
	}()
	for _, m := range msgs {
		if m.Shared == nil {
			body, err := json.Marshal(toStatusMessage(m))
			if err != nil {
				sock.status.Log.ErrorContext(sock.logCtx(), "live status: encoding a message", "err", err)
				continue
			}
			*bp = appendTextFrame(*bp, body)
		} else {
			encoded := m.Shared.Encoded(m, frameStatusMessage)
			frame, ok := encoded.(sharedFrame)
			if !ok {
				sock.status.Log.ErrorContext(sock.logCtx(), "live status: encoding a message", "err", encoded)
				continue
			}
			*bp = append(*bp, frame...)
		}
		if len(*bp) >= batchBytes {
			if !sock.flush(*bp) {
				return false
			}
			*bp = (*bp)[:0]
		}
	}
	return sock.flush(*bp)
}

// flush writes frames, within the write timeout; false means the connection is broken and done with.
func (sock *socket) flush(frames []byte) bool {
	if len(frames) == 0 {
		return true
	}
	conn := sock.conn.NetConn()
	err := conn.SetWriteDeadline(time.Now().Add(sock.status.writeTimeout()))
	if err == nil {
		_, err = conn.Write(frames)
	}
	if err != nil {
		sock.mu.Lock()
		gone := sock.done
		sock.mu.Unlock()
		if !gone {
			sock.status.Log.InfoContext(sock.logCtx(), "live status: client did not take a message, disconnected", "err", err)
		}
		sock.broken()
		return false
	}
	return true
}

// control writes a ping or a pong; false means the connection is broken and done with.
func (sock *socket) control(kind int, data []byte) bool {
	if err := sock.conn.WriteControl(kind, data, time.Now().Add(sock.status.writeTimeout())); err != nil {
		sock.broken()
		return false
	}
	return true
}

// sharedFrame is a message as it goes on the wire to every client: one text frame.
type sharedFrame []byte

// frameStatusMessage is a message as every client is sent it (a sharedFrame), or the error that
// prevented it.
func frameStatusMessage(m app.StatusMessage) any {
	body, err := json.Marshal(toStatusMessage(m))
	if err != nil {
		return err
	}
	return sharedFrame(appendTextFrame(make([]byte, 0, len(body)+maxFrameHeader), body))
}

// maxFrameHeader is the longest header of a server's frame (RFC 6455, 5.2: no mask).
const maxFrameHeader = 10

// appendTextFrame appends body as one final text frame, unmasked as a server sends it (RFC 6455,
// 5.2).
func appendTextFrame(dst, body []byte) []byte {
	const finalText = 0x80 | websocket.TextMessage
	switch n := len(body); {
	case n <= 125:
		dst = append(dst, finalText, byte(n))
	case n <= 0xffff:
		dst = append(dst, finalText, 126, byte(n>>8), byte(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, finalText, 127), uint64(n))
	}
	return append(dst, body...)
}

// close says why the server ends the connection (best effort: the client may be gone already) and
// ends it, which ends the reader.
func (sock *socket) close(c *ending) {
	if c.note != "" {
		sock.status.Log.InfoContext(sock.logCtx(), c.note, "user_id", sock.id.viewer.UserID)
	}
	_ = sock.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.code, c.reason), time.Now().Add(time.Second))
	sock.mu.Lock()
	sock.shut, sock.writing = true, false
	sock.mu.Unlock()
	// The client answers with a close of its own, which ends the reader; one that does not is let go
	// after closeGrace. Closing the connection at once would reset it if anything the client sent
	// is still unread, and the client could lose the close, and why, before reading it.
	_ = sock.conn.NetConn().SetReadDeadline(time.Now().Add(closeGrace))
}

// closeGrace is how long a socket that sent its close waits for the client's.
const closeGrace = time.Second

// broken ends the connection after a failed write or a close: the reader ends with it.
func (sock *socket) broken() {
	sock.mu.Lock()
	sock.shut, sock.writing = true, false
	sock.mu.Unlock()
	_ = sock.conn.NetConn().Close()
}

// finish tears the socket down once its reader ended (err): no writer starts any more, the one
// running ends, and a client that vanished without a close frame is told why, if nothing was.
func (sock *socket) finish(err error) {
	sock.mu.Lock()
	sock.done = true
	if sock.stopList != nil {
		sock.stopList() // a first list still being fetched is not wanted any more
	}
	sock.mu.Unlock()
	sock.writers.Wait()
	if sock.timer != nil {
		sock.timer.Stop()
	}
	var closed *websocket.CloseError
	switch {
	case sock.shut:
	case errors.As(err, &closed):
		// The client's close, answered with its code as the protocol asks.
		_ = sock.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closed.Code, ""), time.Now().Add(time.Second))
	default:
		// No close frame: the client vanished or stopped answering pings.
		sock.close(&ending{code: closeNoAnswer, reason: "No answer to ping"})
	}
	if sock.session != nil {
		sock.session.Close()
	}
	sock.status.sockets.close(sock.slot)
	_ = sock.conn.Close()
}

// The wire messages (/ws/vm-status in docs/openapi.yaml).
type (
	vmListMessage struct {
		Type string          `json:"type"`
		VMs  json.RawMessage `json:"vms"`
	}
	vmUpdateMessage struct {
		Type string          `json:"type"`
		VM   json.RawMessage `json:"vm"`
		Seq  int64           `json:"seq"`
	}
	vmDeleteMessage struct {
		Type string         `json:"type"`
		VM   contract.VMRef `json:"vm"`
		Seq  int64          `json:"seq"`
	}
	mediaUpdateMessage struct {
		Type string `json:"type"`
		contract.MediaChange
		Seq int64 `json:"seq"`
	}
)

func toStatusMessage(m app.StatusMessage) any {
	e := m.Event
	switch m.Kind {
	case app.StatusVMList:
		return vmListMessage{Type: "vm_list", VMs: m.VMs}
	case app.StatusVMUpdate:
		return vmUpdateMessage{Type: "vm_update", VM: e.VM, Seq: e.Seq}
	case app.StatusVMDelete:
		return vmDeleteMessage{Type: "vm_delete", VM: contract.VMRef{ID: e.VMID, UUID: e.VMUUID}, Seq: e.Seq}
	case app.StatusMediaUpdate:
		return mediaUpdateMessage{Type: "media_update", Seq: e.Seq,
			MediaChange: contract.MediaChange{VMUUID: e.VMUUID, MediaPath: e.Media.Path, Attached: e.Media.Attached}}
	}
	return nil
}
