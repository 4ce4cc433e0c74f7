package libvirt

import (
	"context"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/vm-service/internal/domain"
)

// statsGroups are the counters a VM's stats show.
const statsGroups = golibvirt.DomainStatsState | golibvirt.DomainStatsCPUTotal | golibvirt.DomainStatsBalloon |
	golibvirt.DomainStatsVCPU | golibvirt.DomainStatsInterface | golibvirt.DomainStatsBlock

// Samples implements app.MachineStats: one ConnectGetAllDomainStats call for every running LIMEN
// machine. A NIC that libvirt does not manage (the isolated network's, passed to QEMU directly) and
// QEMU's user-mode NICs have no counters in libvirt, so their traffic counts as 0.
func (h *Hypervisor) Samples(context.Context) (map[uuid.UUID]domain.MachineSample, error) {
	l, err := h.client()
	if err != nil {
		return nil, err
	}
	records, err := l.ConnectGetAllDomainStats(nil, uint32(statsGroups), uint32(golibvirt.ConnectGetAllDomainsStatsActive))
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]domain.MachineSample, len(records))
	for _, r := range records {
		if _, ours := contract.VMUUIDOfDomain(r.Dom.Name); !ours {
			continue
		}
		out[uuid.UUID(r.Dom.UUID)] = sampleOf(r)
	}
	return out, nil
}

// sampleOf reads one domain's record. Memory in use is what the guest reports through its balloon
// driver (available minus unused), else what the machine takes on the host (its resident size).
func sampleOf(r golibvirt.DomainStatsRecord) domain.MachineSample {
	s := domain.MachineSample{Run: int64(r.Dom.ID)}
	var available, unused, rss uint64
	var guestReports bool
	for _, p := range r.Params {
		v, ok := counter(p.Value.I)
		if !ok {
			continue
		}
		switch f := p.Field; {
		case f == "cpu.time":
			s.CPUTime = time.Duration(v)
		case f == "vcpu.current":
			s.VCPUs = int(v)
		case f == "balloon.current":
			s.MemoryKiB = v
		case f == "balloon.available":
			available, guestReports = v, true
		case f == "balloon.unused":
			unused = v
		case f == "balloon.rss":
			rss = v
		case strings.HasPrefix(f, "block.") && strings.HasSuffix(f, ".rd.bytes"):
			s.DiskRead += v
		case strings.HasPrefix(f, "block.") && strings.HasSuffix(f, ".wr.bytes"):
			s.DiskWrite += v
		case strings.HasPrefix(f, "net.") && strings.HasSuffix(f, ".rx.bytes"):
			s.NetRx += v
		case strings.HasPrefix(f, "net.") && strings.HasSuffix(f, ".tx.bytes"):
			s.NetTx += v
		}
	}
	s.UsedKiB = rss
	if guestReports && available >= unused {
		s.UsedKiB = available - unused
	}
	return s
}

// counter reads a typed parameter's number.
func counter(v any) (uint64, bool) {
	switch n := v.(type) {
	case uint64:
		return n, true
	case int64:
		return uint64(max(n, 0)), true
	case uint32:
		return uint64(n), true
	case int32:
		return uint64(max(n, 0)), true
	}
	return 0, false
}
