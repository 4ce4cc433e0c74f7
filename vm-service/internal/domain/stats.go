package domain

import (
	"time"

	"github.com/google/uuid"
)

// MachineSample is one reading of a running machine's counters, as the hypervisor reports them.
type MachineSample struct {
	At time.Time
	// Run tells one run of the machine from the next: it changes every time the machine starts.
	Run int64
	// CPUTime is the CPU time all its vCPUs and emulator threads used since the machine started.
	CPUTime   time.Duration
	VCPUs     int
	MemoryKiB uint64
	// UsedKiB is what the guest says it uses, or, for a guest that does not say, what the machine
	// takes on the host, at most MemoryKiB.
	UsedKiB             uint64
	DiskRead, DiskWrite uint64
	NetRx, NetTx        uint64
	// RunSince is when this run was first seen (the sampler's record, kept across restarts).
	RunSince time.Time
}

// Stats is a VM's load as the API shows it: zeros, with the VM's status, when its machine does not run.
type Stats struct {
	VMID          int64
	VMUUID        uuid.UUID
	Status        Status
	CPUPercent    float64
	MemoryUsedMiB int64
	MemoryMiB     int64
	MemoryPercent float64
	VCPUs         int
	DiskRead      uint64
	DiskWrite     uint64
	NetRx         uint64
	NetTx         uint64
	Uptime        time.Duration
	At            time.Time
}

// StatsOf is vm's load from its machine's latest sample cur and the one before, prev (nil when
// there is none yet): CPU use is the CPU time used between the two over the time between them, as a
// share of all the VM's vCPUs (100% is every vCPU busy), so it is never a per-request wait. A VM
// that is not running shows zeros, whatever was sampled before it stopped.
func StatsOf(vm *VM, prev, cur *MachineSample, now time.Time) Stats {
	s := Stats{VMID: vm.ID, VMUUID: vm.UUID, Status: vm.Status, At: now}
	if cur == nil || !ConsoleAvailable(vm.Status) {
		return s
	}
	s.At = cur.At
	s.VCPUs = cur.VCPUs
	s.MemoryMiB, s.MemoryUsedMiB = int64(cur.MemoryKiB/1024), int64(min(cur.UsedKiB, cur.MemoryKiB)/1024)
	if cur.MemoryKiB > 0 {
		s.MemoryPercent = round2(100 * float64(min(cur.UsedKiB, cur.MemoryKiB)) / float64(cur.MemoryKiB))
	}
	s.DiskRead, s.DiskWrite, s.NetRx, s.NetTx = cur.DiskRead, cur.DiskWrite, cur.NetRx, cur.NetTx
	if !cur.RunSince.IsZero() && cur.At.After(cur.RunSince) {
		s.Uptime = cur.At.Sub(cur.RunSince).Truncate(time.Second)
	}
	if prev != nil && prev.Run == cur.Run && cur.At.After(prev.At) && cur.CPUTime >= prev.CPUTime && cur.VCPUs > 0 {
		share := float64(cur.CPUTime-prev.CPUTime) / float64(cur.At.Sub(prev.At)) / float64(cur.VCPUs)
		s.CPUPercent = round2(100 * min(share, 1))
	}
	return s
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
