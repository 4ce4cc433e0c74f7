// Package domain holds media-service's rules: which ISO paths a VM may be given, what an attach or
// eject means, and the errors the media guide names. It knows nothing of HTTP, Postgres or libvirt.
package domain

import (
	"errors"
	"fmt"
)

// Kind classifies a domain error; the HTTP port maps each kind to one status code.
type Kind int

const (
	KindInvalid Kind = iota + 1
	KindNotFound
	KindConflict
	KindTooLarge
	KindUnavailable
)

// Error is a rule the request broke, with the message the caller sees.
type Error struct {
	Kind    Kind
	Message string
}

func (e *Error) Error() string { return e.Message }

// KindOf is the kind of a domain error, or 0 for any other error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// The guide's messages, byte for byte, and CONTRACT's two departures from it.
var (
	ErrVMNotFound       = &Error{Kind: KindNotFound, Message: "VM not found"}
	ErrISOPathRequired  = &Error{Kind: KindInvalid, Message: "ISO path is required for attach"}
	ErrOutsideLibrary   = &Error{Kind: KindInvalid, Message: "ISO path must be inside the ISO library"}
	ErrNoCDROM          = &Error{Kind: KindConflict, Message: "VM has no CD-ROM drive (it was not created by LIMEN); add a SATA CD-ROM drive to use media"}
	ErrHypervisorDown   = &Error{Kind: KindUnavailable, Message: "Hypervisor unavailable, try again shortly"}
	ErrVMServiceDown    = &Error{Kind: KindUnavailable, Message: "VM service unavailable, try again shortly"}
	ErrUploadNeedsSize  = &Error{Kind: KindInvalid, Message: "Upload needs a Content-Length"}
	ErrUploadIncomplete = &Error{Kind: KindInvalid, Message: "Upload ended before Content-Length bytes arrived"}
)

// ISONotFound is an ISO path inside the library that names no file.
func ISONotFound(path string) error {
	return &Error{Kind: KindNotFound, Message: "ISO file not found: " + path}
}

// ISOInUse refuses to delete an ISO some VM's drive holds.
func ISOInUse(name string, vms int) error {
	return &Error{Kind: KindConflict, Message: fmt.Sprintf("ISO %s is attached to %d VM(s); detach it first", name, vms)}
}

// ISOExists refuses an upload over an existing ISO.
func ISOExists(name string) error {
	return &Error{Kind: KindConflict, Message: "ISO already exists: " + name}
}

// UploadTooLarge is an upload over the configured cap.
func UploadTooLarge(limit string) error {
	return &Error{Kind: KindTooLarge, Message: "ISO upload exceeds the limit of " + limit}
}

// Invalid is any other bad input.
func Invalid(message string) error { return &Error{Kind: KindInvalid, Message: message} }

// ErrMachineMissing is a VM that vm-service knows but whose domain the hypervisor has not.
var ErrMachineMissing = &Error{Kind: KindConflict, Message: "VM has no domain on the hypervisor"}

// ErrMediaBusy is a drive change or ISO deletion that waited too long for another one in progress
// (of the same VM's drive, or of the same ISO) to finish.
var ErrMediaBusy = &Error{Kind: KindUnavailable, Message: "Another media change is in progress, try again shortly"}

// ChecksumMismatch is an upload whose bytes do not hash to the SHA-256 the client announced.
func ChecksumMismatch(announced, received string) error {
	return &Error{Kind: KindInvalid, Message: "Upload checksum mismatch: announced SHA-256 " + announced + ", received " + received}
}
