// Package app holds media-service's use cases and the ports they need.
package app

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/google/uuid"

	"limen/media-service/internal/domain"
)

// VMs is vm-service, asked through its internal API who owns a VM.
type VMs interface {
	// Lookup finds a VM by uuid or numeric id; domain.ErrVMNotFound when there is none.
	Lookup(ctx context.Context, ref string) (domain.VM, error)
}

// Library is the ISO library: a storage pool over LIMEN_ISO_DIR.
type Library interface {
	// List refreshes the pool and returns its ISO images, sorted by name. Files that are not ISOs,
	// and symlinks that lead out of the library, are not listed.
	List(ctx context.Context) ([]domain.ISO, error)
	// Resolve finds the ISO a request names, by its listed path or its bare name:
	// domain.ErrOutsideLibrary for anything that is not a listed ISO of the library's directory,
	// domain.ISONotFound for a path inside it (or a bare name) that names no file.
	Resolve(ctx context.Context, isoPath string) (domain.ISO, error)
	// Upload streams size bytes of body into a new volume called name; on any failure (a short body
	// included) no volume is left. domain.ISOExists when the name is taken.
	Upload(ctx context.Context, name string, size int64, body io.Reader) (domain.ISO, error)
	// Delete removes the named ISO; domain.ISONotFound when there is none.
	Delete(ctx context.Context, name string) error
}

// ErrMachineNotFound is a VM whose domain the hypervisor does not have.
var ErrMachineNotFound = errors.New("machine not found on the hypervisor")

// ErrHypervisorUnavailable is a hypervisor that cannot be reached right now.
var ErrHypervisorUnavailable = errors.New("hypervisor unavailable")

// Drive is a VM's CD-ROM drive on the hypervisor. Changes apply live and persistently while the VM
// runs, persistently only while it is stopped.
type Drive interface {
	// Media is the path in the drive, "" when empty; domain.ErrNoCDROM when the domain has no drive.
	Media(ctx context.Context, vm uuid.UUID) (string, error)
	// Insert puts the image at path into the drive, replacing what was there.
	Insert(ctx context.Context, vm uuid.UUID, path string) error
	// Eject empties the drive; the drive itself stays.
	Eject(ctx context.Context, vm uuid.UUID) error
	// Holding lists the VMs whose drive holds path (in their running or their persistent definition).
	Holding(ctx context.Context, path string) ([]uuid.UUID, error)
}

// History keeps every attach and eject with its event.
type History interface {
	// Change runs change while holding the VM's media lock (on every replica), then stores the change
	// it reports and its event in one transaction. An error from change stores nothing.
	Change(ctx context.Context, vm uuid.UUID, change func(ctx context.Context) (domain.Change, error)) error
}

// Clock is the time source, fixed in tests.
type Clock func() time.Time

// Caller is who asks.
type Caller struct {
	UserID int64
	Admin  bool
}
