package app

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// DefaultStatsInterval is how often the machines' counters are read (LIMEN_STATS_INTERVAL).
const DefaultStatsInterval = 5 * time.Second

// StatsCache holds the two latest samples of every running machine, which the stats queries answer
// from without asking the hypervisor.
type StatsCache struct {
	mu        sync.RWMutex
	prev, cur map[uuid.UUID]domain.MachineSample
}

// latest is a machine's latest sample and the one before it (each nil when missing).
func (c *StatsCache) latest(id uuid.UUID) (prev, cur *domain.MachineSample) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if s, ok := c.prev[id]; ok {
		prev = &s
	}
	if s, ok := c.cur[id]; ok {
		cur = &s
	}
	return prev, cur
}

// statsOf is vm's load as of its latest samples.
func (c *StatsCache) statsOf(vm *domain.VM, now time.Time) domain.Stats {
	prev, cur := c.latest(vm.UUID)
	return domain.StatsOf(vm, prev, cur, now)
}

// SampleStats asks for one reading of every running machine.
type SampleStats struct{}

// SampleStatsHandler reads every machine's counters in one hypervisor call and keeps them with the
// reading before. When a machine starts a new run, the runs are recorded (MachineRuns), so that every
// process tells the same uptime, before and after a restart.
type SampleStatsHandler struct {
	Machines MachineStats
	Runs     MachineRuns
	Cache    *StatsCache
	Now      Clock
}

func (uc SampleStatsHandler) Handle(ctx context.Context, _ SampleStats) error {
	asked := uc.Now()
	samples, err := uc.Machines.Samples(ctx)
	if err != nil {
		return hypervisorError("read the machines' counters", err)
	}
	now := uc.Now()
	// libvirt reads the machines one after the other, QEMU by QEMU (0.6 s for 50 busy ones): the
	// middle of the call is the best single time for all of them.
	at := asked.Add(now.Sub(asked) / 2)
	uc.Cache.mu.RLock()
	known := uc.Cache.cur
	uc.Cache.mu.RUnlock()
	running := make(map[uuid.UUID]int64, len(samples))
	changed := len(samples) != len(known)
	for id, s := range samples {
		running[id] = s.Run
		if k, ok := known[id]; !ok || k.Run != s.Run || k.RunSince.IsZero() {
			changed = true
		}
	}
	var since map[uuid.UUID]time.Time
	if changed {
		// A failure leaves the new runs without a start (uptime 0) until a later round records them.
		since, err = uc.Runs.Seen(ctx, running, now)
	}
	for id, s := range samples {
		s.At = at
		if t, ok := since[id]; ok {
			s.RunSince = t
		} else if k, ok := known[id]; ok && k.Run == s.Run {
			s.RunSince = k.RunSince
		}
		samples[id] = s
	}
	uc.Cache.mu.Lock()
	uc.Cache.prev, uc.Cache.cur = known, samples
	uc.Cache.mu.Unlock()
	return err
}
