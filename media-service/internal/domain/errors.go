// Package domain holds media-service's rules: which ISO paths a VM may be given, what an attach or
// eject means, and the errors callers read. It knows nothing of HTTP, Postgres or libvirt.
package domain

import (
	"fmt"

	"limen/libs/failure"
)

// The errors callers read; docs/openapi.yaml lists them per route.
var (
	ErrVMNotFound       = failure.New(failure.NotFound, "VM not found")
	ErrISOPathRequired  = failure.New(failure.Invalid, "ISO path is required for attach")
	ErrOutsideLibrary   = failure.New(failure.Invalid, "ISO path must be inside the ISO library")
	ErrNoCDROM          = failure.New(failure.Conflict, "VM has no CD-ROM drive (it was not created by LIMEN); add a SATA CD-ROM drive to use media")
	ErrHypervisorDown   = failure.New(failure.Unavailable, "Hypervisor unavailable, try again shortly")
	ErrVMServiceDown    = failure.New(failure.Unavailable, "VM service unavailable, try again shortly")
	ErrUploadIncomplete = failure.New(failure.Invalid, "Upload ended before Content-Length bytes arrived")
)

// ISONotFound is an ISO path inside the library that names no file.
func ISONotFound(path string) error {
	return failure.New(failure.NotFound, "ISO file not found: "+path)
}

// ISOInUse refuses to delete an ISO some VM's drive holds.
func ISOInUse(name string, vms int) error {
	return failure.New(failure.Conflict, fmt.Sprintf("ISO %s is attached to %d VM(s); detach it first", name, vms))
}

// ISOExists refuses an upload over an existing ISO.
func ISOExists(name string) error {
	return failure.New(failure.Conflict, "ISO already exists: "+name)
}

// UploadTooLarge is an upload over the configured cap.
func UploadTooLarge(limit string) error {
	return failure.New(failure.TooLarge, "ISO upload exceeds the limit of "+limit)
}

// Invalid is any other bad input.
func Invalid(message string) error { return failure.New(failure.Invalid, message) }

// ErrMachineMissing is a VM that vm-service knows but whose domain the hypervisor has not.
var ErrMachineMissing = failure.New(failure.Conflict, "VM has no domain on the hypervisor")

// ErrMediaBusy is a drive change or ISO deletion that waited too long for another one in progress
// (of the same VM's drive, or of the same ISO) to finish.
var ErrMediaBusy = failure.New(failure.Unavailable, "Another media change is in progress, try again shortly")

// ChecksumMismatch is an upload whose bytes do not hash to the SHA-256 the client announced.
func ChecksumMismatch(announced, received string) error {
	return failure.New(failure.Invalid, "Upload checksum mismatch: announced SHA-256 "+announced+", received "+received)
}
