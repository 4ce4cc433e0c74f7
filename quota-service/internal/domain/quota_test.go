package domain

import (
	"testing"

	"github.com/google/uuid"

	"limen/libs/failure"
)

func TestAdmit_OnlyGrowthPastALimit(t *testing.T) {
	limits := Resources{VMs: 3, CPU: 8, MemoryMiB: 4096}
	for _, c := range []struct {
		used, add Resources
		want      string
	}{
		{Resources{2, 4, 2048}, Resources{1, 4, 2048}, ""},
		{Resources{3, 4, 2048}, Resources{1, 1, 64}, "Quota exceeded: vms 4/3"},
		{Resources{1, 8, 2048}, Resources{0, 1, 0}, "Quota exceeded: cpu 9/8"},
		{Resources{1, 1, 4096}, Resources{0, 0, 1}, "Quota exceeded: memory 4097/4096"},
		// Usage above a lowered limit: growth is refused, no growth is not.
		{Resources{5, 20, 9000}, Resources{}, ""},
		{Resources{5, 20, 9000}, Resources{0, 0, 64}, "Quota exceeded: memory 9064/4096"},
	} {
		err := limits.Admit(c.used, c.add)
		if c.want == "" {
			if err != nil {
				t.Errorf("%+v + %+v: %v", c.used, c.add, err)
			}
			continue
		}
		if f, ok := failure.As(err); !ok || f.Kind != failure.Quota || f.Message != c.want {
			t.Errorf("%+v + %+v: %v, want %q", c.used, c.add, err, c.want)
		}
	}
}

func TestGrowth_DropsShrinking(t *testing.T) {
	if g := (Resources{VMs: -1, CPU: 2, MemoryMiB: -64}).Growth(); g != (Resources{CPU: 2}) {
		t.Errorf("growth %+v", g)
	}
}

func TestLimitsChange_Validate(t *testing.T) {
	n := func(v int) *int { return &v }
	for _, c := range []struct {
		change LimitsChange
		field  string
	}{
		{LimitsChange{VMs: n(0)}, ""},
		{LimitsChange{VMs: n(10000), CPU: n(64000), MemoryMiB: n(262144000)}, ""},
		{LimitsChange{CPU: n(1), MemoryMiB: n(64)}, ""},
		{LimitsChange{}, "none"},
		{LimitsChange{VMs: n(-1)}, "max_vms"},
		{LimitsChange{VMs: n(10001)}, "max_vms"},
		{LimitsChange{CPU: n(0)}, "max_cpu"},
		{LimitsChange{CPU: n(64001)}, "max_cpu"},
		{LimitsChange{MemoryMiB: n(63)}, "max_memory"},
		{LimitsChange{MemoryMiB: n(262144001)}, "max_memory"},
	} {
		err := c.change.Validate()
		f, _ := failure.As(err)
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.change, err)
		case c.field == "none" && err != ErrNoLimitGiven:
			t.Errorf("nothing set: %v", err)
		case c.field != "" && c.field != "none" && (f == nil || f.Kind != failure.Invalid || f.Field != c.field):
			t.Errorf("%+v: %v, want field %s", c.change, err, c.field)
		}
	}
}

func TestReservation_HowItEnds(t *testing.T) {
	vm := uuid.NewString()
	r, err := NewReservation("create:"+vm, 5, vm, Resources{VMs: 1, CPU: 2, MemoryMiB: 512})
	if err != nil {
		t.Fatal(err)
	}
	if r.Hold() != (Resources{1, 2, 512}) || !r.Creates() {
		t.Errorf("pending: hold %+v", r.Hold())
	}
	committed, err := r.Commit()
	if err != nil || committed.State != Committed || committed.Hold() != (Resources{}) {
		t.Errorf("commit: %+v %v", committed, err)
	}
	if again, err := committed.Commit(); err != nil || again.State != Committed {
		t.Errorf("commit again: %+v %v", again, err)
	}
	if _, err := committed.Release(); err != ErrReservationCommitted {
		t.Errorf("release after commit: %v", err)
	}
	released, err := r.Release()
	if err != nil || released.State != Released {
		t.Errorf("release: %+v %v", released, err)
	}
	if _, err := released.Commit(); err != ErrReservationReleased {
		t.Errorf("commit after release: %v", err)
	}
	expired := r
	expired.State = Expired
	if late, err := expired.Commit(); err != nil || late.State != Committed {
		t.Errorf("late commit: %+v %v", late, err)
	}
	if same, err := expired.Release(); err != nil || same.State != Expired {
		t.Errorf("release of an expired one: %+v %v", same, err)
	}

	if got, err := committed.Repeat(r); err != nil || got.State != Committed {
		t.Errorf("repeat of a committed one: %+v %v", got, err)
	}
	if _, err := released.Repeat(r); err != ErrReservationReleased {
		t.Errorf("repeat of a released one: %v", err)
	}
	if _, err := expired.Repeat(r); err != ErrReservationExpired {
		t.Errorf("repeat of an expired one: %v", err)
	}
	other := r
	other.Change.CPU = 4
	if _, err := r.Repeat(other); err != ErrKeyReused {
		t.Errorf("the key for another change: %v", err)
	}
}

func TestNewReservation_RefusesBadInput(t *testing.T) {
	vm := uuid.NewString()
	for _, c := range []struct {
		key, vm string
		user    int64
		change  Resources
		field   string
	}{
		{"", vm, 5, Resources{VMs: 1}, "key"},
		{"a b", vm, 5, Resources{VMs: 1}, "key"},
		{"k", vm, 0, Resources{VMs: 1}, "user_id"},
		{"k", "x", 5, Resources{VMs: 1}, "vm_uuid"},
		{"k", vm, 5, Resources{VMs: 10001}, "vms"},
		{"k", vm, 5, Resources{CPU: -64001}, "cpu"},
		{"k", vm, 5, Resources{MemoryMiB: 262144001}, "memory"},
	} {
		_, err := NewReservation(c.key, c.user, c.vm, c.change)
		if f, ok := failure.As(err); !ok || f.Kind != failure.Invalid || f.Field != c.field {
			t.Errorf("%+v: %v, want field %s", c, err, c.field)
		}
	}
}
