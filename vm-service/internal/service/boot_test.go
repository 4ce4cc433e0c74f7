package service_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"libvirt.org/go/libvirtxml"

	"limen/libs/contract"
	"limen/libs/testkit/kafkatest"
	"limen/vm-service/internal/service"
)

// definition is a VM's live (flags 0) or persistent (golibvirt.DomainXMLInactive) definition.
func (s *stack) definition(vm string, flags golibvirt.DomainXMLFlags) libvirtxml.Domain {
	s.t.Helper()
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm)))
	if err != nil {
		s.t.Fatal(err)
	}
	desc, err := l.DomainGetXMLDesc(dom, flags)
	if err != nil {
		s.t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(desc); err != nil {
		s.t.Fatal(err)
	}
	return d
}

// bootOf is a definition's <os> boot devices, joined by commas.
func bootOf(d libvirtxml.Domain) string {
	var devs []string
	for _, b := range d.OS.BootDevices {
		devs = append(devs, b.Dev)
	}
	return strings.Join(devs, ",")
}

// mediaOf is the image in a definition's CD-ROM drive, "" when it is empty.
func mediaOf(d libvirtxml.Domain) string {
	for _, disk := range d.Devices.Disks {
		if disk.Device == "cdrom" && disk.Source != nil && disk.Source.File != nil {
			return disk.Source.File.File
		}
	}
	return ""
}

// loadCDROM puts path ("": nothing) into a VM's drive, live too while it runs, as media-service does.
func loadCDROM(l *golibvirt.Libvirt, vm, path string) error {
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm)))
	if err != nil {
		return err
	}
	disk := libvirtxml.DomainDisk{Device: "cdrom", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
		Target: &libvirtxml.DomainDiskTarget{Dev: contract.CDROMTarget, Bus: contract.CDROMBus}, ReadOnly: &libvirtxml.DomainDiskReadOnly{}}
	if path != "" {
		disk.Source = &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: path}}
	}
	desc, err := disk.Marshal()
	if err != nil {
		return err
	}
	flags := golibvirt.DomainDeviceModifyConfig
	if active, err := l.DomainIsActive(dom); err != nil {
		return err
	} else if active == 1 {
		flags |= golibvirt.DomainDeviceModifyLive
	}
	return l.DomainUpdateDeviceFlags(dom, desc, flags)
}

// startDirectly starts a VM's domain behind vm-service's back and waits until vm-service shows it
// Running: only the definition matters to these tests, not how the VM got started.
func (s *stack) startDirectly(token, vm string) {
	s.t.Helper()
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm)))
	if err != nil {
		s.t.Fatal(err)
	}
	if err := l.DomainCreate(dom); err != nil {
		s.t.Fatal(err)
	}
	s.waitStatus(token, vm, "Running", 30*time.Second)
}

// installer is an image for a VM's drive, removed after the test.
func (s *stack) installer() string {
	s.t.Helper()
	iso := filepath.Join(s.Daemon.ImageDir(), "installer-"+uuid.NewString()[:8]+".iso")
	if err := os.WriteFile(iso, make([]byte, 1<<20), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = os.Remove(iso) })
	return iso
}

type bootAnswer struct {
	vmJSON
	BootOrder string `json:"boot_order"`
	Message   string `json:"message"`
}

func (s *stack) setBootOrder(token, vm, order string) (int, bootAnswer, string) {
	s.t.Helper()
	a := s.call("POST", "/api/vms/"+vm+"/boot-order", token, fmt.Sprintf(`{"boot_order":%q}`, order))
	var out bootAnswer
	_ = json.Unmarshal(a.body, &out)
	return a.status, out, string(a.body)
}

func (s *stack) bootOrder(token, vm string) string {
	s.t.Helper()
	a := s.call("GET", "/api/vms/"+vm+"/boot-order", token, "")
	if a.status != http.StatusOK {
		s.t.Fatalf("GET boot-order: %d %s", a.status, a.body)
	}
	var out struct {
		BootOrder string `json:"boot_order"`
	}
	a.decode(s.t, &out)
	return out.BootOrder
}

// The boot order is the persistent definition's: a stopped VM's changes at once, a running VM's
// live definition keeps its order until the next start (and the answer says so). GET, the list and
// the events show it; bad input and other users change nothing.
func TestBootOrder_ChangesThePersistentDefinition_StoppedAndRunning(t *testing.T) {
	s := newStack(t)
	alice, bob, admin := s.token(1, "user"), s.token(2, "user"), s.token(9, "admin")
	vm := s.create(alice, "installer").UUID

	if got := s.bootOrder(alice, vm); got != "hd_cdrom" {
		t.Fatalf("a new VM's boot order: %q", got)
	}
	if got := bootOf(s.definition(vm, golibvirt.DomainXMLInactive)); got != "hd,cdrom" {
		t.Fatalf("a new VM's boot devices: %q", got)
	}

	// Bad input: 400 (or 404 for what the caller may not see), and nothing changes.
	before := s.get(alice, vm)
	cases := []struct {
		token, ref, body string
		status           int
		message          string
	}{
		{alice, vm, `{"boot_order":"floppy"}`, 400, "Invalid boot_order: floppy. Valid values: cdrom, hd, cdrom_hd, hd_cdrom"},
		{alice, vm, `{"boot_order":"HD"}`, 400, "Invalid boot_order: HD. Valid values: cdrom, hd, cdrom_hd, hd_cdrom"},
		{alice, vm, `{}`, 400, "Field 'boot_order' is required"},
		{alice, vm, `{"boot_order":1}`, 400, "Invalid value for field 'boot_order': expected string"},
		{alice, vm, `{"boot_order":`, 400, "Invalid JSON body"},
		{alice, "not-a-ref", `{"boot_order":"hd"}`, 400, "Invalid VM reference: not-a-ref"},
		{alice, uuid.NewString(), `{"boot_order":"hd"}`, 404, "VM not found"},
		{bob, vm, `{"boot_order":"hd"}`, 404, "VM not found"},
	}
	for _, c := range cases {
		a := s.call("POST", "/api/vms/"+c.ref+"/boot-order", c.token, c.body)
		var body struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(a.body, &body)
		if a.status != c.status || body.Code != c.status || body.Message != c.message {
			t.Errorf("POST boot-order %s: %d %s", c.body, a.status, a.body)
		}
	}
	if a := s.call("GET", "/api/vms/"+vm+"/boot-order", bob, ""); a.status != http.StatusNotFound {
		t.Errorf("another user's GET boot-order: %d %s", a.status, a.body)
	}
	if a := s.call("GET", "/api/vms/"+vm+"/boot-order", "", ""); a.status != http.StatusUnauthorized {
		t.Errorf("GET boot-order without a token: %d %s", a.status, a.body)
	}
	if after := s.get(alice, vm); after.UpdatedAt != before.UpdatedAt || s.bootOrder(alice, vm) != "hd_cdrom" ||
		bootOf(s.definition(vm, golibvirt.DomainXMLInactive)) != "hd,cdrom" {
		t.Fatalf("refused requests changed the VM: %+v, definition %q", after, bootOf(s.definition(vm, golibvirt.DomainXMLInactive)))
	}

	// Stopped: the definition has the new order at once, and keeps the rest (the installer in the drive).
	iso := s.installer()
	if err := loadCDROM(s.libvirt(), vm, iso); err != nil {
		t.Fatal(err)
	}
	code, got, raw := s.setBootOrder(alice, vm, "cdrom_hd")
	if code != http.StatusOK || got.BootOrder != "cdrom_hd" || got.Message != "Boot order saved" || got.UUID != vm || got.Status != "Stopped" {
		t.Fatalf("stopped VM: %d %s", code, raw)
	}
	if d := s.definition(vm, golibvirt.DomainXMLInactive); bootOf(d) != "cdrom,hd" || mediaOf(d) != iso {
		t.Fatalf("after cdrom_hd: boot devices %q, media %q", bootOf(d), mediaOf(d))
	}
	if got := s.bootOrder(alice, vm); got != "cdrom_hd" {
		t.Fatalf("GET boot-order after the change: %q", got)
	}
	var list []bootAnswer
	s.call("GET", "/api/vms", alice, "").decode(t, &list)
	if len(list) != 1 || list[0].BootOrder != "cdrom_hd" {
		t.Fatalf("the list: %+v", list)
	}

	// Running: the persistent definition changes, the live one keeps the order the VM started with.
	s.startDirectly(alice, vm)
	if got := bootOf(s.definition(vm, 0)); got != "cdrom,hd" {
		t.Fatalf("started with %q", got)
	}
	code, got, raw = s.setBootOrder(alice, vm, "hd")
	if code != http.StatusOK || got.BootOrder != "hd" || got.Message != "Boot order saved; it applies at the VM's next start" || got.Status != "Running" {
		t.Fatalf("running VM: %d %s", code, raw)
	}
	if persistent, live := bootOf(s.definition(vm, golibvirt.DomainXMLInactive)), bootOf(s.definition(vm, 0)); persistent != "hd" || live != "cdrom,hd" {
		t.Fatalf("running VM after hd: persistent %q, live %q", persistent, live)
	}
	// An admin may change anyone's VM.
	if code, got, raw := s.setBootOrder(admin, vm, "cdrom"); code != http.StatusOK || got.BootOrder != "cdrom" {
		t.Fatalf("admin: %d %s", code, raw)
	}
	if got := bootOf(s.definition(vm, golibvirt.DomainXMLInactive)); got != "cdrom" {
		t.Fatalf("boot devices after the admin's cdrom: %q", got)
	}

	// The events carry the boot order as the answers show it.
	kafkatest.Read(t, s.Broker.ListenAddrs(), topic, func(r *kgo.Record) (bootAnswer, bool) {
		var e struct {
			Subject string     `json:"subject"`
			Data    bootAnswer `json:"data"`
		}
		return e.Data, json.Unmarshal(r.Value, &e) == nil && e.Subject == vm
	}, func(got []bootAnswer) bool {
		return len(got) > 0 && got[0].BootOrder == "hd_cdrom" && got[len(got)-1].BootOrder == "cdrom"
	})
}

// mediaStandIn answers media-service's internal eject as media-service does: it empties the drive
// (live too while the VM runs) and answers 204. While hold is set, each eject waits for it to close.
type mediaStandIn struct {
	t  testing.TB
	lv *golibvirt.Libvirt

	mu      sync.Mutex
	ejected []string
	hold    chan struct{}
	arrived chan string
}

func (m *mediaStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	vm := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, contract.InternalPrefix+"/vms/"), "/media/eject")
	if r.Method != http.MethodPost || r.URL.Path != contract.InternalEjectPath(vm) || r.Header.Get("Authorization") != "Bearer peer-secret" {
		m.t.Errorf("media-service was called with %s %s (%q)", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	m.mu.Lock()
	hold, arrived := m.hold, m.arrived
	m.mu.Unlock()
	if arrived != nil {
		arrived <- vm
	}
	if hold != nil {
		<-hold
	}
	if err := loadCDROM(m.lv, vm, ""); err != nil {
		m.t.Errorf("eject %s: %v", vm, err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	m.mu.Lock()
	m.ejected = append(m.ejected, vm)
	m.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Finalize-install has media-service eject the installer and sets the boot order to the disk, on a
// stopped and on a running VM; it holds the VM's task claim meanwhile; with media-service out of
// reach it is 503 and nothing changes.
func TestFinalizeInstall_EjectsThroughMediaServiceAndBootsFromTheDisk(t *testing.T) {
	media := &mediaStandIn{t: t}
	server := httptest.NewServer(media)
	defer server.Close()
	s := newStack(t, func(cfg *service.Config) { cfg.MediaServiceURL = server.URL })
	media.lv = s.libvirt()
	alice := s.token(1, "user")
	iso := s.installer()

	type finalized struct {
		Message string     `json:"message"`
		VMUUID  string     `json:"vm_uuid"`
		VM      bootAnswer `json:"vm"`
	}
	finalize := func(vm string) (int, finalized, string) {
		a := s.call("POST", "/api/vms/"+vm+"/finalize-install", alice, "")
		var out finalized
		_ = json.Unmarshal(a.body, &out)
		return a.status, out, string(a.body)
	}

	// Stopped, booting from the installer.
	stopped := s.create(alice, "stopped").UUID
	if err := loadCDROM(s.libvirt(), stopped, iso); err != nil {
		t.Fatal(err)
	}
	if code, _, raw := s.setBootOrder(alice, stopped, "cdrom_hd"); code != http.StatusOK {
		t.Fatalf("boot order: %s", raw)
	}
	code, out, raw := finalize(stopped)
	if code != http.StatusOK || out.VMUUID != stopped || out.VM.UUID != stopped || out.VM.BootOrder != "hd" ||
		out.Message != "Installation finalized: CD-ROM ejected, the VM boots from its disk" {
		t.Fatalf("stopped VM: %d %s", code, raw)
	}
	if d := s.definition(stopped, golibvirt.DomainXMLInactive); bootOf(d) != "hd" || mediaOf(d) != "" {
		t.Fatalf("stopped VM after finalize: boot %q, media %q", bootOf(d), mediaOf(d))
	}
	if got := s.bootOrder(alice, stopped); got != "hd" {
		t.Fatalf("GET boot-order after finalize: %q", got)
	}

	// Running, with the installer in the drive: ejected, and the disk alone from the next start.
	running := s.create(alice, "running").UUID
	s.startDirectly(alice, running)
	if err := loadCDROM(s.libvirt(), running, iso); err != nil {
		t.Fatal(err)
	}
	code, out, raw = finalize(running)
	if code != http.StatusOK || out.VM.BootOrder != "hd" || out.VM.Status != "Running" ||
		out.Message != "Installation finalized: CD-ROM ejected; the VM boots from its disk from its next start" {
		t.Fatalf("running VM: %d %s", code, raw)
	}
	persistent, live := s.definition(running, golibvirt.DomainXMLInactive), s.definition(running, 0)
	if bootOf(persistent) != "hd" || mediaOf(persistent) != "" || mediaOf(live) != "" || bootOf(live) != "hd,cdrom" {
		t.Fatalf("running VM after finalize: persistent boot %q media %q, live boot %q media %q",
			bootOf(persistent), mediaOf(persistent), bootOf(live), mediaOf(live))
	}
	media.mu.Lock()
	if strings.Join(media.ejected, ",") != stopped+","+running {
		t.Errorf("media-service ejected %v", media.ejected)
	}
	media.mu.Unlock()
	if a := s.call("POST", "/api/vms/"+running+"/finalize-install", s.token(2, "user"), ""); a.status != http.StatusNotFound {
		t.Errorf("another user's finalize-install: %d %s", a.status, a.body)
	}

	// While a finalize-install runs, the VM is busy for a boot-order change sent meanwhile.
	hold, arrived := make(chan struct{}), make(chan string, 1)
	media.mu.Lock()
	media.hold, media.arrived = hold, arrived
	media.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if code, out, raw := finalize(stopped); code != http.StatusOK || out.VM.BootOrder != "hd" {
			t.Errorf("finalize-install held by media-service: %d %s", code, raw)
		}
	}()
	<-arrived
	code, _, raw = s.setBootOrder(alice, stopped, "cdrom")
	close(hold)
	wg.Wait()
	if code != http.StatusConflict || !strings.Contains(raw, "VM is busy: finalize install in progress") {
		t.Fatalf("boot order during finalize-install: %d %s", code, raw)
	}
	media.mu.Lock()
	media.hold, media.arrived = nil, nil
	media.mu.Unlock()

	// media-service out of reach: 503, the boot order stays, and the VM is free again.
	if code, _, raw := s.setBootOrder(alice, stopped, "cdrom_hd"); code != http.StatusOK {
		t.Fatalf("boot order: %s", raw)
	}
	server.Close()
	a := s.call("POST", "/api/vms/"+stopped+"/finalize-install", alice, "")
	if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), `"message":"Media service unavailable, try again shortly"`) {
		t.Fatalf("media-service down: %d %s", a.status, a.body)
	}
	if got := s.bootOrder(alice, stopped); got != "cdrom_hd" || bootOf(s.definition(stopped, golibvirt.DomainXMLInactive)) != "cdrom,hd" {
		t.Fatalf("media-service down changed the boot order: %q", got)
	}
	if code, _, raw := s.setBootOrder(alice, stopped, "hd"); code != http.StatusOK {
		t.Fatalf("the VM is still claimed after media-service failed: %s", raw)
	}
}

// auth-service's internal routes for its admin list: every id asked for answers (zeros for none), ids
// are checked, and the token is required.
func TestInternal_OwnersUsageAndOwnerVMs(t *testing.T) {
	s := newStack(t)
	first := s.create(s.token(1, "user"), "one")
	second := s.create(s.token(1, "user"), "two")
	s.create(s.token(2, "user"), "other")

	a := s.call("GET", "/internal/owners/usage?ids=1,2,3", "peer-secret", "")
	var usage contract.OwnersUsage
	a.decode(t, &usage)
	want := contract.OwnersUsage{"1": {VMs: 2, CPU: 2, Memory: 128}, "2": {VMs: 1, CPU: 1, Memory: 64}, "3": {}}
	if a.status != http.StatusOK || fmt.Sprint(usage) != fmt.Sprint(want) {
		t.Fatalf("usage: %d %s", a.status, a.body)
	}
	ids := make([]int64, contract.MaxOwnersPerUsageCall)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	a = s.call("GET", contract.InternalOwnersUsagePath(ids), "peer-secret", "")
	usage = nil
	a.decode(t, &usage)
	if a.status != http.StatusOK || len(usage) != contract.MaxOwnersPerUsageCall || usage["200"] != (contract.OwnerUsage{}) || usage["1"].VMs != 2 {
		t.Fatalf("%d ids: %d, %d entries", len(ids), a.status, len(usage))
	}

	var vms []contract.InternalVM
	a = s.call("GET", contract.InternalOwnerVMsPath(1), "peer-secret", "")
	a.decode(t, &vms)
	if a.status != http.StatusOK || len(vms) != 2 || vms[0].UUID != first.UUID || vms[1].UUID != second.UUID ||
		vms[0].OwnerID != 1 || vms[0].CPU != 1 || vms[0].Memory != 64 || vms[0].Status != "Stopped" || vms[0].Host != "test-host" {
		t.Fatalf("user 1's VMs: %d %s", a.status, a.body)
	}
	if a := s.call("GET", contract.InternalOwnerVMsPath(3), "peer-secret", ""); a.status != http.StatusOK || string(a.body) != "[]" {
		t.Fatalf("a user without VMs: %d %s", a.status, a.body)
	}

	cases := []struct {
		path, token string
		status      int
		message     string
	}{
		{"/internal/owners/usage?ids=1,x", "peer-secret", 400, "Invalid user id: x"},
		{"/internal/owners/usage?ids=0", "peer-secret", 400, "Invalid user id: 0"},
		{"/internal/owners/usage?ids=1,,2", "peer-secret", 400, "Invalid user id: "},
		{"/internal/owners/usage?ids=-4", "peer-secret", 400, "Invalid user id: -4"},
		{"/internal/owners/usage?ids=", "peer-secret", 400, "Query 'ids' is required: user ids separated by commas"},
		{"/internal/owners/usage", "peer-secret", 400, "Query 'ids' is required: user ids separated by commas"},
		{contract.InternalOwnersUsagePath(append(ids, 201)), "peer-secret", 400, "At most 200 user ids per call"},
		{"/internal/owners/usage?ids=1", "", 401, "Authentication required"},
		{"/internal/owners/usage?ids=1", s.token(1, "admin"), 401, "Authentication required"},
		{"/internal/owners/x/vms", "peer-secret", 400, "Invalid user id: x"},
		{"/internal/owners/1/vms", "", 401, "Authentication required"},
		{"/internal/owners/1/vms", "wrong-secret", 401, "Authentication required"},
	}
	for _, c := range cases {
		a := s.call("GET", c.path, c.token, "")
		var body struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(a.body, &body)
		if a.status != c.status || body.Code != c.status || body.Message != c.message {
			t.Errorf("GET %.80s: %d %s", c.path, a.status, a.body)
		}
	}
}
