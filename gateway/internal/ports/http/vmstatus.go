package http

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/fasthttp/websocket"
	fiberws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
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
}

// NewVMStatus serves the live status use case until ctx ends.
func NewVMStatus(ctx context.Context, watch app.WatchVMStatusHandler, verifier *authn.Verifier, log *slog.Logger) *VMStatus {
	clients, err := otel.Meter("limen/gateway").Int64UpDownCounter("limen.ws.clients",
		metric.WithDescription("Clients connected to the live status WebSocket."))
	if err != nil {
		log.Warn("metric limen.ws.clients unavailable", "err", err)
	}
	return &VMStatus{Watch: watch, Verifier: verifier, Log: log, stopping: ctx.Done(), clients: clients}
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

// Accept takes the upgrade Authenticate let through (with the token in `?token=` or
// `Authorization: Bearer`), unless there is no vm-service to list VMs (503) or the request is no
// WebSocket upgrade (426).
func (s *VMStatus) Accept(c *fiber.Ctx) error {
	who, _ := callerOf(c)
	if s.Watch.VMs == nil {
		return web.NewError(http.StatusServiceUnavailable, "Service unavailable")
	}
	if !fiberws.IsWebSocketUpgrade(c) {
		return fiber.ErrUpgradeRequired
	}
	c.Locals(localIdentity, identity{
		viewer: domain.Viewer{UserID: who.claims.UserID, Admin: who.claims.IsAdmin()},
		token:  who.token, expires: who.claims.ExpiresAt.Time,
		requestID: logging.RequestID(c.UserContext()),
	})
	return c.Next()
}

// Upgrade is the handler that takes the connection over once Accept took it.
func (s *VMStatus) Upgrade() fiber.Handler {
	return fiberws.New(func(c *fiberws.Conn) {
		id, ok := c.Locals(localIdentity).(identity)
		if !ok {
			_ = c.Close()
			return
		}
		// The contrib wrapper is pooled and emptied when this function returns; keep the connection
		// itself for the reader goroutine.
		s.serve(c.Conn, id)
	}, fiberws.Config{RecoverHandler: s.recovered})
}

// recovered logs a panic of one connection's handler; the contrib default would send it to the client.
func (s *VMStatus) recovered(*fiberws.Conn) {
	if r := recover(); r != nil {
		s.Log.Error("live status: panic", "panic", r, "stack", string(debug.Stack()))
	}
}

func (s *VMStatus) serve(conn *websocket.Conn, id identity) {
	ctx, cancel := context.WithCancel(logging.WithRequestID(context.Background(), id.requestID))
	defer cancel()
	slot := s.sockets.open(id.viewer.UserID, s.maxPerUser())
	defer s.sockets.close(slot)
	if s.clients != nil {
		s.clients.Add(ctx, 1)
		defer s.clients.Add(context.Background(), -1)
	}
	ping := s.PingInterval
	if ping <= 0 {
		ping = DefaultPingInterval
	}

	// The reader only notices pongs (which keep the read deadline moving) and the client leaving.
	conn.SetReadLimit(maxClientMessage)
	_ = conn.SetReadDeadline(time.Now().Add(2 * ping))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(2 * ping)) })
	gone := make(chan error, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				cancel()
				gone <- err
				return
			}
		}
	}()
	defer func() {
		_ = conn.Close()
		<-readerDone
	}()

	session, err := s.Watch.Handle(ctx, app.WatchVMStatus{Viewer: id.viewer, Token: id.token})
	if err != nil {
		if ctx.Err() == nil {
			s.Log.WarnContext(ctx, "live status: no VM list", "user_id", id.viewer.UserID, "err", err)
			s.close(conn, closeNoList, "VM list unavailable")
		}
		return
	}
	defer session.Close()
	if !s.write(ctx, conn, session.First()) {
		return
	}

	pinger := time.NewTicker(ping)
	defer pinger.Stop()
	expiry := time.NewTimer(time.Until(id.expires))
	defer expiry.Stop()
	for {
		select {
		case err := <-gone:
			var closed *websocket.CloseError
			if !errors.As(err, &closed) {
				// No close frame: the client vanished or stopped answering pings.
				s.close(conn, closeNoAnswer, "No answer to ping")
			}
			return
		case <-s.stopping:
			s.close(conn, closeShutdown, "Server shutting down")
			return
		case <-expiry.C:
			s.close(conn, CloseTokenExpired, "Token expired")
			return
		case <-slot.recheck:
			if _, err := s.Verifier.Verify(id.token); err != nil {
				s.Log.InfoContext(ctx, "live status: token revoked, disconnected", "user_id", id.viewer.UserID)
				s.close(conn, CloseAccessRevoked, "Access revoked")
				return
			}
		case <-slot.evicted:
			s.Log.InfoContext(ctx, "live status: user opened too many sockets, oldest closed", "user_id", id.viewer.UserID)
			s.close(conn, closeTooMany, "Too many connections")
			return
		case <-session.Cut():
			s.Log.InfoContext(ctx, "live status: client too slow, disconnected", "user_id", id.viewer.UserID)
			s.close(conn, closeTooSlow, "Client too slow")
			return
		case <-pinger.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.writeTimeout())); err != nil {
				return
			}
		case e := <-session.Events():
			for _, m := range session.Messages(e) {
				if !s.write(ctx, conn, m) {
					return
				}
			}
		}
	}
}

func (s *VMStatus) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return defaultWriteTimeout
}

// write sends one message; false means the connection is done with.
func (s *VMStatus) write(ctx context.Context, conn *websocket.Conn, m app.StatusMessage) bool {
	body, err := json.Marshal(toStatusMessage(m))
	if err != nil {
		s.Log.ErrorContext(ctx, "live status: encoding a message", "err", err)
		return true
	}
	_ = conn.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
	if err := conn.WriteMessage(websocket.TextMessage, body); err != nil {
		if ctx.Err() == nil {
			s.Log.InfoContext(ctx, "live status: client did not take a message, disconnected", "err", err)
		}
		return false
	}
	return true
}

// close says why the server ends the connection; best effort, the client may be gone already.
func (s *VMStatus) close(conn *websocket.Conn, code int, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
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
