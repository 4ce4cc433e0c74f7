package web

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// MessageUnavailable is the message of the 503 ErrorHandler answers for Unavailable errors.
const MessageUnavailable = "Service temporarily unavailable, try again shortly"

// RetryAfterUnavailable is the Retry-After (seconds) of every 503 ErrorHandler renders without one.
const RetryAfterUnavailable = "1"

// Unavailable reports whether err means that something the request needed (the database above all)
// could not be reached or did not answer in time, rather than a bug: the request may succeed when
// retried shortly, so ErrorHandler answers 503 with Retry-After instead of 500. That is, somewhere in
// err's chain:
//
//   - context.DeadlineExceeded: a call ran out of time (pgdb.Deadline, a request's deadline, a pool
//     acquire that waited too long);
//   - a net.Error or a connection errno (refused, reset, broken pipe, timed out, unreachable): what a
//     dial or a read fails with, pgx's *pgconn.ConnectError included while Postgres is down;
//   - io.ErrUnexpectedEOF: a connection that broke mid-answer (pgx's pooled connection to a server
//     that went away);
//   - a Postgres SQLSTATE (any error with SQLState(), as pgx's *pgconn.PgError) of class 08
//     (connection exception), 57P01-57P03 (the server shutting down, crashed, or starting up: a fast
//     shutdown ends every session with 57P01), 53300 (too many connections), 57014 (statement timeout)
//     or 55P03 (lock timeout);
//   - pgx's "conn closed" and "closed pool" (pgconn.ErrConnClosed, puddle.ErrClosedPool).
//
// Every other error (a constraint violation, a syntax error, a nil pointer) stays a 500. libs/web does
// not import the driver, so every service gets this without depending on pgx; the SQLSTATE and the
// two sentinels are matched by their method and texts.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) && unavailableState(coded.SQLState()) {
		return true
	}
	return anyInChain(err, func(e error) bool { msg := e.Error(); return msg == "conn closed" || msg == "closed pool" })
}

// unavailableState says whether a SQLSTATE means the database cannot serve now (see Unavailable).
func unavailableState(code string) bool {
	switch code {
	case "57P01", "57P02", "57P03", "53300", "57014", "55P03":
		return true
	}
	return strings.HasPrefix(code, "08")
}

// anyInChain reports whether match holds for err or any error it wraps (errors.Join trees included).
func anyInChain(err error, match func(error) bool) bool {
	if err == nil {
		return false
	}
	if match(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return anyInChain(u.Unwrap(), match)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if anyInChain(e, match) {
				return true
			}
		}
	}
	return false
}
