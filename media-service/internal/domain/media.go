package domain

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Action is what a user asks of a VM's CD-ROM drive.
type Action string

const (
	ActionAttach Action = "attach"
	ActionDetach Action = "detach"
)

// ParseAction accepts the two actions a drive takes.
func ParseAction(s string) (Action, error) {
	switch Action(s) {
	case ActionAttach, ActionDetach:
		return Action(s), nil
	}
	return "", Invalid(fmt.Sprintf("Invalid action: %s. Valid actions: attach, detach", s))
}

// ISO is one image of the library.
type ISO struct {
	Name     string
	Path     string
	Size     int64
	Modified time.Time
}

// Media is what a VM's CD-ROM drive holds; the domain XML is the truth for it.
type Media struct {
	VMUUID   uuid.UUID
	Path     string
	Attached bool
}

// VM is what media-service knows of a VM: enough to check ownership.
type VM struct {
	UUID    uuid.UUID
	OwnerID int64
	Status  string
}

// VisibleTo is vm-service's ownership rule: the owner or an admin.
func (vm VM) VisibleTo(userID int64, isAdmin bool) bool { return isAdmin || vm.OwnerID == userID }

// Change is one attach or eject, as the history keeps it.
type Change struct {
	VMUUID  uuid.UUID
	OwnerID int64
	// ActorID is the user who asked, or SystemActor.
	ActorID int64
	Action  Action
	// ISOPath is the image attached, or the one ejected ("" when the drive was already empty).
	ISOPath string
	At      time.Time
}

// SystemActor is the actor of a change a peer service asked for on its own account (vm-service
// ejecting an installer at the end of an installation); no user has this id.
const SystemActor int64 = 0

// IsISOName reports whether a file name is an ISO image by its extension, which is all the library
// lists and all a drive is given.
func IsISOName(name string) bool { return strings.EqualFold(path.Ext(name), ".iso") }

var isoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._ +-]{0,250}$`)

// ValidateISOName checks the name of an uploaded ISO: a plain file name (no directories, no leading
// dot) ending in .iso.
func ValidateISOName(name string) error {
	if !isoName.MatchString(name) || !IsISOName(name) {
		return Invalid("ISO name must be a file name of letters, digits, '.', '_', '+', '-' or spaces, ending in .iso")
	}
	return nil
}

// CheckRequestedPath refuses what can never name a library file, before any lookup: a relative path
// with directories, climbing segments, NUL bytes.
func CheckRequestedPath(p string) error {
	if strings.ContainsRune(p, 0) {
		return ErrOutsideLibrary
	}
	if !strings.Contains(p, "/") {
		return nil // a bare name, looked up in the library
	}
	if !strings.HasPrefix(p, "/") {
		return ErrOutsideLibrary
	}
	for _, segment := range strings.Split(p, "/") {
		if segment == ".." || segment == "." {
			return ErrOutsideLibrary
		}
	}
	return nil
}
