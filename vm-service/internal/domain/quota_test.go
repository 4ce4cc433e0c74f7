package domain_test

import (
	"testing"

	"limen/libs/failure"
	"limen/vm-service/internal/domain"
)

func TestLimits_AdmitGrowthOnly(t *testing.T) {
	limits := domain.Limits{VMs: 2, CPU: 4, MemoryMiB: 4096}
	used := domain.Usage{VMs: 1, CPU: 3, MemoryMiB: 2048}
	if err := limits.Admit(used, 1, 1, 2048); err != nil {
		t.Fatalf("up to the limit: %v", err)
	}
	cases := map[string][3]int{
		"Quota exceeded: vms 3/2":          {2, 0, 0},
		"Quota exceeded: cpu 5/4":          {1, 2, 0},
		"Quota exceeded: memory 4097/4096": {0, 0, 2049},
	}
	for want, add := range cases {
		err := limits.Admit(used, add[0], add[1], add[2])
		if failure.KindOf(err) != failure.Quota || err.Error() != want {
			t.Errorf("%v: got %v, want %q", add, err, want)
		}
	}
	over := domain.Usage{VMs: 5, CPU: 10, MemoryMiB: 9000}
	if err := limits.Admit(over, 0, -2, -1024); err != nil {
		t.Fatalf("shrinking while over the limits: %v", err)
	}
}
