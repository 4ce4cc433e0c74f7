package service_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/vm-service/internal/adapters/procfs"
	"limen/vm-service/internal/service"
)

// registerProcess records process owner as running as p, with a fresh heartbeat.
func (s *stack) registerProcess(owner uuid.UUID, p procfs.Process) {
	s.t.Helper()
	if _, err := s.Pool.Exec(context.Background(), `INSERT INTO replicas (id, host, boot_id, pid_ns, pid, proc_start)
		VALUES ($1, 'test-host', $2, $3, $4, $5)`, owner, p.BootID, p.Namespace, p.PID, p.Start); err != nil {
		s.t.Fatal(err)
	}
}

// A vm-service killed mid-action and replaced on the same machine: its heartbeat is still fresh, but
// its process is gone, so the replacement frees its VMs at once instead of after the lease. A process
// still running on this machine, and one /proc cannot judge (another machine's, even under the same
// host name), keep their claims while they heartbeat. A dead process's delete is finished, not turned
// into an Error VM.
func TestStartUp_ReleasesAtOnceTheClaimsOfProcessesGoneFromThisMachine(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	self, err := procfs.Self()
	if err != nil {
		t.Skipf("no Linux /proc: %v", err)
	}
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	gone := self
	gone.PID, gone.Start = exited.Process.Pid, 1
	reused := self
	reused.Start++ // this PID, but a process started at another time: the recorded one is gone
	elsewhere := gone
	elsewhere.BootID = "another-machine"
	procs := map[string]procfs.Process{"killed": gone, "reused": reused, "running": self, "elsewhere": elsewhere}
	owners := map[string]uuid.UUID{}
	for name, p := range procs {
		owners[name] = uuid.New()
		s.registerProcess(owners[name], p)
		s.claim(s.create(alice, name).UUID, "start", owners[name])
	}
	// A process that died (its heartbeat an hour old) after its delete removed the domain and disk,
	// before the record went: the claim is left for the resync to finish the delete.
	stale := uuid.New()
	s.beat(stale, time.Hour)
	deleted := s.create(alice, "deleted")
	s.claim(deleted.UUID, "delete", stale)
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(deleted.UUID)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DomainUndefine(dom); err != nil {
		t.Fatal(err)
	}
	if pool, err := l.StoragePoolLookupByName("limen-vms"); err == nil {
		if vol, err := l.StorageVolLookupByName(pool, deleted.UUID+".qcow2"); err == nil {
			_ = l.StorageVolDelete(vol, 0)
		}
	}

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
	if tasks["killed"] != "" || tasks["reused"] != "" || tasks["running"] != "start" || tasks["elsewhere"] != "start" {
		t.Fatalf("tasks after a replica started: %v", tasks)
	}
	for name, want := range map[string]int{"killed": 0, "reused": 0, "running": 1, "elsewhere": 1} {
		var n int
		if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM replicas WHERE id = $1`, owners[name]).Scan(&n); err != nil || n != want {
			t.Errorf("replica %s listed %d times (%v); want %d", name, n, err, want)
		}
	}
	// The resync finishes the delete: the record goes, it does not become an Error VM (as it did when
	// the start-up released the claim first).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a := s.call("GET", "/api/vms/"+deleted.UUID, alice, "")
		if a.status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VM whose delete removed its domain: %d %s", a.status, a.body)
		}
	}
	// The replica records which process it is.
	var pid int
	var bootID string
	if err := s.Pool.QueryRow(context.Background(), `SELECT pid, boot_id FROM replicas WHERE id NOT IN ($1, $2)
		ORDER BY started_at DESC LIMIT 1`, owners["running"], owners["elsewhere"]).Scan(&pid, &bootID); err != nil || pid != os.Getpid() || bootID != self.BootID {
		t.Fatalf("this replica's row: pid %d boot %q (%v)", pid, bootID, err)
	}
}

// After a claim lapsed with its process, the status recorded may be stale: the machine's state
// decides, and a start of a running VM or a force stop of a stopped one is the contract's 409, not a
// 500 from libvirt ("domain is already running", "domain is not running").
func TestPower_StaleStatusAfterALapsedClaim_IsThe409OfTheMachinesState(t *testing.T) {
	s := newStack(t, func(c *service.Config) { c.ResyncInterval = time.Hour }) // no resync repairs it first
	alice := s.token(1, "user")
	ctx := context.Background()
	dead := uuid.New()
	s.beat(dead, time.Hour)

	vm := s.create(alice, "stale")
	if _, err := s.Pool.Exec(ctx, `UPDATE vms SET status = 'Running' WHERE uuid = $1`, vm.UUID); err != nil {
		t.Fatal(err)
	}
	s.claim(vm.UUID, "start", dead) // killed right after starting it, as it believed
	code, _, msg := s.action(alice, vm.UUID, `{"action":"force_stop"}`)
	if code != http.StatusConflict || msg != `{"code":409,"message":"Cannot force stop VM: VM is Stopped"}` {
		t.Fatalf("force stop of a stopped VM recorded Running: %d %s", code, msg)
	}
	if got := s.get(alice, vm.UUID); got.Status != "Stopped" {
		t.Fatalf("recorded after the refusal: %+v", got)
	}

	if code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, msg)
	}
	time.Sleep(500 * time.Millisecond) // the start's lifecycle events are applied
	if _, err := s.Pool.Exec(ctx, `UPDATE vms SET status = 'Stopped' WHERE uuid = $1`, vm.UUID); err != nil {
		t.Fatal(err)
	}
	s.claim(vm.UUID, "force_stop", dead)
	code, _, msg = s.action(alice, vm.UUID, `{"action":"start"}`)
	if code != http.StatusConflict || msg != `{"code":409,"message":"Cannot start VM: VM is Running"}` {
		t.Fatalf("start of a running VM recorded Stopped: %d %s", code, msg)
	}
	if got := s.get(alice, vm.UUID); got.Status != "Running" {
		t.Fatalf("recorded after the refusal: %+v", got)
	}
}
