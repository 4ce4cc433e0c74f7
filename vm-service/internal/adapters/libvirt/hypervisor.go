// Package libvirt implements vm-service's Hypervisor over go-libvirt: one qcow2 volume in a storage
// pool and one q35 domain with an empty SATA CD-ROM per VM, so media can change while it runs.
package libvirt

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"

	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// Config describes how VMs are made on this host.
type Config struct {
	// DomainType is "qemu" (software emulation) or "kvm".
	DomainType string
	// Pool is the storage pool for VM disks, a directory pool at PoolPath created when missing.
	Pool     string
	PoolPath string
	// Network is NetworkIsolated, NetworkUserOpen, NetworkNone or a libvirt network's name.
	Network string
	// Installation tags the domains this installation defines (see OwnedSince).
	Installation string
	// DisplayListen, when set, puts displays on TCP at this address of the libvirt host, with a
	// password, instead of on a unix socket (see display).
	DisplayListen string
}

// Hypervisor implements app.Hypervisor.
type Hypervisor struct {
	client libvirtconn.Client
	cfg    Config
}

// New checks that the storage pool exists and is running, creating it when missing.
func New(client libvirtconn.Client, cfg Config) (*Hypervisor, error) {
	h := &Hypervisor{client: client.ReportingAs(contract.ErrHypervisorUnavailable), cfg: cfg}
	return h, h.ensurePool()
}

// ensurePool hints at the settings to change when the pool is refused: the shared check cannot know them.
func (h *Hypervisor) ensurePool() error {
	l, err := h.client()
	if err != nil {
		return err
	}
	err = libvirtconn.EnsureDirPool(l, h.cfg.Pool, h.cfg.PoolPath)
	if errors.Is(err, libvirtconn.ErrPoolElsewhere) {
		return fmt.Errorf("%w: set LIMEN_STORAGE_POOL_PATH to its path or LIMEN_STORAGE_POOL to another name", err)
	}
	return err
}

func volumeName(id uuid.UUID) string { return id.String() + ".qcow2" }

// domainDefinition is the VM's domain: q35, virtio disk, empty SATA CD-ROM, VNC on a unix socket.
func (h *Hypervisor) domainDefinition(spec app.MachineSpec) (string, error) {
	instance, err := xml.Marshal(instanceXML{Installation: h.cfg.Installation, Created: time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		return "", err
	}
	d := libvirtxml.Domain{
		Type: h.cfg.DomainType, Name: contract.DomainName(spec.UUID.String()), UUID: spec.UUID.String(), Title: spec.Name,
		Metadata: &libvirtxml.DomainMetadata{XML: string(instance)},
		Memory:   &libvirtxml.DomainMemory{Unit: "MiB", Value: uint(spec.MemoryMiB)},
		VCPU:     &libvirtxml.DomainVCPU{Value: uint(spec.CPU)},
		OS: &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"},
			BootDevices: bootDevices(domain.DefaultBootOrder)},
		// ACPI is what a graceful shutdown needs.
		Features: &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		OnCrash:  "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Disks: []libvirtxml.DomainDisk{
				{Device: "disk", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "qcow2"},
					Source: &libvirtxml.DomainDiskSource{Volume: &libvirtxml.DomainDiskSourceVolume{Pool: h.cfg.Pool, Volume: volumeName(spec.UUID)}},
					Target: &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"}},
				// Empty, so media can be changed while the VM runs (media-service).
				{Device: "cdrom", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
					Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{}},
					Target:   &libvirtxml.DomainDiskTarget{Dev: contract.CDROMTarget, Bus: contract.CDROMBus},
					ReadOnly: &libvirtxml.DomainDiskReadOnly{}},
			},
			// On a unix socket in the domain's private directory that libvirt names, never on TCP
			// without a password: a guest (which reaches 127.0.0.1 through user networking unless
			// restricted) or another local user could otherwise watch and type into every VM's screen.
			Graphics: []libvirtxml.DomainGraphic{{VNC: h.display()}},
			Inputs:   []libvirtxml.DomainInput{{Type: "tablet", Bus: "usb"}},
			// A guest with a balloon driver reports the memory it uses every 5 s (the VM's stats).
			MemBalloon: &libvirtxml.DomainMemBalloon{Model: "virtio", Stats: &libvirtxml.DomainMemBalloonStats{Period: 5}},
		},
	}
	d.Devices.Serials, d.Devices.Consoles = serialConsole()
	switch h.cfg.Network {
	case NetworkNone, "":
	case NetworkIsolated:
		d.QEMUCommandline = isolatedNIC(spec.UUID)
	case NetworkUserOpen:
		d.Devices.Interfaces = []libvirtxml.DomainInterface{{Source: &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}},
			Model: &libvirtxml.DomainInterfaceModel{Type: "virtio"}}}
	default:
		d.Devices.Interfaces = []libvirtxml.DomainInterface{{Source: &libvirtxml.DomainInterfaceSource{Network: &libvirtxml.DomainInterfaceSourceNetwork{Network: h.cfg.Network}},
			Model: &libvirtxml.DomainInterfaceModel{Type: "virtio"}}}
	}
	return d.Marshal()
}

func (h *Hypervisor) Create(_ context.Context, spec app.MachineSpec) error {
	l, err := h.client()
	if err != nil {
		return err
	}
	pool, err := l.StoragePoolLookupByName(h.cfg.Pool)
	if err != nil {
		return err
	}
	vol, err := (&libvirtxml.StorageVolume{Name: volumeName(spec.UUID),
		Capacity: &libvirtxml.StorageVolumeSize{Unit: "GiB", Value: uint64(spec.DiskGB)},
		Target:   &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}}}).Marshal()
	if err != nil {
		return err
	}
	def, err := h.domainDefinition(spec)
	if err != nil {
		return err
	}
	// The domain first, the disk second: a crash between the two, or after both, leaves a domain this
	// installation owns and never recorded, which the resync removes with its disk (see
	// app.ResyncHandler). The other way round it would leave a disk that nothing leads to.
	dom, err := l.DomainDefineXML(def)
	if err != nil {
		return fmt.Errorf("define domain: %w", err)
	}
	if _, err := l.StorageVolCreateXML(pool, vol, 0); err != nil {
		return errors.Join(fmt.Errorf("create disk: %w", err), l.DomainUndefineFlags(dom, golibvirt.DomainUndefineNvram))
	}
	return nil
}

// lookup finds a LIMEN domain by its VM uuid.
func (h *Hypervisor) lookup(id uuid.UUID) (*golibvirt.Libvirt, golibvirt.Domain, error) {
	l, err := h.client()
	if err != nil {
		return nil, golibvirt.Domain{}, err
	}
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(id))
	if golibvirt.IsNotFound(err) {
		return nil, golibvirt.Domain{}, contract.ErrMachineNotFound
	}
	return l, dom, err
}

func (h *Hypervisor) Start(_ context.Context, id uuid.UUID) error {
	l, dom, err := h.lookup(id)
	if err != nil {
		return err
	}
	return stateError(l.DomainCreate(dom))
}

func (h *Hypervisor) Shutdown(ctx context.Context, id uuid.UUID, timeout time.Duration) (bool, error) {
	l, dom, err := h.lookup(id)
	if err != nil {
		return false, err
	}
	if err := l.DomainShutdown(dom); err != nil {
		return false, stateError(err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		state, _, err := l.DomainGetState(dom, 0)
		if err != nil {
			return false, err
		}
		if golibvirt.DomainState(state) == golibvirt.DomainShutoff {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-deadline.C:
			// The guest ignored ACPI (no OS, or it hung): pull the plug, as Proxmox and OpenStack do.
			return true, ignoreCode(l.DomainDestroy(dom), golibvirt.ErrOperationInvalid)
		case <-tick.C:
		}
	}
}

func (h *Hypervisor) ForceStop(_ context.Context, id uuid.UUID) error {
	l, dom, err := h.lookup(id)
	if err != nil {
		return err
	}
	return stateError(l.DomainDestroy(dom))
}

func (h *Hypervisor) Pause(_ context.Context, id uuid.UUID) error {
	l, dom, err := h.lookup(id)
	if err != nil {
		return err
	}
	return stateError(l.DomainSuspend(dom))
}

func (h *Hypervisor) Resume(_ context.Context, id uuid.UUID) error {
	l, dom, err := h.lookup(id)
	if err != nil {
		return err
	}
	return stateError(l.DomainResume(dom))
}

// Resize changes the persistent definition through the API, which keeps every other part of the
// domain (an attached ISO, for one) as it is. Raising needs the maximum first, lowering the current.
func (h *Hypervisor) Resize(_ context.Context, id uuid.UUID, cpu, memoryMiB int) error {
	l, dom, err := h.lookup(id)
	if err != nil {
		return err
	}
	config, maximum := uint32(golibvirt.DomainVCPUConfig), uint32(golibvirt.DomainVCPUMaximum)
	if err := l.DomainSetVcpusFlags(dom, uint32(cpu), config|maximum); err != nil {
		// Lowering: the maximum cannot drop below the current count, so lower that first.
		if err := l.DomainSetVcpusFlags(dom, uint32(cpu), config); err != nil {
			return err
		}
		if err := l.DomainSetVcpusFlags(dom, uint32(cpu), config|maximum); err != nil {
			return err
		}
	} else if err := l.DomainSetVcpusFlags(dom, uint32(cpu), config); err != nil {
		return err
	}
	kib := uint64(memoryMiB) * 1024
	memConfig, memMax := uint32(golibvirt.DomainMemConfig), uint32(golibvirt.DomainMemMaximum)
	if err := l.DomainSetMemoryFlags(dom, kib, memConfig|memMax); err != nil {
		return err
	}
	return l.DomainSetMemoryFlags(dom, kib, memConfig)
}

func (h *Hypervisor) Delete(_ context.Context, id uuid.UUID) error {
	l, dom, err := h.lookup(id)
	switch {
	case errors.Is(err, contract.ErrMachineNotFound):
	case err != nil:
		return err
	default:
		if err := ignoreCode(l.DomainDestroy(dom), golibvirt.ErrOperationInvalid); err != nil {
			return err
		}
		flags := golibvirt.DomainUndefineManagedSave | golibvirt.DomainUndefineSnapshotsMetadata | golibvirt.DomainUndefineNvram
		if err := l.DomainUndefineFlags(dom, flags); err != nil && !golibvirt.IsNotFound(err) {
			return err
		}
	}
	if l == nil {
		if l, err = h.client(); err != nil {
			return err
		}
	}
	pool, err := l.StoragePoolLookupByName(h.cfg.Pool)
	if err != nil {
		return err
	}
	vol, err := l.StorageVolLookupByName(pool, volumeName(id))
	if libvirtconn.IsCode(err, golibvirt.ErrNoStorageVol) {
		return nil
	}
	if err != nil {
		return err
	}
	return l.StorageVolDelete(vol, 0)
}

func (h *Hypervisor) State(_ context.Context, id uuid.UUID) (domain.Status, error) {
	l, dom, err := h.lookup(id)
	if err != nil {
		return "", err
	}
	state, _, err := l.DomainGetState(dom, 0)
	if golibvirt.IsNotFound(err) {
		return "", contract.ErrMachineNotFound
	}
	if err != nil {
		return "", err
	}
	return statusOf(golibvirt.DomainState(state)), nil
}

// OwnedSince reads the domain's LIMEN metadata: when this installation defined it; owned is false for
// a domain another installation, or somebody by hand, defined.
func (h *Hypervisor) OwnedSince(_ context.Context, id uuid.UUID) (time.Time, bool, error) {
	l, dom, err := h.lookup(id)
	if err != nil {
		return time.Time{}, false, err
	}
	meta, err := l.DomainGetMetadata(dom, int32(golibvirt.DomainMetadataElement), golibvirt.OptString{metadataNamespace}, 0)
	if libvirtconn.IsCode(err, golibvirt.ErrNoDomainMetadata) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	// libvirt hands the element back without its namespace.
	var instance struct {
		XMLName      xml.Name `xml:"instance"`
		Installation string   `xml:"installation,attr"`
		Created      string   `xml:"created,attr"`
	}
	if err := xml.Unmarshal([]byte(meta), &instance); err != nil || instance.Installation != h.cfg.Installation {
		return time.Time{}, false, nil
	}
	created, err := time.Parse(time.RFC3339, instance.Created)
	if err != nil {
		return time.Time{}, false, nil
	}
	return created, true, nil
}

// States reads the state of every domain in one ConnectGetAllDomainStats call.
func (h *Hypervisor) States(_ context.Context) (map[uuid.UUID]domain.Status, error) {
	l, err := h.client()
	if err != nil {
		return nil, err
	}
	records, err := l.ConnectGetAllDomainStats(nil, uint32(golibvirt.DomainStatsState), 0)
	if err != nil {
		return nil, err
	}
	states := make(map[uuid.UUID]domain.Status, len(records))
	for _, r := range records {
		if _, ours := contract.VMUUIDOfDomain(r.Dom.Name); !ours {
			continue
		}
		for _, p := range r.Params {
			if p.Field == "state.state" {
				if v, ok := p.Value.I.(int32); ok {
					states[uuid.UUID(r.Dom.UUID)] = statusOf(golibvirt.DomainState(v))
				}
			}
		}
	}
	return states, nil
}

// statusOf maps libvirt's states to the four the frontend knows.
func statusOf(s golibvirt.DomainState) domain.Status {
	switch s {
	case golibvirt.DomainRunning, golibvirt.DomainBlocked, golibvirt.DomainShutdown:
		return domain.StatusRunning
	case golibvirt.DomainPaused, golibvirt.DomainPmsuspended:
		return domain.StatusPaused
	case golibvirt.DomainShutoff:
		return domain.StatusStopped
	}
	return domain.StatusError
}

// ignoreCode treats one expected libvirt error (destroying a domain that is already off) as success.
func ignoreCode(err error, code golibvirt.ErrorNumber) error {
	if libvirtconn.IsCode(err, code) {
		return nil
	}
	return err
}

// stateError marks libvirt's refusal of an operation in the domain's current state (starting a
// running domain, destroying a stopped one) as app.ErrMachineState, keeping libvirt's message.
func stateError(err error) error {
	if libvirtconn.IsCode(err, golibvirt.ErrOperationInvalid) {
		return fmt.Errorf("%w: %w", app.ErrMachineState, err)
	}
	return err
}
