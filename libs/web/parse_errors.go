package web

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// unreadableRequest answers a request fasthttp could not read (a malformed request line or header, a
// header over the read buffer, a body over the limit, a read timeout) with the contract's body. It runs
// before any middleware or handler. Fiber's own handler puts the parser's error text in the message,
// and fasthttp quotes the raw request in it, other headers and tokens included; so the answer names
// only the kind of failure, and the log line too.
func unreadableRequest(log *slog.Logger) func(*fasthttp.RequestCtx, error) {
	return func(fctx *fasthttp.RequestCtx, err error) {
		body := unreadableRequestError(err)
		if log != nil {
			log.Debug("unreadable request refused", "status", body.Code, "ip", fctx.RemoteIP().String())
		}
		encoded, encErr := gojson.Marshal(body)
		if encErr != nil {
			encoded = []byte(`{"code":400,"message":"Bad request"}`)
		}
		fctx.Response.ResetBody()
		fctx.SetStatusCode(body.Code)
		fctx.SetContentType(fiber.MIMEApplicationJSON)
		fctx.SetBody(encoded)
	}
}

// unreadableRequestError maps what fasthttp reports as Fiber does (431, 413, 408, 405, else 400),
// with messages of the contract's style and never the error's own text.
func unreadableRequestError(err error) *Error {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		return NewError(http.StatusRequestHeaderFieldsTooLarge, "Request header fields too large")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return NewError(http.StatusRequestEntityTooLarge, "Request body too large")
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return NewError(http.StatusRequestTimeout, "Request timeout")
	case errors.Is(err, fasthttp.ErrGetOnly):
		return NewError(http.StatusMethodNotAllowed, "Method not allowed")
	}
	return NewError(http.StatusBadRequest, "Bad request")
}
