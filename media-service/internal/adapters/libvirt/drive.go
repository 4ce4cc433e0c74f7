package libvirt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"

	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/media-service/internal/domain"
)

// A guest can hold the tray shut for a moment (right after boot, mostly) and QEMU then refuses the
// change; it opens soon after, so the change is retried for a while instead of failing the request.
const (
	trayRetryFor   = 5 * time.Second
	trayRetryFirst = 25 * time.Millisecond
	trayRetryMax   = 500 * time.Millisecond
)

// Drive implements app.Drive.
type Drive struct {
	client libvirtconn.Client
}

// NewDrive needs no set-up: every LIMEN domain is created with its CD-ROM drive.
func NewDrive(client libvirtconn.Client) *Drive {
	return &Drive{client: client.ReportingAs(contract.ErrHypervisorUnavailable)}
}

func (d *Drive) Media(_ context.Context, vm uuid.UUID) (string, error) {
	l, dom, err := d.lookup(vm)
	if err != nil {
		return "", err
	}
	def, err := definition(l, dom, 0)
	if err != nil {
		return "", err
	}
	cd := cdromOf(def)
	if cd == nil {
		return "", domain.ErrNoCDROM
	}
	return mediaOf(cd), nil
}

func (d *Drive) Insert(ctx context.Context, vm uuid.UUID, path string) error {
	return d.load(ctx, vm, path)
}

func (d *Drive) Eject(ctx context.Context, vm uuid.UUID) error {
	return d.load(ctx, vm, "")
}

// Holding reads every LIMEN domain from one listing: a per-VM lookup would cost a call per VM that
// does not even hold the image.
func (d *Drive) Holding(_ context.Context, path string) ([]uuid.UUID, error) {
	l, err := d.client()
	if err != nil {
		return nil, err
	}
	doms, _, err := l.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, err
	}
	var vms []uuid.UUID
	for _, dom := range doms {
		if _, ours := contract.VMUUIDOfDomain(dom.Name); !ours {
			continue // not a LIMEN domain: never touched
		}
		held, err := holds(l, dom, path)
		if errors.Is(err, contract.ErrMachineNotFound) {
			continue // undefined since the listing
		}
		if err != nil {
			return nil, err
		}
		if held {
			vms = append(vms, uuid.UUID(dom.UUID))
		}
	}
	return vms, nil
}

// holds looks at the persistent definition too while the domain runs: a change made while it was
// stopped, or one only its next boot will see, still pins the image.
func holds(l *golibvirt.Libvirt, dom golibvirt.Domain, path string) (bool, error) {
	views := []golibvirt.DomainXMLFlags{0}
	if dom.ID != -1 {
		views = append(views, golibvirt.DomainXMLInactive)
	}
	for _, flags := range views {
		def, err := definition(l, dom, flags)
		if err != nil {
			return false, err
		}
		if def.Devices == nil {
			continue
		}
		for _, disk := range def.Devices.Disks {
			if disk.Device == "cdrom" && mediaOf(&disk) == path {
				return true, nil
			}
		}
	}
	return false, nil
}

func (d *Drive) lookup(vm uuid.UUID) (*golibvirt.Libvirt, golibvirt.Domain, error) {
	l, err := d.client()
	if err != nil {
		return nil, golibvirt.Domain{}, err
	}
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(vm))
	if err != nil {
		return nil, golibvirt.Domain{}, machineError(err)
	}
	return l, dom, nil
}

// load puts path ("": nothing) into the drive, waiting out a tray the guest keeps shut and a
// domain that starts or stops under the change.
func (d *Drive) load(ctx context.Context, vm uuid.UUID, path string) error {
	l, dom, err := d.lookup(vm)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(trayRetryFor)
	wait := trayRetryFirst
	for {
		active, err := change(l, dom, path)
		if err == nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		if libvirtconn.IsCode(err, golibvirt.ErrOperationInvalid) {
			if now, serr := isActive(l, dom); serr == nil && now != active {
				continue // the flags were right for a state the domain has left
			}
			return err
		}
		if !trayShut(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, trayRetryMax)
	}
}

// change updates the live and the persistent definition in one call while the domain runs (or is
// paused), so they never disagree; only the persistent one while it is stopped. It reports whether it
// took the domain for active.
func change(l *golibvirt.Libvirt, dom golibvirt.Domain, path string) (bool, error) {
	active, err := isActive(l, dom)
	if err != nil {
		return false, err
	}
	def, err := definition(l, dom, 0)
	if err != nil {
		return active, err
	}
	cd := cdromOf(def)
	if cd == nil {
		return active, domain.ErrNoCDROM
	}
	disk, err := cdromWith(cd.Target, path).Marshal()
	if err != nil {
		return active, err
	}
	flags := golibvirt.DomainDeviceModifyConfig
	if active {
		flags |= golibvirt.DomainDeviceModifyLive
	}
	if err := l.DomainUpdateDeviceFlags(dom, disk, flags); err != nil {
		return active, machineError(err)
	}
	return active, nil
}

func isActive(l *golibvirt.Libvirt, dom golibvirt.Domain) (bool, error) {
	active, err := l.DomainIsActive(dom)
	if err != nil {
		return false, machineError(err)
	}
	return active == 1, nil
}

// definition is the live definition of a running domain and the persistent one of a stopped domain
// (flags 0), or the persistent one always (DomainXMLInactive).
func definition(l *golibvirt.Libvirt, dom golibvirt.Domain, flags golibvirt.DomainXMLFlags) (*libvirtxml.Domain, error) {
	desc, err := l.DomainGetXMLDesc(dom, flags)
	if err != nil {
		return nil, machineError(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(desc); err != nil {
		return nil, fmt.Errorf("domain %s: %w", dom.Name, err)
	}
	return &def, nil
}

// trayShut is QEMU refusing a media change because the guest holds the tray closed or locked
// ("Tray of device ... is not open", "... is locked", "timed out waiting to open tray").
func trayShut(err error) bool {
	var lerr golibvirt.Error
	if !errors.As(err, &lerr) {
		return false
	}
	msg := strings.ToLower(lerr.Message)
	return strings.Contains(msg, "tray") || strings.Contains(msg, "is locked")
}

// machineError maps a domain that vanished to contract.ErrMachineNotFound.
func machineError(err error) error {
	if golibvirt.IsNotFound(err) {
		return contract.ErrMachineNotFound
	}
	return err
}
