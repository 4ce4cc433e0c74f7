package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

const (
	// retryBudget is how long a client keeps repeating a request that gets no definite answer.
	retryBudget = 2 * time.Minute
	// busyBudget is how long a client waits for a busy VM (409) before it leaves that VM alone for a while.
	busyBudget = 45 * time.Second
)

// vmModel is a client's picture of one of its VMs.
type vmModel struct {
	uuid, name  string
	status      string
	cpu, memory int
	stuckUntil  time.Time // busy beyond busyBudget: left alone until then
}

// user is one client: its own VMs through the gateway, and its live status socket.
type user struct {
	name, password string
	api            *api
	st             *stats
	cap            *vmCap
	notes          *events // misbehaviour worth reporting (stuck VMs, vanished VMs)
	rnd            *rand.Rand
	ws             *wsClient

	mu      sync.Mutex
	token   string
	vms     map[string]*vmModel // alive as far as this client knows
	deleted map[string]bool     // delete answered 200 (or 404 to a retry)
	unsure  map[string]string   // a request on it got no definite answer: it may or may not exist
	// pendingNames are creates that got no definite answer: the VM may exist without the client
	// knowing its uuid.
	pendingNames []string
	vanished     map[string]bool // answered 404 although this client never deleted it
	seq          int
}

func newUser(name, password string, a *api, st *stats, c *vmCap, notes *events, seed uint64) *user {
	return &user{name: name, password: password, api: a, st: st, cap: c, notes: notes,
		rnd: rand.New(rand.NewPCG(seed, 0x50a4)), vms: map[string]*vmModel{}, deleted: map[string]bool{},
		unsure: map[string]string{}, vanished: map[string]bool{}}
}

func (u *user) tok() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.token
}

// login repeats until it gets a token (or the load stops).
func (u *user) login(stop context.Context) bool {
	deadline := time.Now().Add(retryBudget)
	for {
		start := time.Now()
		r := u.api.do("POST", "/api/auth/login", "", map[string]string{"username": u.name, "password": u.password})
		if token, _ := r.obj["token"].(string); r.status == http.StatusOK && token != "" {
			u.mu.Lock()
			u.token = token
			u.mu.Unlock()
			u.st.op("login", true)
			return true
		}
		u.st.saw(r, "login "+u.name, start)
		if stop.Err() != nil || time.Now().After(deadline) {
			u.st.op("login", false)
			return false
		}
		sleepCtx(stop, time.Second)
	}
}

// result is how a request ended: ok with an accepted answer; open when it never got a definite
// answer, so whether it took effect is unknown; busy when the VM stayed busy beyond busyBudget.
type result struct {
	r          reply
	ok         bool
	open, busy bool
}

// call sends a request as a careful user would until it gets a definite answer: after no answer or a
// 5xx it tries again with backoff, on 401 it logs in again, while the VM is busy it waits. A retry
// after an ambiguous answer also accepts done: what the request answers when its first try had
// worked after all. Every answer but those wanted (and done) is counted in stats.
func (u *user) call(stop context.Context, op, method, path string, body any, wanted []int, done func(reply) bool) result {
	retried := false
	backoff := 250 * time.Millisecond
	deadline := time.Now().Add(retryBudget)
	var busySince time.Time
	for {
		start := time.Now()
		r := u.api.do(method, path, u.tok(), body)
		switch {
		case slices.Contains(wanted, r.status):
			u.st.op(op, true)
			return result{r: r, ok: true}
		case retried && done != nil && done(r):
			u.st.seen(classRetryDone, true, "", start)
			u.st.op(op, true)
			return result{r: r, ok: true}
		}
		u.st.saw(r, fmt.Sprintf("%s %s %s", u.name, method, path), start)
		wait := backoff
		switch class, _ := classify(r); {
		case ambiguous(r):
			retried = true
			backoff = min(2*backoff, 5*time.Second)
		case r.status == http.StatusUnauthorized:
			if !u.login(stop) {
				u.st.op(op, false)
				return result{r: r, open: retried}
			}
			wait = 0
		case class == classBusy:
			if busySince.IsZero() {
				busySince = start
			}
			if time.Since(busySince) > busyBudget {
				u.st.op(op, false)
				return result{r: r, busy: true, open: retried}
			}
			wait = time.Second
		default:
			u.st.op(op, false)
			return result{r: r}
		}
		if stop.Err() != nil || time.Now().After(deadline) {
			u.st.op(op, false)
			return result{r: r, open: retried}
		}
		sleepCtx(stop, wait)
	}
}

// run is the user's loop until stop: look at the VM list, then one operation, then a pause.
func (u *user) run(stop context.Context, perUser int) {
	for stop.Err() == nil {
		u.refresh(stop)
		u.mu.Lock()
		n := len(u.vms)
		var candidates []*vmModel
		for _, vm := range u.vms {
			if time.Now().After(vm.stuckUntil) {
				candidates = append(candidates, vm)
			}
		}
		u.mu.Unlock()
		switch {
		case n < perUser && (n == 0 || u.rnd.IntN(3) == 0) && u.cap.reserve():
			u.create(stop)
		case len(candidates) > 0:
			u.act(stop, candidates[u.rnd.IntN(len(candidates))])
		}
		sleepCtx(stop, time.Duration(300+u.rnd.IntN(700))*time.Millisecond)
	}
}

// refresh reads GET /api/vms, as the frontend polls, and takes the statuses from it.
func (u *user) refresh(stop context.Context) {
	res := u.call(stop, "list", "GET", "/api/vms", nil, []int{http.StatusOK}, nil)
	if !res.ok {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, v := range res.r.list {
		vm, _ := v.(map[string]any)
		if m := u.vms[fmt.Sprint(vm["uuid"])]; m != nil {
			m.apply(vm)
		}
	}
}

func (m *vmModel) apply(vm map[string]any) {
	if vm == nil {
		return
	}
	m.status, _ = vm["status"].(string)
	cpu, _ := vm["cpu"].(float64)
	memory, _ := vm["memory"].(float64)
	m.cpu, m.memory = int(cpu), int(memory)
}

// create makes a VM with no OS (64 MiB, 1 vCPU), started at once now and then.
func (u *user) create(stop context.Context) {
	u.mu.Lock()
	name := fmt.Sprintf("%s-vm%d", u.name, u.seq)
	u.seq++
	u.mu.Unlock()
	start := u.rnd.IntN(3) == 0
	res := u.call(stop, "create", "POST", "/api/vms", map[string]any{"name": name, "cpu": 1, "memory": 64,
		"os_type": "other", "start": start}, []int{http.StatusCreated},
		func(r reply) bool { return r.status == http.StatusConflict && r.message() == "VM name already exists" })
	if !res.ok {
		u.cap.release()
		if res.open {
			u.mu.Lock()
			u.pendingNames = append(u.pendingNames, name)
			u.mu.Unlock()
		}
		return
	}
	vm := res.r.obj
	if res.r.status != http.StatusCreated {
		// A retry found the first try had created it.
		if vm = u.findByName(stop, name); vm == nil {
			u.cap.release()
			u.mu.Lock()
			u.pendingNames = append(u.pendingNames, name)
			u.mu.Unlock()
			return
		}
	}
	m := &vmModel{uuid: fmt.Sprint(vm["uuid"]), name: name}
	m.apply(vm)
	u.mu.Lock()
	u.vms[m.uuid] = m
	u.mu.Unlock()
}

func (u *user) findByName(stop context.Context, name string) map[string]any {
	res := u.call(stop, "list", "GET", "/api/vms", nil, []int{http.StatusOK}, nil)
	for _, v := range res.r.list {
		if vm, _ := v.(map[string]any); vm["name"] == name {
			return vm
		}
	}
	return nil
}

// act does one thing to one of the user's VMs, chosen by its state.
func (u *user) act(stop context.Context, vm *vmModel) {
	u.mu.Lock()
	status := vm.status
	u.mu.Unlock()
	type choice struct {
		weight int
		do     func()
	}
	power := func(action string, doneState string) func() {
		return func() {
			var done func(reply) bool
			if doneState != "" {
				done = func(r reply) bool {
					return r.status == http.StatusConflict && r.message() == fmt.Sprintf("Cannot %s VM: VM is %s", action, doneState)
				}
			}
			body := map[string]any{"action": action}
			if action == "force stop" {
				body["action"] = "force_stop"
			}
			u.vmCall(stop, vm, "action "+fmt.Sprint(body["action"]), "POST", "/api/vms/"+vm.uuid+"/action", body, done)
		}
	}
	resize := func() {
		cpu, memory := 2, 96
		if vm.cpu == 2 {
			cpu, memory = 1, 64
		}
		u.vmCall(stop, vm, "action update", "POST", "/api/vms/"+vm.uuid+"/action",
			map[string]any{"action": "update", "cpu": cpu, "memory": memory}, nil)
	}
	media := func() {
		if u.rnd.IntN(2) == 0 {
			u.vmCall(stop, vm, "media attach", "POST", "/api/vms/"+vm.uuid+"/media", map[string]any{"action": "attach", "iso_path": isoName}, nil)
		} else {
			u.vmCall(stop, vm, "media detach", "POST", "/api/vms/"+vm.uuid+"/media", map[string]any{"action": "detach"}, nil)
		}
	}
	getMedia := func() { u.vmCall(stop, vm, "media get", "GET", "/api/vms/"+vm.uuid+"/media", nil, nil) }
	del := func() { u.delete(stop, vm) }
	var choices []choice
	switch status {
	case "Running":
		choices = []choice{{25, power("stop", "Stopped")}, {20, power("force stop", "Stopped")}, {8, power("restart", "")},
			{10, power("pause", "Paused")}, {25, media}, {7, getMedia}, {5, del}}
	case "Stopped":
		choices = []choice{{35, power("start", "Running")}, {20, resize}, {20, media}, {25, del}}
	case "Paused":
		choices = []choice{{50, power("resume", "Running")}, {40, power("force stop", "Stopped")}, {10, del}}
	default: // Error, or not yet known
		choices = []choice{{50, power("force stop", "Stopped")}, {50, del}}
	}
	total := 0
	for _, c := range choices {
		total += c.weight
	}
	pick := u.rnd.IntN(total)
	for _, c := range choices {
		if pick < c.weight {
			c.do()
			return
		}
		pick -= c.weight
	}
}

// vmCall is a request about vm; it keeps the client's picture of the VM up to date.
func (u *user) vmCall(stop context.Context, vm *vmModel, op, method, path string, body any, done func(reply) bool) {
	// An action still running after the gateway's LIMEN_ACTION_WAIT answers 202, the VM with its task:
	// taken, as a 200 is.
	res := u.call(stop, op, method, path, body, []int{http.StatusOK, http.StatusAccepted}, done)
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case res.ok:
		if res.r.obj["uuid"] == vm.uuid { // an action answers the VM itself
			vm.apply(res.r.obj)
		}
	case res.busy:
		vm.stuckUntil = time.Now().Add(2 * time.Minute)
		u.notes.add(fmt.Sprintf("%s: VM %s (%s) answered %q for %s; left alone for 2 minutes",
			time.Now().Format("15:04:05"), vm.uuid, vm.name, res.r.message(), busyBudget))
	case res.r.status == http.StatusNotFound:
		delete(u.vms, vm.uuid)
		u.vanished[vm.uuid] = true
		u.cap.release()
		u.notes.add(fmt.Sprintf("%s: VM %s (%s) answered 404 to %s although its owner never deleted it",
			time.Now().Format("15:04:05"), vm.uuid, vm.name, op))
	}
}

func (u *user) delete(stop context.Context, vm *vmModel) {
	res := u.call(stop, "delete", "DELETE", "/api/vms/"+vm.uuid, nil, []int{http.StatusOK},
		func(r reply) bool { return r.status == http.StatusNotFound })
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case res.ok:
		delete(u.vms, vm.uuid)
		u.deleted[vm.uuid] = true
		u.cap.release()
	case res.busy:
		vm.stuckUntil = time.Now().Add(2 * time.Minute)
		u.notes.add(fmt.Sprintf("%s: VM %s (%s) answered %q to delete for %s; left alone for 2 minutes",
			time.Now().Format("15:04:05"), vm.uuid, vm.name, res.r.message(), busyBudget))
	case res.open:
		u.unsure[vm.uuid] = "delete got no definite answer"
	}
}

// vmCap holds the number of VMs alive at once across all users.
type vmCap struct {
	mu        sync.Mutex
	used, max int
}

func (c *vmCap) reserve() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used >= c.max {
		return false
	}
	c.used++
	return true
}

func (c *vmCap) inUse() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

func (c *vmCap) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used > 0 {
		c.used--
	}
}
