package service_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/outbox"
	"limen/libs/testkit/libvirttest"
	"limen/vm-service/internal/adapters/libvirt"
	"limen/vm-service/internal/adapters/postgres"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
	"limen/vm-service/internal/service"
)

// An update names cpu or memory alone and keeps the other; naming neither is 400.
func TestUpdate_OneDimensionKeepsTheOther(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "resizable")
	code, got, msg := s.action(alice, vm.UUID, `{"action":"update","cpu":2}`)
	if code != http.StatusOK || msg != "VM updated" || got.CPU != 2 || got.Memory != 64 {
		t.Fatalf("cpu only: %d %+v %s", code, got, msg)
	}
	code, got, msg = s.action(alice, vm.UUID, `{"action":"update","memory":128}`)
	if code != http.StatusOK || got.CPU != 2 || got.Memory != 128 {
		t.Fatalf("memory only: %d %+v %s", code, got, msg)
	}
	a := s.call("POST", "/api/vms/"+vm.UUID+"/action", alice, `{"action":"update"}`)
	if a.status != http.StatusBadRequest || string(a.body) != `{"code":400,"message":"Field 'cpu' or 'memory' is required for update"}` {
		t.Fatalf("neither: %d %s", a.status, a.body)
	}
	if got := s.get(alice, vm.UUID); got.CPU != 2 || got.Memory != 128 {
		t.Fatalf("stored: %+v", got)
	}
	// The domain took both changes.
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID)))
	if err != nil {
		t.Fatal(err)
	}
	_, maxMem, _, vcpus, _, err := l.DomainGetInfo(dom)
	if err != nil || vcpus != 2 || maxMem != 128*1024 {
		t.Fatalf("domain: %d vCPUs, %d KiB (%v)", vcpus, maxMem, err)
	}
}

// claim makes the VM busy with action, claimed by process owner, as that process's Update would.
func (s *stack) claim(vmUUID string, action string, owner uuid.UUID) {
	s.t.Helper()
	if _, err := s.Pool.Exec(context.Background(), `UPDATE vms SET task = $2, task_since = now(), task_owner = $3 WHERE uuid = $1`,
		vmUUID, action, owner); err != nil {
		s.t.Fatal(err)
	}
}

// beat sets process owner's last heartbeat to age ago.
func (s *stack) beat(owner uuid.UUID, age time.Duration) {
	s.t.Helper()
	if _, err := s.Pool.Exec(context.Background(), `INSERT INTO replicas (id, heartbeat_at) VALUES ($1, now() - $2 * interval '1 millisecond')
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at`, owner, age.Milliseconds()); err != nil {
		s.t.Fatal(err)
	}
}

// A claim blocks while its process heartbeats and stops blocking once the heartbeat is older than
// three heartbeats (LIMEN_TASK_HEARTBEAT 5 s here: 15 s), not after a fixed quarter of an hour.
func TestTaskClaim_LivesWithItsProcessHeartbeat(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "claimed")
	other := uuid.New()
	s.beat(other, 0)
	s.claim(vm.UUID, "stop", other)
	code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`)
	if code != http.StatusConflict || msg != `{"code":409,"message":"VM is busy: stop in progress"}` {
		t.Fatalf("while its process lives: %d %s", code, msg)
	}
	s.beat(other, 14*time.Second) // within the window: still alive
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusConflict {
		t.Fatalf("a heartbeat 14 s old: %d %s", code, msg)
	}
	s.beat(other, 16*time.Second) // three heartbeats missed: dead
	code, got, msg := s.action(alice, vm.UUID, `{"action":"start"}`)
	if code != http.StatusOK || got.Status != "Running" {
		t.Fatalf("after its process died: %d %+v %s", code, got, msg)
	}
	var task string
	var owner *uuid.UUID
	if err := s.Pool.QueryRow(context.Background(), `SELECT task, task_owner FROM vms WHERE uuid = $1`, vm.UUID).Scan(&task, &owner); err != nil || task != "" || owner != nil {
		t.Fatalf("task after the start: %q %v (%v)", task, owner, err)
	}
}

// A replica starting up releases at once the claims of processes that stopped heartbeating (or whose
// row is gone), and leaves a live process's claims alone.
func TestStartUp_ReleasesDeadProcessesClaims(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	dead, gone, live := s.create(alice, "dead"), s.create(alice, "gone"), s.create(alice, "live")
	deadOwner, goneOwner, liveOwner := uuid.New(), uuid.New(), uuid.New()
	s.beat(deadOwner, time.Hour)
	s.beat(liveOwner, 0)
	s.claim(dead.UUID, "start", deadOwner)
	s.claim(gone.UUID, "delete", goneOwner)
	s.claim(live.UUID, "stop", liveOwner)

	next, err := service.New(context.Background(), s.cfg, s.Pool, s.Conn, s.Log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(next.Close)
	tasks := map[string]string{}
	rows, err := s.Pool.Query(context.Background(), `SELECT name, task FROM vms`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, task string
		if err := rows.Scan(&name, &task); err != nil {
			t.Fatal(err)
		}
		tasks[name] = task
	}
	// A dead delete claim is left to the resync, which releases it here (the domain is still there).
	if tasks["dead"] != "" || tasks["gone"] != "delete" || tasks["live"] != "stop" {
		t.Fatalf("tasks after a replica started: %v", tasks)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var task string
		if err := s.Pool.QueryRow(context.Background(), `SELECT task FROM vms WHERE uuid = $1`, gone.UUID).Scan(&task); err != nil {
			t.Fatal(err)
		}
		if task == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead delete claim of a VM whose domain is there was not released: %q", task)
		}
	}
	if got := s.get(alice, gone.UUID); got.Status != "Stopped" {
		t.Fatalf("the VM whose delete never reached the hypervisor: %+v", got)
	}
	var replicas int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM replicas WHERE id = $1`, deadOwner).Scan(&replicas); err != nil || replicas != 0 {
		t.Fatalf("the dead process is still listed: %d (%v)", replicas, err)
	}
	if code, _, msg := s.action(alice, dead.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start of the released VM: %d %s", code, msg)
	}
}

// hookedRepo and hookedHypervisor run a function right after the resync's first read, rows or
// hypervisor, so real work lands between its two reads.
type hookedRepo struct {
	app.Repository
	after func()
}

func (r hookedRepo) List(ctx context.Context, ownerID int64) ([]*domain.VM, error) {
	vms, err := r.Repository.List(ctx, ownerID)
	r.after()
	return vms, err
}

type hookedHypervisor struct {
	app.Hypervisor
	after func()
}

func (h hookedHypervisor) States(ctx context.Context) (map[uuid.UUID]domain.Status, error) {
	states, err := h.Hypervisor.States(ctx)
	h.after()
	return states, err
}

// The resync over the real database and libvirt, with a create or a start through the API landing
// between its two reads: neither is overwritten by a reading older than itself.
func TestResync_WorkBetweenItsReadsIsNotOverwritten(t *testing.T) {
	s := newStack(t, func(c *service.Config) { c.ResyncInterval = time.Hour }) // only this test's resync
	alice := s.token(1, "user")
	ctx := context.Background()
	installation, err := postgres.Installation(ctx, s.Pool)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libvirt.New(s.Conn.Client, libvirt.Config{DomainType: "qemu", Pool: "limen-vms",
		PoolPath: filepath.Join(libvirttest.Shared(t).ImageDir(), "vms"), Installation: installation.String()})
	if err != nil {
		t.Fatal(err)
	}
	resyncWith := func(work func()) {
		t.Helper()
		var once sync.Once
		after := func() { once.Do(work) }
		resync := app.ResyncHandler{Repo: hookedRepo{postgres.NewVMs(s.Pool, outbox.NewWriter(service.Name), 15*time.Second), after},
			Hypervisor: hookedHypervisor{h, after}, OrphanGrace: 10 * time.Minute, Now: time.Now, Log: s.Log}
		if err := resync.Handle(ctx, app.Resync{}); err != nil {
			t.Fatal(err)
		}
	}

	var created vmJSON
	resyncWith(func() { created = s.create(alice, "born during the resync") })
	if got := s.get(alice, created.UUID); got.Status != "Stopped" || got.StatusReason != "" {
		t.Fatalf("created during the resync: %+v", got)
	}
	if _, err := s.libvirt().DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(created.UUID))); err != nil {
		t.Fatalf("its domain: %v", err)
	}

	resyncWith(func() {
		if code, _, msg := s.action(alice, created.UUID, `{"action":"start"}`); code != http.StatusOK {
			t.Errorf("start: %d %s", code, msg)
		}
	})
	if got := s.get(alice, created.UUID); got.Status != "Running" {
		t.Fatalf("started during the resync: %+v", got)
	}
}
