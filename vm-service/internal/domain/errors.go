package domain

import "errors"

// Kind classifies a domain error; the HTTP port maps each kind to one status code.
type Kind int

const (
	KindInvalid Kind = iota + 1
	KindNotFound
	KindConflict
	KindQuotaExceeded
	KindUnavailable
)

// Error is a rule the request broke, with the message the caller sees.
type Error struct {
	Kind    Kind
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Invalid is a bad value of one field.
func Invalid(field, message string) error {
	return &Error{Kind: KindInvalid, Field: field, Message: message}
}

// Conflict is a request the VM's current state or another VM forbids.
func Conflict(message string) error { return &Error{Kind: KindConflict, Message: message} }

// ErrVMNotFound is answered for unknown VMs and for other users' VMs alike, so existence never leaks.
var ErrVMNotFound = &Error{Kind: KindNotFound, Message: "VM not found"}

// ErrNameTaken is a second VM of one owner with the same name.
var ErrNameTaken = &Error{Kind: KindConflict, Message: "VM name already exists"}

// KindOf is the kind of a domain error, or 0 for any other error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// Unavailable is a dependency that is down for now; the request may be retried.
func Unavailable(message string) error { return &Error{Kind: KindUnavailable, Message: message} }
