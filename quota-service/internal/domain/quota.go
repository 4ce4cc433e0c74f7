// Package domain holds quota-service's rules: what a user may hold, when a growth fits, what a
// reservation is and how it ends, and the errors callers read. It knows nothing of HTTP, Postgres or
// Kafka.
package domain

import (
	"fmt"

	"limen/libs/failure"
)

// Resources is an amount of each resource a quota counts: VMs, vCPUs and memory (MiB). It is a
// user's limits, their usage, or a change of usage (then its parts may be negative).
type Resources struct {
	VMs       int
	CPU       int
	MemoryMiB int
}

// Plus is r and o added part by part.
func (r Resources) Plus(o Resources) Resources {
	return Resources{VMs: r.VMs + o.VMs, CPU: r.CPU + o.CPU, MemoryMiB: r.MemoryMiB + o.MemoryMiB}
}

// Minus is o taken from r part by part.
func (r Resources) Minus(o Resources) Resources {
	return Resources{VMs: r.VMs - o.VMs, CPU: r.CPU - o.CPU, MemoryMiB: r.MemoryMiB - o.MemoryMiB}
}

// Growth is the part of a change that grows usage: each negative part is zero. Only growth is checked
// against limits and held by a reservation.
func (r Resources) Growth() Resources {
	return Resources{VMs: max(r.VMs, 0), CPU: max(r.CPU, 0), MemoryMiB: max(r.MemoryMiB, 0)}
}

// Quota is one user's limits and what they hold: their VMs (stopped ones included) and the growth
// of the reservations still pending.
type Quota struct {
	ID     int64
	UserID int64
	Limits Resources
	Usage  Resources
}

// Admit checks a growth of usage against the limits. Only growth is refused: limits lowered below
// what a user already holds block further growth, never what exists, and shrinking is always allowed.
// The Postgres adapter's reservation statement applies the same rule in SQL, atomically; Admit is
// what explains its refusals.
func (l Resources) Admit(used, add Resources) error {
	for _, r := range []struct {
		name             string
		used, add, limit int
	}{
		{"vms", used.VMs, add.VMs, l.VMs},
		{"cpu", used.CPU, add.CPU, l.CPU},
		{"memory", used.MemoryMiB, add.MemoryMiB, l.MemoryMiB},
	} {
		if r.add > 0 && r.used+r.add > r.limit {
			return failure.New(failure.Quota, fmt.Sprintf("Quota exceeded: %s %d/%d", r.name, r.used+r.add, r.limit))
		}
	}
	return nil
}

// The bounds of a limit. A VM takes at least 1 vCPU and 64 MiB, at most 64 vCPUs and 262144 MiB;
// a limit admits at most 1,000 of the largest VMs and at most 10,000 VMs. A CPU or memory limit below
// one smallest VM admits no VM at all, which max_vms 0 says plainly, so it is refused as meaningless.
const (
	MaxVMsLimit    = 10_000
	MinCPULimit    = 1
	MaxCPULimit    = 64 * 1000
	MinMemoryLimit = 64
	MaxMemoryLimit = 262144 * 1000
)

// LimitsChange is an admin's change of a user's limits; a nil field keeps that limit.
type LimitsChange struct {
	VMs       *int
	CPU       *int
	MemoryMiB *int
}

// Validate refuses a change that sets nothing or a limit out of its bounds, naming the field.
func (c LimitsChange) Validate() error {
	if c.VMs == nil && c.CPU == nil && c.MemoryMiB == nil {
		return ErrNoLimitGiven
	}
	for _, f := range []struct {
		name     string
		value    *int
		min, max int
	}{
		{"max_vms", c.VMs, 0, MaxVMsLimit},
		{"max_cpu", c.CPU, MinCPULimit, MaxCPULimit},
		{"max_memory", c.MemoryMiB, MinMemoryLimit, MaxMemoryLimit},
	} {
		if f.value != nil && (*f.value < f.min || *f.value > f.max) {
			return failure.InvalidField(f.name, fmt.Sprintf("Field '%s' must be between %d and %d", f.name, f.min, f.max))
		}
	}
	return nil
}

// ValidDefaults refuses configured defaults that an admin could not set.
func ValidDefaults(l Resources) error {
	return LimitsChange{VMs: &l.VMs, CPU: &l.CPU, MemoryMiB: &l.MemoryMiB}.Validate()
}

// Drift is a user whose recorded usage disagreed with their VMs and pending reservations, and what
// it was set to.
type Drift struct {
	UserID int64
	Was    Resources
	Now    Resources
}
