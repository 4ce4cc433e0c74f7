package http

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	fiberws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"limen/libs/contract"
	"limen/libs/logging"
	"limen/libs/web"
)

// ConsoleSocketPath is the console WebSocket (contract.ConsoleSocketPrefix and the VM).
const ConsoleSocketPath = contract.ConsoleSocketPrefix + ":ref"

const (
	// consoleRedeemTimeout bounds redeeming a ticket at vm-service, which opens the console.
	consoleRedeemTimeout = 15 * time.Second
	// maxConsoleFrame bounds a client's frame: RFB's messages are small, a pasted clipboard aside.
	maxConsoleFrame = 1 << 20
	// consoleChunk is the most read from vm-service into one frame.
	consoleChunk = 64 << 10
)

// closeConsoleEnded ends the console socket when the console ended (the VM stopped, the ticket's
// token was revoked); a frame over maxConsoleFrame is answered by the WebSocket library itself
// (1009), the other codes are VMStatus's.
const closeConsoleEnded = websocket.CloseNormalClosure

// Console serves the console WebSocket: Open redeems the ticket at vm-service, which answers with
// the console's bytes on the same connection, and only then is the client's upgrade accepted, so a
// bad ticket is refused with vm-service's 401 and nothing reaches the VM. The socket then carries
// the bytes both ways in binary frames. vm-service ends the console when the VM stops or the token
// the ticket was issued for is revoked; the gateway when the client goes, falls behind, stops
// answering pings or sends an oversized frame, or when it stops.
type Console struct {
	// VMBase is vm-service's base URL and InternalToken what its internal routes take; without
	// either the socket answers 503.
	VMBase        string
	InternalToken string
	Log           *slog.Logger
	// PingInterval and WriteTimeout as VMStatus's (0: their defaults).
	PingInterval time.Duration
	WriteTimeout time.Duration

	stopping <-chan struct{}
}

// NewConsole serves consoles until ctx ends.
func NewConsole(ctx context.Context, vmBase, internalToken string, log *slog.Logger) *Console {
	return &Console{VMBase: vmBase, InternalToken: internalToken, Log: log, stopping: ctx.Done()}
}

// localConsole is the Fiber local under which Open hands the open console to Upgrade.
const localConsole = "limen.console.upstream"

// consoleStream is a console vm-service opened: its connection, and what was read of it with its
// answer.
type consoleStream struct {
	conn   net.Conn
	reader *bufio.Reader
	// taken is set when the socket took the console over; until then a timer may close it.
	taken atomic.Bool
}

// Open answers 426 for a request that is no WebSocket upgrade (the ticket stays unspent), and
// otherwise redeems the ticket: vm-service's refusal (401, 404, 409, 503) is answered as it is.
func (k *Console) Open(c *fiber.Ctx) error {
	if !fiberws.IsWebSocketUpgrade(c) {
		return fiber.ErrUpgradeRequired
	}
	if k.VMBase == "" || k.InternalToken == "" {
		return web.NewError(http.StatusServiceUnavailable, "Service unavailable")
	}
	ticket := c.Query(contract.ConsoleTicketParam)
	if ticket == "" {
		return web.Unauthorized()
	}
	up, err := k.redeem(c.Params("ref"), ticket, logging.RequestID(c.UserContext()))
	if err != nil {
		return err
	}
	// The upgrade hands the connection over only once the 101 is written; if that fails, it never does.
	time.AfterFunc(consoleRedeemTimeout, func() {
		if !up.taken.Load() {
			_ = up.conn.Close()
		}
	})
	c.Locals(localConsole, up)
	return c.Next()
}

// redeem asks vm-service to open the console of ref with ticket.
func (k *Console) redeem(ref, ticket, requestID string) (*consoleStream, error) {
	target, err := url.Parse(strings.TrimSuffix(k.VMBase, "/") + contract.InternalConsolePath(ref))
	if err != nil {
		return nil, err
	}
	unanswered := &web.Error{Code: http.StatusBadGateway, Message: "Service unavailable", Detail: "upstream vm did not answer"}
	deadline := time.Now().Add(consoleRedeemTimeout)
	conn, err := dialService(k.VMBase, deadline)
	if err != nil {
		return nil, unanswered
	}
	_ = conn.SetDeadline(deadline)
	req := &http.Request{Method: http.MethodGet, URL: target, Host: target.Host,
		Header: http.Header{
			fiber.HeaderAuthorization:    {"Bearer " + k.InternalToken},
			contract.ConsoleTicketHeader: {ticket},
			fiber.HeaderConnection:       {"Upgrade"},
			fiber.HeaderUpgrade:          {contract.ConsoleUpgrade},
			web.HeaderRequestID:          {requestID},
		}}
	reader := bufio.NewReaderSize(conn, consoleChunk)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, unanswered
	}
	resp, err := http.ReadResponse(reader, req)
	if err != nil {
		conn.Close()
		return nil, unanswered
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		_ = conn.SetDeadline(time.Time{})
		return &consoleStream{conn: conn, reader: reader}, nil
	}
	defer conn.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var refusal web.Error
	if json.Unmarshal(body, &refusal) != nil || refusal.Code != resp.StatusCode || refusal.Message == "" {
		return nil, unanswered
	}
	return nil, &refusal
}

// Upgrade is the handler that takes the connection over once Open opened the console.
func (k *Console) Upgrade() fiber.Handler {
	return fiberws.New(func(c *fiberws.Conn) {
		up, ok := c.Locals(localConsole).(*consoleStream)
		if !ok {
			_ = c.Close()
			return
		}
		up.taken.Store(true)
		k.serve(c.Conn, up)
	}, fiberws.Config{Subprotocols: []string{"binary"}, ReadBufferSize: consoleChunk, WriteBufferSize: consoleChunk,
		RecoverHandler: k.recovered})
}

func (k *Console) recovered(*fiberws.Conn) {
	if r := recover(); r != nil {
		k.Log.Error("console: panic", "panic", r, "stack", string(debug.Stack()))
	}
}

func (k *Console) pingInterval() time.Duration {
	if k.PingInterval > 0 {
		return k.PingInterval
	}
	return DefaultPingInterval
}

func (k *Console) writeTimeout() time.Duration {
	if k.WriteTimeout > 0 {
		return k.WriteTimeout
	}
	return defaultWriteTimeout
}

// serve carries the console both ways until one side ends it.
func (k *Console) serve(conn *websocket.Conn, up *consoleStream) {
	defer conn.Close()
	defer up.conn.Close()
	ping := k.pingInterval()
	conn.SetReadLimit(maxConsoleFrame)
	_ = conn.SetReadDeadline(time.Now().Add(2 * ping))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(2 * ping)) })

	// What the client sends goes to the console as it is, text or binary.
	clientGone := make(chan error, 1)
	// Either goroutine may see the console end.
	consoleEnded := make(chan error, 2)
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				clientGone <- err
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(2 * ping))
			_ = up.conn.SetWriteDeadline(time.Now().Add(k.writeTimeout()))
			if _, err := up.conn.Write(data); err != nil {
				consoleEnded <- nil
				return
			}
		}
	}()
	// What the console sends goes to the client in binary frames; a client that takes nothing for
	// WriteTimeout is cut off, and vm-service, which never waits for it, ends the console then.
	go func() {
		buf := make([]byte, consoleChunk)
		for {
			n, err := up.reader.Read(buf)
			if n > 0 {
				_ = conn.SetWriteDeadline(time.Now().Add(k.writeTimeout()))
				if werr := conn.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
					consoleEnded <- werr
					return
				}
			}
			if err != nil {
				consoleEnded <- nil
				return
			}
		}
	}()
	pinger := time.NewTicker(ping)
	defer pinger.Stop()
	for {
		select {
		case err := <-clientGone:
			var closed *websocket.CloseError
			if !errors.As(err, &closed) && !errors.Is(err, websocket.ErrReadLimit) {
				// No close frame: the client vanished or stopped answering pings.
				k.close(conn, closeNoAnswer, "No answer to ping")
			}
			return
		case err := <-consoleEnded:
			if err != nil {
				k.close(conn, closeTooSlow, "Client too slow")
			} else {
				k.close(conn, closeConsoleEnded, "Console closed")
			}
			return
		case <-k.stopping:
			k.close(conn, closeShutdown, "Server shutting down")
			return
		case <-pinger.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(k.writeTimeout())); err != nil {
				return
			}
		}
	}
}

// close says why the server ends the connection; best effort, the client may be gone already.
func (k *Console) close(conn *websocket.Conn, code int, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
}
