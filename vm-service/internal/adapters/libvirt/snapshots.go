package libvirt

import (
	"context"
	"errors"
	"slices"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"

	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// Snapshots are libvirt's internal snapshots: kept inside the VM's qcow2 volume (disk clusters
// shared copy-on-write, the memory of a running or paused machine beside them), with libvirt's record
// of the definition. libvirt of this generation reverts only internal snapshots (external ones it can
// take but not revert), and a running machine's internal snapshot includes its memory, so a restore
// brings the guest back at that instant; a VM's deletion, which removes its volume and libvirt's
// records, takes its snapshots along.

// TakeSnapshot lets libvirt choose what to save: for a qcow2 disk an internal snapshot, with the
// memory when the machine runs or is paused (QEMU pauses it while it writes), of the disk alone when
// it is shut off.
func (h *Hypervisor) TakeSnapshot(_ context.Context, id uuid.UUID, name string) (domain.Status, error) {
	l, dom, err := h.lookup(id)
	if err != nil {
		return "", err
	}
	def, err := (&libvirtxml.DomainSnapshot{Name: name}).Marshal()
	if err != nil {
		return "", err
	}
	snap, err := l.DomainSnapshotCreateXML(dom, def, 0)
	if err != nil {
		return "", err
	}
	taken, err := l.DomainSnapshotGetXMLDesc(snap, 0)
	if err != nil {
		return "", err
	}
	var saved libvirtxml.DomainSnapshot
	if err := saved.Unmarshal(taken); err != nil {
		return "", err
	}
	return snapshotStatus(saved.State), nil
}

// snapshotStatus maps the state a snapshot records to the status a restore brings back.
func snapshotStatus(state string) domain.Status {
	switch state {
	case "running", "blocked", "shutdown":
		return domain.StatusRunning
	case "paused", "pmsuspended":
		return domain.StatusPaused
	case "shutoff", "crashed":
		return domain.StatusStopped
	}
	return domain.StatusError
}

// lookupSnapshot finds snapshot name of machine id; app.ErrSnapshotMissing when there is none.
func (h *Hypervisor) lookupSnapshot(id uuid.UUID, name string) (*golibvirt.Libvirt, golibvirt.Domain, golibvirt.DomainSnapshot, error) {
	l, dom, err := h.lookup(id)
	if err != nil {
		return nil, dom, golibvirt.DomainSnapshot{}, err
	}
	snap, err := l.DomainSnapshotLookupByName(dom, name, 0)
	if libvirtconn.IsCode(err, golibvirt.ErrNoDomainSnapshot) {
		return nil, dom, snap, app.ErrSnapshotMissing
	}
	return l, dom, snap, err
}

// RestoreSnapshot reverts to the snapshot in its recorded state: a running one's machine runs again
// from that instant (libvirt starts QEMU afresh and loads the memory), a paused one's is paused, a
// shut-off one's is shut off (a running machine is stopped first). The persistent definition becomes
// the snapshot's.
func (h *Hypervisor) RestoreSnapshot(_ context.Context, id uuid.UUID, name string) (app.Restored, error) {
	l, dom, snap, err := h.lookupSnapshot(id, name)
	if err != nil {
		return app.Restored{}, err
	}
	err = l.DomainRevertToSnapshot(snap, 0)
	if libvirtconn.IsCode(err, golibvirt.ErrSnapshotRevertRisky) {
		// libvirt will not load the snapshot into the running QEMU when its definition does not fit
		// that machine; a restore means the snapshot's machine, so it starts a fresh one.
		err = l.DomainRevertToSnapshot(snap, uint32(golibvirt.DomainSnapshotRevertForce))
	}
	if err != nil {
		return app.Restored{}, err
	}
	state, _, err := l.DomainGetState(dom, 0)
	if err != nil {
		return app.Restored{}, err
	}
	persistent, err := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
	if err != nil {
		return app.Restored{}, err
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(persistent); err != nil {
		return app.Restored{}, err
	}
	restored := app.Restored{Status: statusOf(golibvirt.DomainState(state)), MemoryMiB: memoryMiB(def.Memory)}
	if def.VCPU != nil {
		restored.CPU = int(def.VCPU.Value)
	}
	if def.OS != nil {
		restored.BootOrder = bootOrderOf(def.OS.BootDevices)
	}
	return restored, nil
}

// memoryMiB reads a definition's memory (libvirt writes KiB) in MiB.
func memoryMiB(m *libvirtxml.DomainMemory) int {
	if m == nil {
		return 0
	}
	perUnit := map[string]uint{"b": 1, "bytes": 1, "KB": 1000, "k": 1024, "KiB": 1024, "": 1024,
		"MB": 1000 * 1000, "M": 1 << 20, "MiB": 1 << 20, "GB": 1000 * 1000 * 1000, "G": 1 << 30, "GiB": 1 << 30}
	return int(uint64(m.Value) * uint64(perUnit[m.Unit]) >> 20)
}

// bootOrderOf is the boot order a definition's <os> list names; empty when it is none of LIMEN's.
func bootOrderOf(devices []libvirtxml.DomainBootDevice) domain.BootOrder {
	names := make([]string, len(devices))
	for i, d := range devices {
		names[i] = d.Dev
	}
	for _, order := range domain.BootOrders {
		if slices.Equal(order.Devices(), names) {
			return order
		}
	}
	return ""
}

// DeleteSnapshot removes the snapshot's record and data; the machine's state is left as it is. A
// machine gone took its snapshots along.
func (h *Hypervisor) DeleteSnapshot(_ context.Context, id uuid.UUID, name string) error {
	l, dom, snap, err := h.lookupSnapshot(id, name)
	if errors.Is(err, app.ErrSnapshotMissing) || errors.Is(err, contract.ErrMachineNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	err = l.DomainSnapshotDelete(snap, 0)
	if libvirtconn.IsCode(err, golibvirt.ErrOperationUnsupported) {
		return deleteWithTodaysMedia(l, dom, snap, err)
	}
	return err
}

// deleteWithTodaysMedia deletes a running machine's internal snapshot that libvirt refused to delete
// (refused). libvirt 9 refuses it when any disk's source differs from the snapshot's, the CD-ROM
// included though no snapshot ever saves its content: an ISO attached or ejected since would keep the
// snapshot for as long as the machine runs. The snapshot's record is redefined with the media the
// machine has now, then deleted; a deletion that still fails puts the record back as it was.
func deleteWithTodaysMedia(l *golibvirt.Libvirt, dom golibvirt.Domain, snap golibvirt.DomainSnapshot, refused error) error {
	original, err := l.DomainSnapshotGetXMLDesc(snap, uint32(golibvirt.DomainSnapshotXMLSecure))
	if err != nil {
		return errors.Join(refused, err)
	}
	live, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		return errors.Join(refused, err)
	}
	aligned, changed, err := withMediaOf(original, live)
	if err != nil || !changed {
		return errors.Join(refused, err)
	}
	redefine := uint32(golibvirt.DomainSnapshotCreateRedefine)
	if _, err := l.DomainSnapshotCreateXML(dom, aligned, redefine); err != nil {
		return errors.Join(refused, err)
	}
	if err := l.DomainSnapshotDelete(snap, 0); err != nil {
		_, putBack := l.DomainSnapshotCreateXML(dom, original, redefine)
		return errors.Join(err, putBack)
	}
	return nil
}

// withMediaOf is snapshot (its XML) with the CD-ROM sources of the live definition; changed reports
// whether any differed.
func withMediaOf(snapshot, live string) (string, bool, error) {
	var snap libvirtxml.DomainSnapshot
	if err := snap.Unmarshal(snapshot); err != nil {
		return "", false, err
	}
	var now libvirtxml.Domain
	if err := now.Unmarshal(live); err != nil {
		return "", false, err
	}
	if snap.Domain == nil || snap.Domain.Devices == nil || now.Devices == nil {
		return "", false, nil
	}
	sources := map[string]*libvirtxml.DomainDiskSource{}
	for _, d := range now.Devices.Disks {
		if d.Device == "cdrom" && d.Target != nil {
			sources[d.Target.Dev] = d.Source
		}
	}
	changed := false
	for i := range snap.Domain.Devices.Disks {
		d := &snap.Domain.Devices.Disks[i]
		if d.Device != "cdrom" || d.Target == nil {
			continue
		}
		if was, is := mediaOf(d.Source), mediaOf(sources[d.Target.Dev]); was != is {
			d.Source, changed = sources[d.Target.Dev], true
		}
	}
	if !changed {
		return "", false, nil
	}
	out, err := snap.Marshal()
	return out, true, err
}

// mediaOf names what a drive holds, empty when nothing.
func mediaOf(s *libvirtxml.DomainDiskSource) string {
	switch {
	case s == nil:
		return ""
	case s.File != nil:
		return s.File.File
	case s.Volume != nil:
		return s.Volume.Pool + "/" + s.Volume.Volume
	case s.Block != nil:
		return s.Block.Dev
	}
	return ""
}

// SnapshotNames lists every snapshot libvirt has of the machine.
func (h *Hypervisor) SnapshotNames(_ context.Context, id uuid.UUID) (map[string]bool, error) {
	l, dom, err := h.lookup(id)
	if err != nil {
		return nil, err
	}
	snaps, _, err := l.DomainListAllSnapshots(dom, 1, 0)
	if golibvirt.IsNotFound(err) {
		return nil, contract.ErrMachineNotFound
	}
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(snaps))
	for _, s := range snaps {
		names[s.Name] = true
	}
	return names, nil
}
