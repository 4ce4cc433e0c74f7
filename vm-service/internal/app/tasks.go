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
// A nil *Tasks judges nothing (the heartbeat alone decides); it retries and runs actions untracked.
//
// The registry also runs the claimed work of actions (detach): in the background, detached from the
// request, so that an action outlives a caller who stops waiting; Drain and Close end them.
type Tasks struct {
	// RetryMin and RetryMax bound the pause before each retry of an unrecorded end (it doubles from
	// RetryMin up to RetryMax). ClaimCheck is how often an action that another may take over reads
	// whether it still holds its claim (see override). Set them, if at all, before the registry is used.
	RetryMin, RetryMax, ClaimCheck time.Duration

	log *slog.Logger

	mu      sync.Mutex
	running map[uuid.UUID]int
	// actions are the claimed actions whose work this process runs, by VM; closed: Close has begun.
	actions map[uuid.UUID][]*action
	closed  bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// action is the work of one claim, running in the background.
type action struct {
	claim domain.Claim
	// cancel ends the work; the cause says why (a takeover's refusal, or errShutdown).
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// errShutdown ends the actions still running when the process stops.
var errShutdown = errors.New("vm-service is shutting down")

// NewTasks is an empty registry; Close ends its actions and stops its retries.
func NewTasks(log *slog.Logger) *Tasks {
	ctx, cancel := context.WithCancel(context.Background())
	return &Tasks{log: log, RetryMin: 100 * time.Millisecond, RetryMax: time.Second, ClaimCheck: 500 * time.Millisecond,
		running: map[uuid.UUID]int{}, actions: map[uuid.UUID][]*action{}, ctx: ctx, cancel: cancel}
}

// untracked retries and runs actions for a nil *Tasks (use cases built without a registry, in tests).
var untracked = NewTasks(slog.Default())

// logger is where the registry's use cases log what they cannot return.
func (t *Tasks) logger() *slog.Logger {
	if t == nil {
		return untracked.log
	}
	return t.log
}

// Close ends the actions still running (see Drain) and stops the retries in flight, and waits for
// both; a claim whose end is still unrecorded stays in the database in this process's name, dead as
// soon as the process leaves vm.replicas.
func (t *Tasks) Close() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.endActions(errShutdown)
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
			vm.EndTask(now())
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
			vm.EndTask(now())
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

// Drain waits up to limit for the actions running in the background to end by themselves, then ends
// the rest: each records the state its machine is in and releases its claim, and Drain waits for
// that. Call it while the hypervisor, the database and the heartbeat are still there.
func (t *Tasks) Drain(limit time.Duration) {
	if t == nil {
		return
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for done := t.anyAction(); done != nil; done = t.anyAction() {
		select {
		case <-done:
		case <-deadline.C:
			t.log.Warn("ending the actions still running at shutdown; each records its machine's state")
			t.endActions(errShutdown)
			for done := t.anyAction(); done != nil; done = t.anyAction() {
				<-done
			}
			return
		}
	}
}

// anyAction is the end of one action still running, nil when none is.
func (t *Tasks) anyAction() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, list := range t.actions {
		for _, a := range list {
			return a.done
		}
	}
	return nil
}

// endActions cancels every action running, with cause.
func (t *Tasks) endActions(cause error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, list := range t.actions {
		for _, a := range list {
			a.cancel(cause)
		}
	}
}

// detach runs work, the claimed action of claimed (whose claim has committed), in the background
// and waits up to wait for it (zero: until it ends). It returns what work returns, or, when the wait
// ends first, claimed: the VM busy with the action, which goes on and announces its end like any
// change. work records its results on a context of its own; run, the one it gets for the
// hypervisor, ends only when the action is taken over (context.Cause: the refusal the new claim
// makes, domain.BusyWith) or the process stops (errShutdown), never when the caller goes away.
func (t *Tasks) detach(ctx context.Context, repo Repository, wait time.Duration, claimed *domain.VM,
	work func(run context.Context) (*domain.VM, error)) (*domain.VM, error) {
	if t == nil {
		t = untracked
	}
	run, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	a := &action{claim: claimed.Claim(), cancel: cancel, done: make(chan struct{})}
	t.mu.Lock()
	if t.closed {
		// Claimed after Close began (a deleted user's VMs, say): ended at once, its claim released.
		t.mu.Unlock()
		cancel(errShutdown)
		return work(run)
	}
	t.actions[claimed.UUID] = append(t.actions[claimed.UUID], a)
	t.wg.Add(1)
	t.mu.Unlock()
	var vm *domain.VM
	var err error
	go func() {
		defer t.wg.Done()
		defer close(a.done)
		defer t.forget(claimed.UUID, a)
		var watching sync.WaitGroup
		defer watching.Wait()
		defer cancel(nil)
		if a.claim.Action.Overridable() {
			watching.Add(1)
			go func() { defer watching.Done(); t.watch(run, repo, claimed.UUID, a) }()
		}
		vm, err = work(run)
	}()
	if wait <= 0 {
		<-a.done
		return vm, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-a.done:
		return vm, err
	case <-timer.C:
		return claimed, nil
	}
}

// forget takes action a of VM id out of the registry.
func (t *Tasks) forget(id uuid.UUID, a *action) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.actions[id]
	for i, o := range list {
		if o == a {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.actions, id)
	} else {
		t.actions[id] = list
	}
}

// watch reads, at once and every ClaimCheck until ctx (the action's run) ends, whether VM id still
// holds a's claim, and ends a once another task holds the VM: another process took it over (see
// override). A claim merely gone (released as dead while this process could not beat) leaves the
// action running, as it always did.
func (t *Tasks) watch(ctx context.Context, repo Repository, id uuid.UUID, a *action) {
	for {
		if vm, err := repo.Get(ctx, domain.ByUUID(id)); err == nil && vm.Task != "" && !vm.Holds(a.claim) {
			a.cancel(domain.BusyWith(vm.Task))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.ClaimCheck):
		}
	}
}

// override ends the action of claim prior on VM id, which a new claim (of action by, whose request
// registered itself with begin) has just taken over in the database, so that it does nothing after
// the new claim's work. This process's own (local) is cancelled and waited for, or has ended already
// when no other request of this process is registered on the VM. Another process's, or one of this
// process whose claim committed but whose work is not registered yet, reads its claim every
// ClaimCheck (watch) and ends itself: the returned hold, called before the new claim is released,
// keeps that claim at least two ClaimChecks so that no third action can begin before the old one
// has noticed.
func (t *Tasks) override(id uuid.UUID, prior domain.Claim, by domain.Action, local bool) (hold func()) {
	if t == nil {
		t = untracked
	}
	t.mu.Lock()
	var old *action
	for _, a := range t.actions[id] {
		if a.claim.Is(prior) {
			old = a
		}
	}
	ended := local && t.running[id] <= 1
	t.mu.Unlock()
	switch {
	case old != nil:
		old.cancel(domain.BusyWith(by))
		<-old.done
		return func() {}
	case ended:
		return func() {}
	}
	until := time.Now().Add(2 * t.ClaimCheck)
	return func() { time.Sleep(time.Until(until)) }
}
