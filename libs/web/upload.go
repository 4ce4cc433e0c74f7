package web

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// Streamed uploads.
//
// fasthttp normally reads a whole request body into memory before the handler runs, and refuses one
// over Server.MaxRequestBodySize (Fiber's BodyLimit) itself. With Server.StreamRequestBody
// (AppConfig.StreamRequestBody) it reads the headers and at most min(Content-Length, BodyLimit, 8 KiB)
// of the body, then calls the handler with the rest left on the connection behind
// RequestCtx.RequestBodyStream(): a body over BodyLimit is NOT refused any more, it is streamed; a
// chunked body is never pre-read at all; and Request.Body() (c.Body()) reads the whole remaining
// stream into memory with no limit. So once streaming is on, NewApp installs a body guard: every
// request that AppConfig.Upload does not mark as an upload gets its body read here, up to BodyLimit
// (413 beyond it, before the handler runs), exactly as if streaming were off; only uploads reach
// their handler with the body still on the wire, for UploadBody.

// uploadStreamKey holds the *uploadStream UploadBody handed out, so the guard can tell afterwards
// whether the handler consumed the whole body.
type uploadStreamKey struct{}

// UploadRoute is an AppConfig.Upload predicate for one route: method and path compared the way
// Fiber's default router does (path case-insensitively, a trailing slash ignored).
func UploadRoute(method, path string) func(c *fiber.Ctx) bool {
	path = strings.TrimSuffix(path, "/")
	return func(c *fiber.Ctx) bool {
		return c.Method() == method && strings.EqualFold(strings.TrimSuffix(c.Path(), "/"), path)
	}
}

// UploadBody hands a handler its request body as a stream, with the body's length from
// Content-Length. Before reading anything it answers (as *Error, contract body) 411 for a body
// without a Content-Length (chunked), 400 for an empty one, and 413 when Content-Length exceeds
// maxBytes (maxBytes <= 0: no limit). The reader yields exactly that many bytes and then io.EOF; a
// client that goes away early gives io.ErrUnexpectedEOF, never a short body that looks complete.
// While the body flows, the connection's read deadline is pushed forward on every read, so that the
// app's ReadTimeout bounds a stalled client rather than the whole upload.
//
// The body is streamed only on an app built with AppConfig.StreamRequestBody whose Upload predicate
// marks the request; anywhere else the body was already read (within BodyLimit) and the reader
// serves it from memory. The reader is valid until the handler returns.
func UploadBody(c *fiber.Ctx, maxBytes int64) (io.Reader, int64, error) {
	size := int64(c.Request().Header.ContentLength())
	stream := c.Context().RequestBodyStream()
	switch {
	case size < 0:
		return nil, 0, refuseBody(c, stream, NewError(http.StatusLengthRequired, "Content-Length required"))
	case size == 0:
		// fasthttp cannot tell "Content-Length: 0" from no Content-Length at all (the body is empty
		// either way), so both land here.
		return nil, 0, NewError(http.StatusBadRequest, "Request body is required")
	case maxBytes > 0 && size > maxBytes:
		return nil, 0, refuseBody(c, stream, &Error{Code: http.StatusRequestEntityTooLarge, Message: "Request body too large",
			Detail: "the limit is " + ByteSize(maxBytes)})
	}
	if stream == nil {
		// Not streaming: the body is in memory already.
		body := c.Request().Body()
		return bytes.NewReader(body), int64(len(body)), nil
	}
	s := &uploadStream{r: stream, remaining: size, conn: c.Context().Conn(), idle: c.App().Config().ReadTimeout}
	c.Locals(uploadStreamKey{}, s)
	return s, size, nil
}

// refuseBody is err, for a request whose body is left unread on the connection (stream not nil):
// see lingerClose.
func refuseBody(c *fiber.Ctx, stream io.Reader, err *Error) error {
	if stream != nil {
		lingerClose(c)
	}
	return err
}

// lingerTime bounds how long lingerClose drains a connection.
const lingerTime = 5 * time.Second

// lingerClose ends the connection after the response, as nginx's lingering close does. The unread
// rest of the body must not be taken for the next request, so the connection has to go; but closing
// a socket that still has unread data makes the kernel answer with a reset, which often destroys the
// response before the client reads it (a client busy sending a large body sees "connection reset"
// instead of the 413). So the connection is hijacked: the response goes out with "Connection:
// close", the write side is shut, and what the client still sends is read and dropped until it
// stops, or for lingerTime at most, before the connection is closed. (fasthttp would close the
// connection without running a hijack handler for a response marked "Connection: close", so the
// handler writes the response itself.)
func lingerClose(c *fiber.Ctx) {
	fctx := c.Context()
	raw := fctx.Conn()
	fctx.HijackSetNoResponse(true)
	fctx.Hijack(func(conn net.Conn) {
		defer conn.Close()
		fctx.Response.SetConnectionClose()
		bw := bufio.NewWriter(conn)
		if fctx.Response.Write(bw) != nil || bw.Flush() != nil {
			return
		}
		if cw, ok := raw.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.Copy(io.Discard, conn)
	})
}

// uploadStream is a known-length body read from the connection.
type uploadStream struct {
	r         io.Reader
	remaining int64
	conn      net.Conn
	idle      time.Duration
	extended  time.Time
	err       error
}

// deadlineRefresh is how often the read deadline is pushed forward, at most.
const deadlineRefresh = time.Second

func (s *uploadStream) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.remaining == 0 {
		s.err = io.EOF
		return 0, io.EOF
	}
	if s.conn != nil && s.idle > 0 {
		if now := time.Now(); now.Sub(s.extended) >= deadlineRefresh {
			_ = s.conn.SetReadDeadline(now.Add(s.idle))
			s.extended = now
		}
	}
	if int64(len(p)) > s.remaining {
		p = p[:s.remaining]
	}
	n, err := s.r.Read(p)
	s.remaining -= int64(n)
	switch {
	case err == io.EOF && s.remaining > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && s.remaining == 0:
		err = io.EOF
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// complete reports whether the whole body was read off the connection.
func (s *uploadStream) complete() bool { return s.remaining == 0 }

// bodyGuard holds every request but uploads to limit while StreamRequestBody is on (see above).
func bodyGuard(limit int, upload func(c *fiber.Ctx) bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if upload != nil && upload(c) {
			declared := c.Request().Header.ContentLength() != 0
			err := c.Next()
			// A body the handler left (partly) unread would be parsed as the next request by older
			// fasthttp versions (v1.51; v1.77 drains up to 256 KiB, then closes with a reset).
			if declared {
				if s, ok := c.Locals(uploadStreamKey{}).(*uploadStream); !ok || !s.complete() {
					lingerClose(c)
				}
			}
			return err
		}
		if err := readLimitedBody(c, limit); err != nil {
			lingerClose(c)
			return err
		}
		return c.Next()
	}
}

// readLimitedBody reads a streamed request body into memory, refusing one over limit: what fasthttp
// does itself when streaming is off.
func readLimitedBody(c *fiber.Ctx, limit int) *Error {
	stream := c.Context().RequestBodyStream()
	if stream == nil {
		return nil
	}
	if c.Request().Header.ContentLength() > limit {
		return NewError(http.StatusRequestEntityTooLarge, "Request body too large")
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(stream, int64(limit)+1))
	switch {
	case n > int64(limit):
		return NewError(http.StatusRequestEntityTooLarge, "Request body too large")
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return NewError(http.StatusRequestTimeout, "Request timeout")
		}
		return &Error{Code: http.StatusBadRequest, Message: "Invalid request body", Detail: err.Error()}
	}
	chunked := c.Request().Header.ContentLength() < 0
	c.Request().SetBody(buf.Bytes())
	if chunked {
		// The body is framed by its length from now on (for a proxy forwarding it, too).
		c.Request().Header.SetContentLength(buf.Len())
	}
	return nil
}

// ByteSize writes n bytes the way people read sizes: "16 GiB", "1.5 MiB", "512 B".
func ByteSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size {
			if n%u.size == 0 {
				return fmt.Sprintf("%d %s", n/u.size, u.name)
			}
			return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", float64(n)/float64(u.size)), "0"), ".") + " " + u.name
		}
	}
	return fmt.Sprintf("%d B", n)
}
