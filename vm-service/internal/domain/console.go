package domain

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/failure"
)

// ConsoleProtocol is what a console ticket opens: the VM's display (RFB) or its serial line.
type ConsoleProtocol string

const (
	ConsoleVNC    ConsoleProtocol = contract.ConsoleVNC
	ConsoleSerial ConsoleProtocol = contract.ConsoleSerial
)

// ParseConsoleProtocol reads ?type= of a console request; empty is the display.
func ParseConsoleProtocol(s string) (ConsoleProtocol, error) {
	switch ConsoleProtocol(s) {
	case "", ConsoleVNC:
		return ConsoleVNC, nil
	case ConsoleSerial:
		return ConsoleSerial, nil
	}
	return "", failure.InvalidField("type", fmt.Sprintf("Invalid console type: %s. Valid types: vnc, serial", s))
}

var (
	// ErrVMNotRunning is a console asked of a VM whose machine is not running (or paused).
	ErrVMNotRunning = failure.New(failure.Conflict, "VM is not running")
	// ErrConsoleTicket is a ticket that is unknown (forged), spent, expired, issued for another VM or
	// whose token has been revoked since: the console stays shut, whichever it was.
	ErrConsoleTicket = failure.New(failure.Unauthenticated, "Authentication required")
	// ErrNoSerialConsole is a machine defined without a serial line (by hand, or by another tool).
	ErrNoSerialConsole = failure.New(failure.Conflict, "VM has no serial console")
)

// ConsoleTicket lets its holder open one console of one VM once, before it expires. It carries the
// access token it was issued for (user, token version, login), so that the console closes when that
// token is revoked, as every other route refuses it then.
type ConsoleTicket struct {
	VMUUID   uuid.UUID
	Protocol ConsoleProtocol
	UserID   int64
	// Admin: the user held the admin role, which is what let them see another's VM.
	Admin        bool
	TokenVersion int64
	SessionID    string
	ExpiresAt    time.Time
}

// Admits reports whether the ticket opens vm's console at now; a VM its user may no longer see (it
// changed hands) refuses it too.
func (t ConsoleTicket) Admits(vm *VM, now time.Time) bool {
	return t.VMUUID == vm.UUID && now.Before(t.ExpiresAt) && vm.VisibleTo(t.UserID, t.Admin)
}

// ConsoleAvailable says whether a machine in status has a console to open: a paused one shows its
// frozen screen and keeps its serial line.
func ConsoleAvailable(status Status) bool { return status == StatusRunning || status == StatusPaused }
