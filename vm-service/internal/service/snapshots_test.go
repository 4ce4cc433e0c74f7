package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"libvirt.org/go/libvirtxml"

	"limen/libs/testkit/apidoc"
	"limen/libs/testkit/kafkatest"
	"limen/libs/testkit/testguest"
	"limen/vm-service/internal/service"
)

// bootGuest creates a VM of memoryMiB whose domain boots the test guest, starts it through the API
// (a quick action: 200 with the VM itself) and waits for the guest's shell, whose console it returns
// (closed after the test).
func (s *stack) bootGuest(token, name string, memoryMiB int, opts testguest.Options) (vmJSON, *testguest.Console) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img, err := testguest.Build(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	a := s.call("POST", "/api/vms", token, fmt.Sprintf(`{"name":%q,"cpu":1,"memory":%d,"os_type":"other"}`, name, memoryMiB))
	if a.status != http.StatusCreated {
		s.t.Fatalf("create: %d %s", a.status, a.body)
	}
	var vm vmJSON
	a.decode(s.t, &vm)
	def := s.definition(vm.UUID, golibvirt.DomainXMLInactive)
	testguest.Attach(&def, img, s.consolePath(vm.UUID), opts)
	withGuest, err := def.Marshal()
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.libvirt().DomainDefineXML(withGuest); err != nil {
		s.t.Fatal(err)
	}

	a = s.call("POST", "/api/vms/"+vm.UUID+"/action", token, `{"action":"start"}`)
	var started map[string]any
	a.decode(s.t, &started)
	if a.status != http.StatusOK || started["message"] != "VM started" || started["status"] != "Running" ||
		started["uuid"] != vm.UUID || started["name"] != name || started["vm"] != nil || started["task"] != nil {
		s.t.Fatalf("start: %d %s", a.status, a.body)
	}
	return vm, s.console(vm.UUID)
}

// consolePath is where a guest VM's serial console listens.
func (s *stack) consolePath(vm string) string { return filepath.Join(s.Daemon.ImageDir(), vm+".sock") }

// console connects to a guest VM's serial console (again: a restore starts a new QEMU, whose console
// is a new socket) and waits for its shell.
func (s *stack) console(vm string) *testguest.Console {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := testguest.Dial(ctx, s.consolePath(vm))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	if err := c.WaitUp(ctx); err != nil {
		s.t.Fatal(err)
	}
	return c
}

// inGuest runs a shell command in the guest and answers what it printed; a failing command fails t.
func inGuest(t testing.TB, c *testguest.Console, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, status, err := c.Run(ctx, command)
	if err != nil || status != 0 {
		t.Fatalf("%q in the guest: status %d, %v: %s", command, status, err, out)
	}
	return out
}

// uptime is the guest's clock, in seconds since it booted.
func uptime(t testing.TB, c *testguest.Console) float64 {
	t.Helper()
	fields := strings.Fields(inGuest(t, c, "cat /proc/uptime"))
	if len(fields) == 0 {
		t.Fatal("no uptime")
	}
	up, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

type snapshotJSON struct {
	ID          int64     `json:"id"`
	VMID        int64     `json:"vm_id"`
	VMUUID      string    `json:"vm_uuid"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// snapshot takes a snapshot of vm (uuid or id) with body, which must succeed.
func (s *stack) snapshot(token, vm, body string) snapshotJSON {
	s.t.Helper()
	a := s.call("POST", "/api/vms/"+vm+"/snapshots", token, body)
	if a.status != http.StatusCreated {
		s.t.Fatalf("snapshot %s: %d %s", body, a.status, a.body)
	}
	var snap snapshotJSON
	a.decode(s.t, &snap)
	return snap
}

func (s *stack) snapshots(token, vm string) []snapshotJSON {
	s.t.Helper()
	a := s.call("GET", "/api/vms/"+vm+"/snapshots", token, "")
	if a.status != http.StatusOK {
		s.t.Fatalf("list snapshots: %d %s", a.status, a.body)
	}
	var list []snapshotJSON
	a.decode(s.t, &list)
	return list
}

func names(list []snapshotJSON) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.Name
	}
	return out
}

func (s *stack) restore(token string, id int64) answer {
	s.t.Helper()
	return s.call("POST", fmt.Sprintf("/api/snapshots/%d/restore", id), token, "")
}

func (s *stack) deleteSnapshot(token string, id int64) answer {
	s.t.Helper()
	return s.call("DELETE", fmt.Sprintf("/api/snapshots/%d", id), token, "")
}

// done asserts the answer of a restore or deletion of snapshot id.
func done(t testing.TB, a answer, verb string, id int64) {
	t.Helper()
	if want := fmt.Sprintf(`{"message":"Snapshot %s successfully","snapshot_id":%d}`, verb, id); a.status != http.StatusOK || string(a.body) != want {
		t.Fatalf("%s: %d %s, want %s", verb, a.status, a.body, want)
	}
}

// refused asserts a 4xx with exactly the contract's error body.
func refused(t testing.TB, what string, a answer, status int, message string) {
	t.Helper()
	var body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(a.body, &body); err != nil || a.status != status || body.Code != status || body.Message != message {
		t.Fatalf("%s: %d %s, want %d %q", what, a.status, a.body, status, message)
	}
}

// machineSnapshots are the names of the snapshots libvirt has of vm.
func (s *stack) machineSnapshots(vm string) []string {
	s.t.Helper()
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm)))
	if err != nil {
		s.t.Fatal(err)
	}
	snaps, _, err := l.DomainListAllSnapshots(dom, 1, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, snap := range snaps {
		out = append(out, snap.Name)
	}
	slices.Sort(out)
	return out
}

// machineName is libvirt's name of snapshot id.
func (s *stack) machineName(id int64) string {
	s.t.Helper()
	var name string
	if err := s.Pool.QueryRow(context.Background(), `SELECT machine_name FROM snapshots WHERE id = $1`, id).Scan(&name); err != nil {
		s.t.Fatal(err)
	}
	return name
}

func (s *stack) snapshotRows() int {
	s.t.Helper()
	var n int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM snapshots`).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// snapshotEvent reads the topic until the event of type on vm's subject about snapshot id, and
// answers its data and sequence.
func (s *stack) snapshotEvent(vm, eventType string, id int64) (snapshotJSON, int64) {
	s.t.Helper()
	type announced struct {
		event
		snapshot snapshotJSON
	}
	seen := kafkatest.Read(s.t, s.Broker.ListenAddrs(), topic, func(r *kgo.Record) (announced, bool) {
		var e announced
		if err := json.Unmarshal(r.Value, &e.event); err != nil {
			s.t.Fatalf("record %s: %v", r.Value, err)
		}
		e.Key = string(r.Key)
		ok := e.Subject == vm && e.Type == eventType && json.Unmarshal(e.Data, &e.snapshot) == nil && e.snapshot.ID == id
		return e, ok
	}, func(kept []announced) bool { return len(kept) > 0 })
	e := seen[0]
	if e.Key != vm || e.Sequence <= 0 || e.OwnerID <= 0 {
		s.t.Fatalf("%s event: key %q, sequence %d, owner %d", eventType, e.Key, e.Sequence, e.OwnerID)
	}
	return e.snapshot, e.Sequence
}

// A running guest's snapshot holds its memory: restored, the guest runs again from that instant (a
// file it wrote in memory afterwards is gone, one it deleted is back, its clock is back); a paused
// one's comes back paused. Deleting a snapshot leaves the running VM alone, even after its CD-ROM
// changed (which libvirt alone refuses).
func TestSnapshot_RunningGuest_RestoreBringsItBackAtThatInstant(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm, c := s.bootGuest(alice, "guest", 128, testguest.Options{})
	inGuest(t, c, "echo before > /tmp/marker")

	snap := s.snapshot(alice, vm.UUID, `{"name":"before upgrade","description":"the marker is written"}`)
	if snap.Name != "before upgrade" || snap.Description != "the marker is written" || snap.State != "Running" ||
		snap.VMUUID != vm.UUID || snap.VMID != vm.ID || snap.ID <= 0 || snap.CreatedAt.IsZero() {
		t.Fatalf("snapshot: %+v", snap)
	}
	if got := s.get(alice, vm.UUID); got.Status != "Running" || got.Task != nil {
		t.Fatalf("VM after the snapshot: %+v", got)
	}
	if list := s.snapshots(alice, vm.UUID); len(list) != 1 || list[0] != snap {
		t.Fatalf("list: %+v", list)
	}
	inGuest(t, c, "rm /tmp/marker; echo after > /tmp/after; sleep 2")
	beforeRestore := uptime(t, c)

	done(t, s.restore(alice, snap.ID), "restored", snap.ID)
	if got := s.get(alice, vm.UUID); got.Status != "Running" || got.Task != nil {
		t.Fatalf("VM after the restore: %+v", got)
	}
	c = s.console(vm.UUID)
	if files := inGuest(t, c, "ls /tmp"); !strings.Contains(files, "marker") || strings.Contains(files, "after") {
		t.Fatalf("the guest's files after the restore: %q", files)
	}
	if marker := inGuest(t, c, "cat /tmp/marker"); marker != "before" {
		t.Fatalf("marker: %q", marker)
	}
	if restored := uptime(t, c); restored >= beforeRestore {
		t.Fatalf("the guest's clock is at %.2f s, it was at %.2f s before the restore", restored, beforeRestore)
	}
	// The restore's task shows, then the VM as it now is.
	s.eventsUntil(vm.UUID, func(seen []vmJSON) bool {
		restoring := slices.IndexFunc(seen, func(v vmJSON) bool { return v.Task != nil && v.Task.Action == "snapshot_restore" })
		last := seen[len(seen)-1]
		return restoring >= 0 && restoring < len(seen)-1 && last.Task == nil && last.Status == "Running"
	})
	if announced, _ := s.snapshotEvent(vm.UUID, "limen.vm.snapshot.updated", snap.ID); announced != snap {
		t.Fatalf("announced %+v, took %+v", announced, snap)
	}

	// Paused: the snapshot holds the paused machine, and a restore brings it back paused.
	if code, got, msg := s.action(alice, vm.UUID, `{"action":"pause"}`); code != http.StatusOK || got.Status != "Paused" {
		t.Fatalf("pause: %d %+v %s", code, got, msg)
	}
	paused := s.snapshot(alice, vm.UUID, `{"name":"paused"}`)
	if paused.State != "Paused" || s.get(alice, vm.UUID).Status != "Paused" {
		t.Fatalf("paused snapshot: %+v", paused)
	}
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"resume"}`); code != http.StatusOK {
		t.Fatalf("resume: %d %s", code, msg)
	}
	inGuest(t, c, "echo later > /tmp/later")
	done(t, s.restore(alice, paused.ID), "restored", paused.ID)
	if got := s.get(alice, vm.UUID); got.Status != "Paused" || got.Task != nil {
		t.Fatalf("VM after restoring the paused snapshot: %+v", got)
	}
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"resume"}`); code != http.StatusOK {
		t.Fatalf("resume after the restore: %d %s", code, msg)
	}
	c = s.console(vm.UUID)
	if files := inGuest(t, c, "ls /tmp"); !strings.Contains(files, "marker") || strings.Contains(files, "later") {
		t.Fatalf("the guest's files after restoring the paused snapshot: %q", files)
	}

	// A deletion while the VM runs with another CD-ROM than the snapshot saw.
	if err := loadCDROM(s.libvirt(), vm.UUID, s.installer()); err != nil {
		t.Fatal(err)
	}
	done(t, s.deleteSnapshot(alice, snap.ID), "deleted", snap.ID)
	if list := s.snapshots(alice, vm.UUID); len(list) != 1 || list[0].ID != paused.ID {
		t.Fatalf("list after the deletion: %+v", list)
	}
	if left := s.machineSnapshots(vm.UUID); !slices.Equal(left, []string{s.machineName(paused.ID)}) {
		t.Fatalf("libvirt keeps %v", left)
	}
	if got := s.get(alice, vm.UUID); got.Status != "Running" || got.Task != nil {
		t.Fatalf("VM after the deletion: %+v", got)
	}
	inGuest(t, c, "test -f /tmp/marker")
	if gone, _ := s.snapshotEvent(vm.UUID, "limen.vm.snapshot.deleted", snap.ID); gone.Name != snap.Name {
		t.Fatalf("deletion announced as %+v", gone)
	}
}

// A stopped VM's snapshot holds its disk and definition: the restore puts CPU, memory, CD-ROM and boot
// order back and the VM shows them; restoring it while the VM runs powers it off. A restore libvirt
// fails is a 500 that changes nothing.
func TestSnapshot_StoppedVM_RestorePutsTheDefinitionBack(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "plain")
	snap := s.snapshot(alice, vm.UUID, `{"name":"clean"}`)
	if snap.State != "Stopped" || snap.Description != "" {
		t.Fatalf("snapshot: %+v", snap)
	}

	if code, _, msg := s.action(alice, vm.UUID, `{"action":"update","cpu":2,"memory":128}`); code != http.StatusOK {
		t.Fatalf("update: %d %s", code, msg)
	}
	if err := loadCDROM(s.libvirt(), vm.UUID, s.installer()); err != nil {
		t.Fatal(err)
	}
	if code, _, msg := s.setBootOrder(alice, vm.UUID, "cdrom"); code != http.StatusOK {
		t.Fatalf("boot order: %d %s", code, msg)
	}

	done(t, s.restore(alice, snap.ID), "restored", snap.ID)
	if got := s.get(alice, vm.UUID); got.CPU != 1 || got.Memory != 64 || got.Status != "Stopped" || got.Task != nil {
		t.Fatalf("VM after the restore: %+v", got)
	}
	if order := s.bootOrder(alice, vm.UUID); order != "hd_cdrom" {
		t.Fatalf("boot order after the restore: %s", order)
	}
	d := s.definition(vm.UUID, golibvirt.DomainXMLInactive)
	if d.VCPU.Value != 1 || d.Memory.Value != 64*1024 || mediaOf(d) != "" || bootOf(d) != "hd,cdrom" {
		t.Fatalf("definition after the restore: %d vCPU, %d %s, media %q, boot %s", d.VCPU.Value, d.Memory.Value, d.Memory.Unit, mediaOf(d), bootOf(d))
	}

	if code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, msg)
	}
	done(t, s.restore(alice, snap.ID), "restored", snap.ID)
	if got := s.get(alice, vm.UUID); got.Status != "Stopped" || got.Task != nil {
		t.Fatalf("VM after restoring a stopped snapshot while it ran: %+v", got)
	}

	// The snapshot's data removed from the disk behind libvirt's back: libvirt's revert fails.
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"update","cpu":2}`); code != http.StatusOK {
		t.Fatalf("update: %d %s", code, msg)
	}
	disk := filepath.Join(s.cfg.StoragePath, vm.UUID+".qcow2")
	if out, err := exec.Command("qemu-img", "snapshot", "-d", s.machineName(snap.ID), disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	before := s.get(alice, vm.UUID)
	req := httptest.NewRequest("POST", fmt.Sprintf("/api/snapshots/%d/restore", snap.ID), nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	resp, err := s.svc.App().Test(req, 30_000)
	if err != nil {
		t.Fatal(err)
	}
	apidoc.Check(t, req, resp)
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusInternalServerError ||
		body["message"] != "Internal server error" || resp.Header.Get("X-Request-ID") == "" {
		t.Fatalf("failed restore: %d %v %v", resp.StatusCode, body, err)
	}
	if got := s.get(alice, vm.UUID); got.CPU != 2 || got.Memory != 64 || got.Status != "Stopped" || got.Task != nil || got.Status != before.Status {
		t.Fatalf("VM after the failed restore: %+v", got)
	}
	if d := s.definition(vm.UUID, golibvirt.DomainXMLInactive); d.VCPU.Value != 2 {
		t.Fatalf("definition after the failed restore: %d vCPU", d.VCPU.Value)
	}
}

// Names, the limit, ownership and the VM's claim: every refusal is the contract's 4xx and changes
// nothing; of parallel requests for one name exactly one gets it.
func TestSnapshot_Rules_NamesLimitOwnershipClaim(t *testing.T) {
	s := newStack(t, func(c *service.Config) { c.SnapshotsPerVM = 2 })
	alice, bob, admin := s.token(1, "user"), s.token(2, "user"), s.token(3, "admin")
	vm := s.get(alice, s.create(alice, "rules").UUID)
	const nameRule = "Field 'name' must be 1-64 characters of letters, digits, spaces, '_', '.' or '-'"
	for body, want := range map[string]string{
		"":                            "Snapshot name is required",
		`{}`:                          "Snapshot name is required",
		`{"name":""}`:                 "Snapshot name is required",
		`{"name":"   "}`:              "Snapshot name is required",
		`{"description":"no name"}`:   "Snapshot name is required",
		`{"name":"a/b"}`:              nameRule,
		`{"name":"../../etc/passwd"}`: nameRule,
		`{"name":"x\u0000y"}`:         nameRule,
		`{"name":"` + strings.Repeat("n", 65) + `"}`:                      nameRule,
		`{"name":"ok","description":"` + strings.Repeat("d", 1001) + `"}`: "Field 'description' must be at most 1000 characters of text",
		`{"name":"ok","description":"\u0000"}`:                            "Field 'description' must be at most 1000 characters of text",
		`{"name":5}`:                                                      "Invalid value for field 'name': expected string",
	} {
		refused(t, body, s.call("POST", "/api/vms/"+vm.UUID+"/snapshots", alice, body), http.StatusBadRequest, want)
	}
	if n := s.snapshotRows(); n != 0 {
		t.Fatalf("%d snapshot rows after refusals", n)
	}
	if got := s.get(alice, vm.UUID); got.UpdatedAt != vm.UpdatedAt || got.Task != nil {
		t.Fatalf("VM changed by refusals: %+v", got)
	}

	one := s.snapshot(alice, vm.UUID, `{"name":"one"}`)
	refused(t, "duplicate", s.call("POST", "/api/vms/"+vm.UUID+"/snapshots", alice, `{"name":" one "}`), http.StatusConflict, "Snapshot name already exists")
	two := s.snapshot(alice, strconv.FormatInt(vm.ID, 10), `{"name":"two"}`)
	refused(t, "over the limit", s.call("POST", "/api/vms/"+vm.UUID+"/snapshots", alice, `{"name":"three"}`),
		http.StatusConflict, "Snapshot limit reached: at most 2 per VM")
	if n := s.snapshotRows(); n != 2 {
		t.Fatalf("%d snapshot rows", n)
	}

	// Another user's VM and snapshots are not there; an admin's are everyone's.
	refused(t, "bob lists", s.call("GET", "/api/vms/"+vm.UUID+"/snapshots", bob, ""), http.StatusNotFound, "VM not found")
	refused(t, "bob snapshots", s.call("POST", "/api/vms/"+vm.UUID+"/snapshots", bob, `{"name":"mine"}`), http.StatusNotFound, "VM not found")
	refused(t, "bob restores", s.restore(bob, one.ID), http.StatusNotFound, "Snapshot not found")
	refused(t, "bob deletes", s.deleteSnapshot(bob, one.ID), http.StatusNotFound, "Snapshot not found")
	refused(t, "unknown", s.restore(alice, two.ID+1000), http.StatusNotFound, "Snapshot not found")
	refused(t, "unknown VM", s.call("GET", "/api/vms/"+uuid.NewString()+"/snapshots", alice, ""), http.StatusNotFound, "VM not found")
	refused(t, "bad ref", s.call("GET", "/api/vms/nope/snapshots", alice, ""), http.StatusBadRequest, "Invalid VM reference: nope")
	refused(t, "bad id", s.call("POST", "/api/snapshots/abc/restore", alice, ""), http.StatusBadRequest, "Invalid snapshot id: abc")
	refused(t, "zero id", s.call("DELETE", "/api/snapshots/0", alice, ""), http.StatusBadRequest, "Invalid snapshot id: 0")
	refused(t, "no token", s.call("GET", "/api/vms/"+vm.UUID+"/snapshots", "", ""), http.StatusUnauthorized, "Authentication required")
	if list := s.snapshots(admin, vm.UUID); !slices.Equal(names(list), []string{"one", "two"}) {
		t.Fatalf("admin's list: %+v", list)
	}

	// The VM's claim: while another process's delete runs, snapshots are refused like actions, and a
	// snapshot's claim refuses actions.
	other := uuid.New()
	s.beat(other, 0)
	s.claim(vm.UUID, "delete", other)
	refused(t, "restore during a delete", s.restore(alice, one.ID), http.StatusConflict, "VM is busy: delete in progress")
	refused(t, "deletion during a delete", s.deleteSnapshot(alice, one.ID), http.StatusConflict, "VM is busy: delete in progress")
	s.claim(vm.UUID, "snapshot", other)
	code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`)
	refused(t, "start during a snapshot", answer{status: code, body: []byte(msg)}, http.StatusConflict, "VM is busy: snapshot in progress")
	s.claim(vm.UUID, "", other)
	if n := s.snapshotRows(); n != 2 {
		t.Fatalf("%d snapshot rows after refusals", n)
	}

	// Parallel requests for one name on one VM: one takes it, each other one meets its claim or its name.
	race := s.create(alice, "race")
	const parallel = 6
	answers := make([]answer, parallel)
	var ready, wg sync.WaitGroup
	ready.Add(1)
	for i := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Wait()
			answers[i] = s.call("POST", "/api/vms/"+race.UUID+"/snapshots", alice, `{"name":"same"}`)
		}()
	}
	ready.Done()
	wg.Wait()
	created := 0
	for _, a := range answers {
		switch {
		case a.status == http.StatusCreated:
			created++
		case a.status == http.StatusConflict && (strings.Contains(string(a.body), "VM is busy: snapshot in progress") ||
			strings.Contains(string(a.body), "Snapshot name already exists")):
		default:
			t.Fatalf("parallel snapshot: %d %s", a.status, a.body)
		}
	}
	if list := s.snapshots(alice, race.UUID); created != 1 || len(list) != 1 || len(s.machineSnapshots(race.UUID)) != 1 {
		t.Fatalf("%d created, listed %+v, libvirt has %v", created, list, s.machineSnapshots(race.UUID))
	}
}

// A VM's deletion takes its snapshots along: records, libvirt's records and their data (the disk).
func TestSnapshot_GoWithTheirVM(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "doomed")
	stopped := s.snapshot(alice, vm.UUID, `{"name":"stopped"}`)
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatalf("start: %d %s", code, msg)
	}
	if running := s.snapshot(alice, vm.UUID, `{"name":"running"}`); running.State != "Running" {
		t.Fatalf("running snapshot: %+v", running)
	}
	if a := s.call("DELETE", "/api/vms/"+vm.UUID, alice, ""); a.status != http.StatusOK {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	if n := s.snapshotRows(); n != 0 {
		t.Fatalf("%d snapshot rows after the VM's deletion", n)
	}
	l := s.libvirt()
	if _, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID))); !golibvirt.IsNotFound(err) {
		t.Fatalf("domain: %v", err)
	}
	pool, err := l.StoragePoolLookupByName("limen-vms")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.StorageVolLookupByName(pool, vm.UUID+".qcow2"); err == nil {
		t.Fatal("the disk, with the snapshots' data, is still there")
	}
	refused(t, "list", s.call("GET", "/api/vms/"+vm.UUID+"/snapshots", alice, ""), http.StatusNotFound, "VM not found")
	refused(t, "restore", s.restore(alice, stopped.ID), http.StatusNotFound, "Snapshot not found")
}

// The resync removes (and announces) the record of a snapshot deleted behind LIMEN's back, and
// settles records whose taking was cut off: taken when libvirt has the snapshot, dropped when not.
func TestSnapshot_ResyncSettlesWhatTheHypervisorLost(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "resynced")
	lost := s.snapshot(alice, vm.UUID, `{"name":"lost"}`)
	kept := s.snapshot(alice, vm.UUID, `{"name":"kept"}`)

	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID)))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := l.DomainSnapshotLookupByName(dom, s.machineName(lost.ID), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DomainSnapshotDelete(snap, 0); err != nil {
		t.Fatal(err)
	}
	// Two takings cut off by a crash between the record and its end: libvirt took one of them.
	def, err := (&libvirtxml.DomainSnapshot{Name: "limen-cut-taken"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.DomainSnapshotCreateXML(dom, def, 0); err != nil {
		t.Fatal(err)
	}
	for name, machine := range map[string]string{"cut taken": "limen-cut-taken", "cut lost": "limen-cut-lost"} {
		if _, err := s.Pool.Exec(context.Background(), `INSERT INTO snapshots (vm_id, name, state, cpu, memory_mib, machine_name,
			taken, created_at, updated_at) VALUES ($1, $2, 'Stopped', 1, 64, $3, false, now(), now())`, vm.ID, name, machine); err != nil {
			t.Fatal(err)
		}
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		list := s.snapshots(alice, vm.UUID)
		if slices.Equal(names(list), []string{"kept", "cut taken"}) && s.snapshotRows() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the resync: %+v (%d rows)", list, s.snapshotRows())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if gone, _ := s.snapshotEvent(vm.UUID, "limen.vm.snapshot.deleted", lost.ID); gone.Name != "lost" {
		t.Fatalf("deletion announced as %+v", gone)
	}
	if _, seq := s.snapshotEvent(vm.UUID, "limen.vm.snapshot.updated", kept.ID); seq <= 0 {
		t.Fatal("no sequence")
	}
	if got := s.get(alice, vm.UUID); got.Status != "Stopped" || got.Task != nil {
		t.Fatalf("VM after the resync: %+v", got)
	}
}
