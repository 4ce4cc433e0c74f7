// Package web holds what every LIMEN HTTP service shares: the contract's error body and the Fiber error
// handler that renders it, request ids, access logs, JSON decoding with validation, health endpoints,
// and the Fiber app with graceful shutdown.
package web

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"limen/libs/failure"
)

// Error is the contract's error body: {"code": <status>, "message": "...", "error": "<detail>"}.
// Handlers return it; ErrorHandler renders it.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Detail  string `json:"error,omitempty"`
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%d %s: %s", e.Code, e.Message, e.Detail)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Message)
}

// NewError is an Error with no detail.
func NewError(code int, message string) *Error { return &Error{Code: code, Message: message} }

// Unauthorized is the contract's body for a missing or bad token.
func Unauthorized() *Error { return NewError(http.StatusUnauthorized, "Authentication required") }

// statusOf is the HTTP status of each failure kind. A kind missing here (one added to the vocabulary and
// forgotten) answers 500 with the generic message, never its own text.
var statusOf = map[failure.Kind]int{
	failure.Invalid:         http.StatusBadRequest,
	failure.Unauthenticated: http.StatusUnauthorized,
	failure.Forbidden:       http.StatusForbidden,
	failure.NotFound:        http.StatusNotFound,
	failure.Conflict:        http.StatusConflict,
	failure.Busy:            http.StatusConflict,
	failure.Quota:           http.StatusForbidden,
	failure.TooLarge:        http.StatusRequestEntityTooLarge,
	failure.TooManyRequests: http.StatusTooManyRequests,
	failure.Unavailable:     http.StatusServiceUnavailable,
}

// messageInternal is all a client learns of an error that is not its own.
const messageInternal = "Internal server error"

// toHTTP is the one place where a failure becomes an HTTP answer: its kind's status and its message,
// with Retry-After when the failure says when to retry. ok is false for errors of no known kind.
func toHTTP(c *fiber.Ctx, err error) (body *Error, ok bool) {
	f, isFailure := failure.As(err)
	if !isFailure {
		return nil, false
	}
	status, known := statusOf[f.Kind]
	if !known {
		return nil, false
	}
	if f.RetryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	return NewError(status, f.Message), true
}

// ErrorHandler renders any error a handler returns as the contract's body: a failure (libs/failure) by
// its kind (toHTTP), an *Error or *fiber.Error as it says. An error meaning that a
// dependency (the database) is out of reach or too slow right now (Unavailable) is a 503
// MessageUnavailable; other errors that are not *Error or *fiber.Error are logged and hidden behind a
// 500, so internals never reach a client. Every 503 carries Retry-After (1 s unless the handler set
// one).
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		body, ok := toHTTP(c, err)
		var fe *fiber.Error
		switch {
		case ok:
		case errors.As(err, &body):
		case errors.As(err, &fe):
			body = fromFiber(fe)
		case Unavailable(err):
			log.WarnContext(c.UserContext(), "request failed: a dependency is unavailable", "method", c.Method(), "path", c.Path(), "err", err)
			body = NewError(http.StatusServiceUnavailable, MessageUnavailable)
		default:
			log.ErrorContext(c.UserContext(), "request failed", "method", c.Method(), "path", c.Path(), "err", err)
			body = NewError(http.StatusInternalServerError, messageInternal)
		}
		if body.Code == http.StatusServiceUnavailable && len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
			c.Set(fiber.HeaderRetryAfter, RetryAfterUnavailable)
		}
		return c.Status(body.Code).JSON(body)
	}
}

// fromFiber gives Fiber's own errors (unknown route, body too large, ...) readable messages.
func fromFiber(fe *fiber.Error) *Error {
	switch fe.Code {
	case http.StatusNotFound:
		return NewError(fe.Code, "Not found")
	case http.StatusMethodNotAllowed:
		return NewError(fe.Code, "Method not allowed")
	case http.StatusRequestEntityTooLarge:
		return NewError(fe.Code, "Request body too large")
	case http.StatusRequestTimeout:
		return NewError(fe.Code, "Request timeout")
	}
	msg := fe.Message
	if msg == "" {
		msg = http.StatusText(fe.Code)
	}
	return NewError(fe.Code, msg)
}
