package domain

import (
	"fmt"

	"limen/libs/failure"
)

// Limits are what one user may hold: VMs, vCPUs and memory, stopped VMs included.
type Limits struct {
	VMs       int
	CPU       int
	MemoryMiB int
}

// Usage is what one user holds now.
type Usage struct {
	VMs       int
	CPU       int
	MemoryMiB int
}

// Admit checks a growth of usage against the limits. Only growth is refused: limits lowered below
// what a user already holds block further growth, never what exists, and shrinking is always allowed.
func (l Limits) Admit(used Usage, addVMs, addCPU, addMemoryMiB int) error {
	for _, r := range []struct {
		name             string
		used, add, limit int
	}{
		{"vms", used.VMs, addVMs, l.VMs},
		{"cpu", used.CPU, addCPU, l.CPU},
		{"memory", used.MemoryMiB, addMemoryMiB, l.MemoryMiB},
	} {
		if r.add > 0 && r.used+r.add > r.limit {
			return failure.New(failure.Quota, fmt.Sprintf("Quota exceeded: %s %d/%d", r.name, r.used+r.add, r.limit))
		}
	}
	return nil
}
