// Package failure is the one vocabulary of errors every LIMEN service's domain speaks: a Kind says what
// went wrong in terms a caller can act on, the message is what the caller reads. Each service builds
// its domain errors from it; libs/web maps each kind to one HTTP status, in one place.
//
// It imports only the standard library, so the innermost layers may use it.
package failure

import (
	"errors"
	"time"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

const (
	// Unknown is not a failure of this vocabulary: an internal error, hidden from callers.
	Unknown Kind = iota
	// Invalid is bad input: the same request will fail again.
	Invalid
	// Unauthenticated is a caller who must (again) prove who they are.
	Unauthenticated
	// Forbidden is a caller known but not allowed.
	Forbidden
	// NotFound is a resource that does not exist, or that the caller may not know of.
	NotFound
	// Conflict is a request the resource's current state forbids.
	Conflict
	// Busy is a resource with another operation in progress; retry once it has ended.
	Busy
	// Quota is a request that would take the caller past a limit.
	Quota
	// TooLarge is a request body over a limit.
	TooLarge
	// TooManyRequests is a caller throttled for a while (see Error.RetryAfter).
	TooManyRequests
	// Unavailable is a dependency out of reach right now; retry shortly.
	Unavailable
)

// Error is a failure with the message the caller reads.
type Error struct {
	Kind    Kind
	Message string
	// Field names the input at fault, when there is one.
	Field string
	// RetryAfter says when the caller may try again, when it is known.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// New is a failure of kind with message.
func New(kind Kind, message string) *Error { return &Error{Kind: kind, Message: message} }

// InvalidField is bad input in one field.
func InvalidField(field, message string) *Error {
	return &Error{Kind: Invalid, Field: field, Message: message}
}

// Retry is a failure of kind that the caller may retry after a while.
func Retry(kind Kind, message string, after time.Duration) *Error {
	return &Error{Kind: kind, Message: message, RetryAfter: after}
}

// As is err's failure, if err is or wraps one.
func As(err error) (*Error, bool) {
	var f *Error
	ok := errors.As(err, &f)
	return f, ok
}

// KindOf is the kind of err's failure, or Unknown.
func KindOf(err error) Kind {
	if f, ok := As(err); ok {
		return f.Kind
	}
	return Unknown
}
