package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"limen/vm-service/internal/domain"
)

// Tasks is the registry of the tasks this process is actually running. A request registers its VM
// before its claim can commit and leaves once the claimed work (the hypervisor call) has ended, whether
// or not the database took the record of that end. So a claim in this process's name on a VM the
// registry does not hold is dead: its work is over and only its end went unrecorded (the database was
// out of reach), or its claim's commit was reported as failed and nothing ran. Such a claim blocks no
// action and the resync releases it, heartbeat or not; the use case that ended the work also retries
// the record in the background, with backoff and a fresh reading of the hypervisor, until the
// database takes it, the VM is gone or the VM holds another claim or a newer result.
//
// A nil *Tasks judges nothing (the heartbeat alone decides) and retries untracked.
type Tasks struct {
	// RetryMin and RetryMax bound the pause before each retry of an unrecorded end (it doubles from
	// RetryMin up to RetryMax). Set them, if at all, before the registry is used.
	RetryMin, RetryMax time.Duration

	log *slog.Logger

	mu      sync.Mutex
	running map[uuid.UUID]int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewTasks is an empty registry; Close stops its retries.
func NewTasks(log *slog.Logger) *Tasks {
	ctx, cancel := context.WithCancel(context.Background())
	return &Tasks{log: log, RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
		running: map[uuid.UUID]int{}, ctx: ctx, cancel: cancel}
}

// untracked retries for a nil *Tasks (use cases built without a registry, in tests).
var untracked = NewTasks(slog.Default())

// Close stops the retries in flight and waits for them; a claim whose end is still unrecorded stays
// in the database in this process's name, dead as soon as the process leaves vm.replicas.
func (t *Tasks) Close() {
	if t == nil {
		return
	}
	t.cancel()
	t.wg.Wait()
}

// begin registers a task about to be claimed on VM id; call end (once is enough, more are harmless)
// when its work has ended or its claim failed.
func (t *Tasks) begin(id uuid.UUID) (end func()) {
	if t == nil {
		return func() {}
	}
	t.mu.Lock()
	t.running[id]++
	t.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.running[id]--; t.running[id] <= 0 {
				delete(t.running, id)
			}
		})
	}
}

// alone reports whether the request that registered itself on VM id is the only task of this process
// there (a nil registry: true).
func (t *Tasks) alone(id uuid.UUID) bool {
	if t == nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running[id] <= 1
}

// judge decides whether vm's task is live when it is this process's (replica's): exactly while more
// than own requests of this process are registered on the VM (own is 1 for a request that registered
// itself before reading the VM, 0 otherwise). Other processes' tasks keep the heartbeat's verdict.
func (t *Tasks) judge(vm *domain.VM, replica uuid.UUID, own int) {
	if t == nil || vm.Task == "" || vm.TaskOwner != replica {
		return
	}
	t.mu.Lock()
	n := t.running[vm.UUID]
	t.mu.Unlock()
	vm.TaskLive = n > own
}

// finish records the end of claim c on VM id, whose work has ended, and takes the VM out of the
// registry (end). outcome applies what the work did, as known when it ended; it is applied while the
// VM still holds c (which is then released) or holds no live task any more (c was released meanwhile:
// this result is the newest there is). When the database does not take it, the record is retried in
// the background (settle) and the error returned.
func (t *Tasks) finish(ctx context.Context, repo Repository, hv Hypervisor, now Clock, id uuid.UUID, c domain.Claim,
	end func(), outcome func(*domain.VM)) (*domain.VM, error) {
	done, err := repo.Update(ctx, id, func(vm *domain.VM) error {
		t.judge(vm, c.Owner, 1)
		switch {
		case vm.Holds(c):
			vm.EndTask()
			outcome(vm)
		case !vm.Busy():
			outcome(vm)
		}
		return nil
	})
	end()
	if err == nil || errors.Is(err, domain.ErrVMNotFound) {
		return done, err
	}
	t.retry("recording the end of a task", id, c, err, func(ctx context.Context) error {
		return t.settle(ctx, repo, hv, now, id, c, outcome)
	})
	return nil, err
}

// settle is one late attempt at recording the end of claim c: the hypervisor's state is read afresh
// (the row first, so a result recorded after the reading shows as a newer version) and applied with
// outcome, unless another live task holds the VM or a newer result was recorded since claim c lost it.
func (t *Tasks) settle(ctx context.Context, repo Repository, hv Hypervisor, now Clock, id uuid.UUID, c domain.Claim,
	outcome func(*domain.VM)) error {
	before, err := repo.Get(ctx, domain.ByUUID(id))
	if errors.Is(err, domain.ErrVMNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	status, reason, readErr := observe(ctx, hv, id)
	_, err = repo.Update(ctx, id, func(vm *domain.VM) error {
		t.judge(vm, c.Owner, 0)
		held := vm.Holds(c)
		if !held && (vm.Busy() || vm.Version != before.Version) {
			return nil // another task holds the VM, or recorded a newer result: that stands
		}
		if held {
			vm.EndTask()
		}
		outcome(vm)
		if readErr == nil {
			vm.ObserveStatus(status, reason, now())
		}
		return nil
	})
	if errors.Is(err, domain.ErrVMNotFound) {
		return nil
	}
	return err
}

// retry runs attempt in the background, with backoff, until it returns nil or the registry closes.
// first is the error that made it necessary.
func (t *Tasks) retry(what string, id uuid.UUID, c domain.Claim, first error, attempt func(context.Context) error) {
	if t == nil {
		t = untracked
	}
	log := t.log.With("vm_uuid", id, "task", c.Action)
	log.Warn(what+" failed; retrying until the database takes it", "err", first)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		delay := t.RetryMin
		for tries := 1; ; tries++ {
			timer := time.NewTimer(delay)
			select {
			case <-t.ctx.Done():
				timer.Stop()
				log.Warn(what+": given up at shutdown; the resync of the next process repairs it", "tries", tries)
				return
			case <-timer.C:
			}
			err := attempt(t.ctx)
			if err == nil {
				log.Info(what+": done after a retry", "tries", tries)
				return
			}
			if tries%20 == 0 {
				log.Warn(what+" still failing; retrying", "tries", tries, "err", err)
			}
			delay = min(2*delay, t.RetryMax)
		}
	}()
}
