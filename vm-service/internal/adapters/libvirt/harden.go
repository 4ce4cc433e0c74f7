package libvirt

import (
	"context"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"

	"limen/libs/contract"
)

// Harden brings the definitions of this installation's VMs made by earlier versions up to today's:
// a display on TCP moves to a unix socket (or, with DisplayListen, to that address with a password),
// a VM without a serial line gets one (for its serial console) and, with the isolated network
// configured, a plain user-mode NIC (which reaches the host's loopback) becomes the restricted one.
// It changes the persistent definition only, so a running VM keeps its devices until its next start.
// It returns the VMs it changed.
func (h *Hypervisor) Harden(ctx context.Context) ([]uuid.UUID, error) {
	l, err := h.client()
	if err != nil {
		return nil, err
	}
	doms, _, err := l.ConnectListAllDomains(1, 0)
	if err != nil {
		return nil, err
	}
	var changed []uuid.UUID
	for _, dom := range doms {
		id := uuid.UUID(dom.UUID)
		if _, ours := contract.VMUUIDOfDomain(dom.Name); !ours {
			continue
		}
		if _, owned, err := h.OwnedSince(ctx, id); err != nil || !owned {
			continue // another installation's, or gone meanwhile
		}
		current, err := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
		if err != nil {
			return changed, err
		}
		var def libvirtxml.Domain
		if err := def.Unmarshal(current); err != nil {
			return changed, err
		}
		if !h.harden(&def, id) {
			continue
		}
		hardened, err := def.Marshal()
		if err != nil {
			return changed, err
		}
		if _, err := l.DomainDefineXML(hardened); err != nil {
			return changed, err
		}
		changed = append(changed, id)
	}
	return changed, nil
}

// harden changes def in place and reports whether anything changed.
func (h *Hypervisor) harden(def *libvirtxml.Domain, id uuid.UUID) bool {
	changed := false
	for i, g := range def.Devices.Graphics {
		if g.VNC != nil && !h.displayHardened(g.VNC) {
			def.Devices.Graphics[i].VNC = h.display()
			changed = true
		}
	}
	if len(def.Devices.Serials) == 0 && len(def.Devices.Consoles) == 0 {
		def.Devices.Serials, def.Devices.Consoles = serialConsole()
		changed = true
	}
	if h.cfg.Network != NetworkIsolated {
		return changed
	}
	kept := def.Devices.Interfaces[:0]
	for _, nic := range def.Devices.Interfaces {
		if nic.Source == nil || nic.Source.User == nil {
			kept = append(kept, nic)
		}
	}
	if len(kept) == len(def.Devices.Interfaces) {
		return changed
	}
	def.Devices.Interfaces = kept
	if def.QEMUCommandline == nil {
		def.QEMUCommandline = isolatedNIC(id)
	}
	return true
}
