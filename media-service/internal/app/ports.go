// Package app holds media-service's use cases and the ports they need.
package app

import (
	"context"
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
	// Upload streams size bytes of body into a temporary file the library never lists, resolves or
	// deletes, checks that exactly size bytes arrived, calls check (when not nil; an error from it
	// fails the upload), and only then gives the file its name, atomically where the library's
	// directory allows it. On any failure (a short body included) no file is left under either name.
	// domain.ISOExists when the name is taken.
	Upload(ctx context.Context, name string, size int64, body io.Reader, check func() error) (domain.ISO, error)
	// Delete removes the named ISO; domain.ISONotFound when there is none.
	Delete(ctx context.Context, name string) error
}

// Drive is a VM's CD-ROM drive on the hypervisor. Changes apply live and persistently while the VM
// runs, persistently only while it is stopped. Its failures (and the Library's) wrap
// contract.ErrMachineNotFound for a VM without a domain and contract.ErrHypervisorUnavailable while
// the hypervisor is out of reach.
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

// Claim is a drive change or an ISO deletion in progress, as Claims handed it out.
type Claim struct {
	Token uuid.UUID
	// VM is the VM whose drive changes; uuid.Nil for a deletion.
	VM uuid.UUID
	// ISO is the name of the ISO attached or deleted; "" for an eject.
	ISO string
}

// Claims keep apart, on every replica, what must not overlap, without any database transaction or
// lock held while the hypervisor works: changes of one VM's drive (one at a time), and an attach of
// an ISO and that ISO's deletion. A claim is taken before the hypervisor call and ended after it
// (by History.Record or Release); one whose holder died expires on its own.
type Claims interface {
	// ClaimDrive waits until no other change of vm's drive and (iso not "") no deletion of iso is in
	// progress, and claims the drive for one change. domain.ErrMediaBusy when that takes too long.
	ClaimDrive(ctx context.Context, vm uuid.UUID, iso string) (Claim, error)
	// ClaimDeletion waits until no attach of iso and no other deletion of it is in progress, and
	// claims iso for its deletion: attaches of iso wait until the claim ends. domain.ISOInUse when
	// attaches of it are still in progress after the wait, domain.ErrMediaBusy for another deletion.
	ClaimDeletion(ctx context.Context, iso string) (Claim, error)
	// Release ends a claim under which nothing is recorded, even when ctx is already cancelled.
	Release(ctx context.Context, claim Claim) error
}

// History keeps every attach and eject with its event.
type History interface {
	// Record stores a change made under claim and its event, and ends the claim, in one short
	// transaction; the change happened on the hypervisor, so it is stored even when ctx is already
	// cancelled.
	Record(ctx context.Context, claim Claim, change domain.Change) error
}

// Clock is the time source, fixed in tests.
type Clock func() time.Time

// Caller is who asks.
type Caller struct {
	UserID int64
	Admin  bool
}

// System is a peer service calling the internal API: it may change every VM's drive, and the history
// names domain.SystemActor as the actor.
var System = Caller{UserID: domain.SystemActor, Admin: true}
