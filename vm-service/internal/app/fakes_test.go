package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/failure"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

// memRepo is an in-memory Repository; events counts what would reach the outbox.
type memRepo struct {
	mu      sync.Mutex
	vms     map[uuid.UUID]*domain.VM
	nextID  int64
	events  []string
	failAdd error
	// dead are the processes whose heartbeat lapsed: their tasks are read as not live.
	dead map[uuid.UUID]bool
	// afterList, when set, runs after each List has read the rows (to interleave other work).
	afterList func()
	// inTx is set while a callback runs inside the "transaction" (Update's change).
	inTx atomic.Bool
	// down is a database out of reach: every call fails with errDown.
	down atomic.Bool
}

var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func (r *memRepo) reachable() error {
	if r.down.Load() {
		return errDown
	}
	return nil
}

func newRepo() *memRepo { return &memRepo{vms: map[uuid.UUID]*domain.VM{}, dead: map[uuid.UUID]bool{}} }

// read is a stored VM as a reader gets it: a copy, its task live unless its process died.
func (r *memRepo) read(vm *domain.VM) *domain.VM {
	c := *vm
	c.TaskLive = c.Task != "" && !r.dead[c.TaskOwner]
	return &c
}

func (r *memRepo) Add(_ context.Context, vm *domain.VM) error {
	if err := r.reachable(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAdd != nil {
		return r.failAdd
	}
	for _, o := range r.vms {
		if o.OwnerID == vm.OwnerID && o.Name == vm.Name {
			return domain.ErrNameTaken
		}
	}
	r.nextID++
	vm.ID = r.nextID
	c := *vm
	r.vms[vm.UUID] = &c
	r.events = append(r.events, "updated")
	return nil
}

func (r *memRepo) Usage(_ context.Context, ownerID int64) (domain.Usage, error) {
	if err := r.reachable(); err != nil {
		return domain.Usage{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.usage(ownerID), nil
}

func (r *memRepo) usage(ownerID int64) domain.Usage {
	var u domain.Usage
	for _, vm := range r.vms {
		if vm.OwnerID == ownerID {
			u.VMs, u.CPU, u.MemoryMiB = u.VMs+1, u.CPU+vm.CPU, u.MemoryMiB+vm.MemoryMiB
		}
	}
	return u
}

func (r *memRepo) Get(_ context.Context, ref domain.Ref) (*domain.VM, error) {
	if err := r.reachable(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, vm := range r.vms {
		if vm.UUID == ref.UUID || ref.ID != 0 && vm.ID == ref.ID {
			return r.read(vm), nil
		}
	}
	return nil, domain.ErrVMNotFound
}

func (r *memRepo) List(_ context.Context, ownerID int64) ([]*domain.VM, error) {
	if err := r.reachable(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	var out []*domain.VM
	for _, vm := range r.vms {
		if ownerID == 0 || vm.OwnerID == ownerID {
			out = append(out, r.read(vm))
		}
	}
	after := r.afterList
	r.mu.Unlock()
	if after != nil {
		after()
	}
	return out, nil
}

func (r *memRepo) NameTaken(_ context.Context, ownerID int64, name string) (bool, error) {
	if err := r.reachable(); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, vm := range r.vms {
		if vm.OwnerID == ownerID && vm.Name == name {
			return true, nil
		}
	}
	return false, nil
}

func (r *memRepo) Update(_ context.Context, id uuid.UUID, change func(*domain.VM) error) (*domain.VM, error) {
	if err := r.reachable(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	vm, ok := r.vms[id]
	if !ok {
		return nil, domain.ErrVMNotFound
	}
	c := r.read(vm)
	r.inTx.Store(true)
	err := change(c)
	r.inTx.Store(false)
	if err != nil {
		return nil, err
	}
	if c.Version != vm.Version {
		r.events = append(r.events, "updated")
	}
	r.vms[id] = c
	out := *c
	return &out, nil
}

func (r *memRepo) Remove(_ context.Context, vm *domain.VM) error {
	if err := r.reachable(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.vms[vm.UUID]; !ok {
		return domain.ErrVMNotFound
	}
	delete(r.vms, vm.UUID)
	r.events = append(r.events, "deleted")
	return nil
}

// fakeHypervisor records calls; gate, when set, holds Start until closed. Like libvirt, it refuses an
// operation the machine's state does not allow (app.ErrMachineState).
type fakeHypervisor struct {
	mu       sync.Mutex
	machines map[uuid.UUID]domain.Status
	// created is when this installation defined each machine; machines missing here are foreign.
	created   map[uuid.UUID]time.Time
	calls     []string
	gate      chan struct{}
	failWith  error
	deleteErr error
	// afterStates, when set, runs after each States has read the machines (to interleave other work).
	afterStates func()
	// inTx, when set, reports a repository transaction in progress; calls made meanwhile are recorded
	// in calledInTx.
	inTx       func() bool
	calledInTx []string
	// beforeOp and afterOp, when set, run before and after each power or resize operation (afterOp only
	// after one that succeeded), outside the hypervisor's lock.
	beforeOp, afterOp func()
	// deaf, when set, is a guest that ignores ACPI: Shutdown ("acpi") waits until the context ends
	// (recorded as "shutdown_ended") or deaf is closed (the guest powered off after all).
	deaf chan struct{}
}

// refuses says whether libvirt refuses call on a machine in state s.
func refuses(call string, s domain.Status) bool {
	switch call {
	case "start":
		return s == domain.StatusRunning || s == domain.StatusPaused
	case "shutdown", "force_stop", "pause", "resume":
		return s == domain.StatusStopped
	}
	return false
}

func newHypervisor() *fakeHypervisor {
	return &fakeHypervisor{machines: map[uuid.UUID]domain.Status{}, created: map[uuid.UUID]time.Time{}}
}

// call records a call, and whether a repository transaction was open while it was made.
func (h *fakeHypervisor) call(name string) {
	h.calls = append(h.calls, name)
	if h.inTx != nil && h.inTx() {
		h.calledInTx = append(h.calledInTx, name)
	}
}

func (h *fakeHypervisor) record(call string, id uuid.UUID, to domain.Status) error {
	h.mu.Lock()
	h.call(call)
	gate, fail, before, after := h.gate, h.failWith, h.beforeOp, h.afterOp
	h.mu.Unlock()
	if before != nil {
		before()
	}
	if call == "start" && gate != nil {
		<-gate
	}
	if fail != nil {
		return fail
	}
	h.mu.Lock()
	cur, ok := h.machines[id]
	switch {
	case !ok:
		h.mu.Unlock()
		return contract.ErrMachineNotFound
	case refuses(call, cur):
		h.mu.Unlock()
		return fmt.Errorf("%w: domain is %s", app.ErrMachineState, cur)
	}
	h.machines[id] = to
	h.mu.Unlock()
	if after != nil {
		after()
	}
	return nil
}

// set puts a machine into state s behind LIMEN's back.
func (h *fakeHypervisor) set(id uuid.UUID, s domain.Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.machines[id] = s
}

// state is a machine's state.
func (h *fakeHypervisor) state(id uuid.UUID) domain.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.machines[id]
}

func (h *fakeHypervisor) count(call string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (h *fakeHypervisor) Create(_ context.Context, spec app.MachineSpec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.call("create")
	if h.failWith != nil {
		return h.failWith
	}
	h.machines[spec.UUID] = domain.StatusStopped
	h.created[spec.UUID] = now
	return nil
}

func (h *fakeHypervisor) OwnedSince(_ context.Context, id uuid.UUID) (time.Time, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.call("owned_since")
	if _, ok := h.machines[id]; !ok {
		return time.Time{}, false, contract.ErrMachineNotFound
	}
	created, ok := h.created[id]
	return created, ok, nil
}

func (h *fakeHypervisor) Start(_ context.Context, id uuid.UUID) error {
	return h.record("start", id, domain.StatusRunning)
}

func (h *fakeHypervisor) Shutdown(ctx context.Context, id uuid.UUID, _ time.Duration) (bool, error) {
	h.mu.Lock()
	deaf := h.deaf
	if deaf != nil {
		h.call("acpi")
	}
	h.mu.Unlock()
	if deaf != nil {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			h.call("shutdown_ended")
			h.mu.Unlock()
			return false, ctx.Err()
		case <-deaf:
		}
	}
	return false, h.record("shutdown", id, domain.StatusStopped)
}

func (h *fakeHypervisor) ForceStop(_ context.Context, id uuid.UUID) error {
	return h.record("force_stop", id, domain.StatusStopped)
}

func (h *fakeHypervisor) Pause(_ context.Context, id uuid.UUID) error {
	return h.record("pause", id, domain.StatusPaused)
}

func (h *fakeHypervisor) Resume(_ context.Context, id uuid.UUID) error {
	return h.record("resume", id, domain.StatusRunning)
}

func (h *fakeHypervisor) Resize(_ context.Context, id uuid.UUID, _, _ int) error {
	return h.record("resize", id, domain.StatusStopped)
}

// SetBootOrder leaves the machine in the state it is in: the order waits for its next start.
func (h *fakeHypervisor) SetBootOrder(_ context.Context, id uuid.UUID, _ domain.BootOrder) error {
	return h.record("boot_order", id, h.state(id))
}

func (h *fakeHypervisor) Delete(_ context.Context, id uuid.UUID) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.call("delete")
	if h.deleteErr != nil {
		return h.deleteErr
	}
	delete(h.machines, id)
	return nil
}

func (h *fakeHypervisor) State(_ context.Context, id uuid.UUID) (domain.Status, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.call("state")
	s, ok := h.machines[id]
	if !ok {
		return "", contract.ErrMachineNotFound
	}
	return s, nil
}

func (h *fakeHypervisor) States(context.Context) (map[uuid.UUID]domain.Status, error) {
	h.mu.Lock()
	h.call("states")
	out := make(map[uuid.UUID]domain.Status, len(h.machines))
	for id, s := range h.machines {
		out[id] = s
	}
	after := h.afterStates
	h.mu.Unlock()
	if after != nil {
		after()
	}
	return out, nil
}

var errBoom = errors.New("boom")

// fakeQuota is quota-service in memory: one set of limits for every user, usage as the committed VMs
// plus the growth of the pending holds. Each call is also recorded in trace's call log, when set
// ("quota.reserve", ...), so its order against the hypervisor's calls can be read.
type fakeQuota struct {
	mu      sync.Mutex
	limits  domain.Usage
	vms     map[uuid.UUID]heldVM
	pending map[string]domain.QuotaChange
	trace   *fakeHypervisor
	// down is quota-service out of reach: every call fails as the client's do.
	down atomic.Bool
}

// heldVM is a committed VM as quota-service counts it.
type heldVM struct {
	owner          int64
	cpu, memoryMiB int
	version        int64
}

func newQuota(limits domain.Usage) *fakeQuota {
	return &fakeQuota{limits: limits, vms: map[uuid.UUID]heldVM{}, pending: map[string]domain.QuotaChange{}}
}

func (q *fakeQuota) enter(call string) error {
	if q.trace != nil {
		q.trace.mu.Lock()
		q.trace.call("quota." + call)
		q.trace.mu.Unlock()
	}
	if q.down.Load() {
		return fmt.Errorf("%w: connection refused", domain.ErrQuotaServiceDown)
	}
	q.mu.Lock()
	return nil
}

// usage is what owner holds, the pending growth included.
func (q *fakeQuota) usage(owner int64) domain.Usage {
	var u domain.Usage
	for _, v := range q.vms {
		if v.owner == owner {
			u.VMs, u.CPU, u.MemoryMiB = u.VMs+1, u.CPU+v.cpu, u.MemoryMiB+v.memoryMiB
		}
	}
	for _, c := range q.pending {
		if c.OwnerID == owner {
			u.VMs, u.CPU, u.MemoryMiB = u.VMs+max(c.VMs, 0), u.CPU+max(c.CPU, 0), u.MemoryMiB+max(c.MemoryMiB, 0)
		}
	}
	return u
}

func (q *fakeQuota) Reserve(_ context.Context, c domain.QuotaChange) error {
	if err := q.enter("reserve"); err != nil {
		return err
	}
	defer q.mu.Unlock()
	if _, ok := q.pending[c.Key]; ok {
		return nil
	}
	used := q.usage(c.OwnerID)
	for _, r := range []struct {
		name             string
		used, add, limit int
	}{{"vms", used.VMs, c.VMs, q.limits.VMs}, {"cpu", used.CPU, c.CPU, q.limits.CPU}, {"memory", used.MemoryMiB, c.MemoryMiB, q.limits.MemoryMiB}} {
		if r.add > 0 && r.used+r.add > r.limit {
			return failure.New(failure.Quota, fmt.Sprintf("Quota exceeded: %s %d/%d", r.name, r.used+r.add, r.limit))
		}
	}
	q.pending[c.Key] = c
	return nil
}

func (q *fakeQuota) Commit(_ context.Context, key string, vm *domain.VM) error {
	if err := q.enter("commit"); err != nil {
		return err
	}
	defer q.mu.Unlock()
	if _, ok := q.pending[key]; !ok {
		return fmt.Errorf("commit of %s: no such pending reservation", key)
	}
	delete(q.pending, key)
	q.vms[vm.UUID] = heldVM{owner: vm.OwnerID, cpu: vm.CPU, memoryMiB: vm.MemoryMiB, version: vm.Version}
	return nil
}

func (q *fakeQuota) Release(_ context.Context, key string) error {
	if err := q.enter("release"); err != nil {
		return err
	}
	defer q.mu.Unlock()
	delete(q.pending, key)
	return nil
}

func (q *fakeQuota) ReleaseVM(_ context.Context, vm *domain.VM) error {
	if err := q.enter("release_vm"); err != nil {
		return err
	}
	defer q.mu.Unlock()
	delete(q.vms, vm.UUID)
	for k, c := range q.pending {
		if c.VM == vm.UUID {
			delete(q.pending, k)
		}
	}
	return nil
}

// state is what quota-service holds for owner: usage (pending growth included) and how many holds
// are pending.
func (q *fakeQuota) state(owner int64) (domain.Usage, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.usage(owner), len(q.pending)
}

// roomyLimits let every test VM fit.
var roomyLimits = domain.Usage{VMs: 100, CPU: 100, MemoryMiB: 1 << 20}
