package domain

import "limen/libs/failure"

// ErrVMNotFound is answered for unknown VMs and for other users' VMs alike, so existence never leaks.
var ErrVMNotFound = failure.New(failure.NotFound, "VM not found")

// ErrNameTaken is a second VM of one owner with the same name.
var ErrNameTaken = failure.New(failure.Conflict, "VM name already exists")

// ErrHypervisorDown is a hypervisor out of reach right now; the request may be retried.
var ErrHypervisorDown = failure.New(failure.Unavailable, "Hypervisor unavailable, try again shortly")

// ErrMediaServiceDown is media-service out of reach: the CD-ROM drive cannot be changed right now.
var ErrMediaServiceDown = failure.New(failure.Unavailable, "Media service unavailable, try again shortly")
