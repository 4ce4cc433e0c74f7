package libvirt

import (
	"context"
	"errors"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"

	"limen/vm-service/internal/domain"
)

// bootDevices is order as the <os> element lists it.
func bootDevices(order domain.BootOrder) []libvirtxml.DomainBootDevice {
	devices := order.Devices()
	out := make([]libvirtxml.DomainBootDevice, len(devices))
	for i, dev := range devices {
		out[i] = libvirtxml.DomainBootDevice{Dev: dev}
	}
	return out
}

// definitionChanges is how often SetBootOrder starts over because the definition changed while it
// was being rewritten.
const definitionChanges = 5

// errDefinitionChanging is a definition that kept changing under SetBootOrder.
var errDefinitionChanging = errors.New("the domain's definition kept changing while its boot order was being set")

// SetBootOrder rewrites the <os> boot list of the persistent definition and defines it again, which
// leaves a running domain's live definition as it is. libvirt has no call for the boot order alone,
// so the whole definition is written back; media-service changes the CD-ROM in that definition too,
// so it is read a second time right before the write and the rewrite starts over if it changed since,
// rather than putting back a drive's old content.
func (h *Hypervisor) SetBootOrder(_ context.Context, id uuid.UUID, order domain.BootOrder) error {
	l, dom, err := h.lookup(id)
	if err != nil {
		return err
	}
	for range definitionChanges {
		current, err := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
		if err != nil {
			return err
		}
		var def libvirtxml.Domain
		if err := def.Unmarshal(current); err != nil {
			return err
		}
		if def.OS == nil {
			def.OS = &libvirtxml.DomainOS{}
		}
		def.OS.BootDevices = bootDevices(order)
		changed, err := def.Marshal()
		if err != nil {
			return err
		}
		again, err := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
		if err != nil {
			return err
		}
		if again != current {
			continue
		}
		_, err = l.DomainDefineXML(changed)
		return err
	}
	return errDefinitionChanging
}
