package http

import (
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"limen/libs/authn"
	"limen/libs/contract"
	"limen/libs/web"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

type consoleResponse struct {
	WSURL     string    `json:"ws_url"`
	Protocol  string    `json:"protocol"`
	ExpiresAt time.Time `json:"expires_at"`
}

// console issues a ticket and names the gateway's WebSocket that takes it, as the client reached
// the gateway: its scheme and host, which the gateway (a trusted proxy) passes on.
func (h handlers) console(c *fiber.Ctx) error {
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	protocol, err := domain.ParseConsoleProtocol(c.Query("type"))
	if err != nil {
		return err
	}
	claims := authn.ClaimsOf(c)
	issued, err := h.app.Commands.IssueConsoleTicket.Handle(c.UserContext(), app.IssueConsoleTicket{
		Caller: callerOf(c), TokenVersion: claims.Version, SessionID: claims.SessionID, Ref: ref, Protocol: protocol})
	if err != nil {
		return err
	}
	client := web.ClientOf(c)
	scheme := "ws"
	if client.Proto == "https" {
		scheme = "wss"
	}
	socket := url.URL{Scheme: scheme, Host: client.Host, Path: contract.ConsoleSocketPath(issued.Ticket.VMUUID.String()),
		RawQuery: url.Values{contract.ConsoleTicketParam: {issued.Secret}}.Encode()}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(consoleResponse{WSURL: socket.String(), Protocol: string(protocol), ExpiresAt: issued.Ticket.ExpiresAt})
}

// Console streams (vm-service's side; the gateway's WebSocket carries the same bytes on).
const (
	// consoleWriteTimeout bounds one write to the gateway: a peer that takes nothing for that long
	// is gone or too slow, and the session ends.
	consoleWriteTimeout = 10 * time.Second
	// consoleBehind is how much of the console's output may wait for a slow peer. The console is
	// always read at once, so neither QEMU nor the guest ever waits for a client; a client that
	// falls further behind loses its session.
	consoleBehind = 16 << 20
	// consoleChunk is the most read from the console at once.
	consoleChunk = 64 << 10
	// hijackWait bounds the wait for the connection after answering 101.
	hijackWait = 10 * time.Second
)

// internalConsole redeems the ticket for the VM and switches the connection to the console's bytes.
func (h handlers) internalConsole(c *fiber.Ctx) error {
	if !strings.EqualFold(c.Get(fiber.HeaderUpgrade), contract.ConsoleUpgrade) {
		return web.NewError(fiber.StatusUpgradeRequired, "Upgrade Required")
	}
	ref, err := refOf(c)
	if err != nil {
		return err
	}
	session, err := h.app.Commands.OpenConsole.Handle(c.UserContext(), app.OpenConsole{Ref: ref, Secret: c.Get(contract.ConsoleTicketHeader)})
	if err != nil {
		return err
	}
	// fasthttp hands the connection over only once the 101 is written; if that fails it never does.
	var taken atomic.Bool
	time.AfterFunc(hijackWait, func() {
		if !taken.Load() {
			_ = session.Close()
		}
	})
	c.Status(fiber.StatusSwitchingProtocols)
	c.Set(fiber.HeaderConnection, "Upgrade")
	c.Set(fiber.HeaderUpgrade, contract.ConsoleUpgrade)
	c.Context().Hijack(func(conn net.Conn) {
		taken.Store(true)
		pipeConsole(conn, session)
	})
	return nil
}

// pipeConsole carries the session's bytes both ways until either side ends, the session is ended
// (its token revoked, the process stopping) or the peer falls consoleBehind behind.
func pipeConsole(conn net.Conn, session *app.ConsoleSession) {
	defer conn.Close()
	defer session.Close()
	_ = conn.SetDeadline(time.Time{})
	go func() {
		_, _ = io.Copy(session, conn)
		_ = session.Close()
	}()
	out := newChunkQueue(consoleBehind)
	go func() {
		defer out.close()
		for {
			buf := make([]byte, consoleChunk)
			n, err := session.Read(buf)
			if n > 0 && !out.push(buf[:n]) {
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-session.Done():
			return
		case chunk, ok := <-out.chunks:
			if !ok {
				return
			}
			out.taken(len(chunk))
			_ = conn.SetWriteDeadline(time.Now().Add(consoleWriteTimeout))
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	}
}

// chunkQueue holds what was read and not yet written, up to a number of bytes.
type chunkQueue struct {
	chunks  chan []byte
	limit   int64
	pending atomic.Int64
}

func newChunkQueue(limit int64) *chunkQueue {
	return &chunkQueue{chunks: make(chan []byte, limit/4096), limit: limit}
}

// push queues a chunk; false when the queue is over its limit (the session must end).
func (q *chunkQueue) push(chunk []byte) bool {
	if q.pending.Add(int64(len(chunk))) > q.limit {
		return false
	}
	select {
	case q.chunks <- chunk:
		return true
	default:
		return false
	}
}

func (q *chunkQueue) taken(n int) { q.pending.Add(-int64(n)) }

func (q *chunkQueue) close() { close(q.chunks) }
