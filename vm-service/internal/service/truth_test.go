package service_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kfake"

	"limen/libs/testkit/libvirttest"
	"limen/vm-service/internal/adapters/libvirt"
	"limen/vm-service/internal/adapters/postgres"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/service"
)

func TestOwnership_UsersSeeTheirOwn_AdminsAll_PeersThroughTheInternalAPI(t *testing.T) {
	s := newStack(t)
	alice, bob, admin := s.token(1, "user"), s.token(2, "user"), s.token(3, "admin")
	vm := s.create(alice, "mine")
	s.create(bob, "mine") // names are unique per owner only

	for _, ref := range []string{vm.UUID, fmt.Sprint(vm.ID)} {
		if a := s.call("GET", "/api/vms/"+ref, bob, ""); a.status != http.StatusNotFound {
			t.Errorf("bob reads alice's VM by %s: %d", ref, a.status)
		}
		if a := s.call("POST", "/api/vms/"+ref+"/action", bob, `{"action":"start"}`); a.status != http.StatusNotFound {
			t.Errorf("bob starts alice's VM by %s: %d", ref, a.status)
		}
		if a := s.call("DELETE", "/api/vms/"+ref, bob, ""); a.status != http.StatusNotFound {
			t.Errorf("bob deletes alice's VM by %s: %d", ref, a.status)
		}
	}
	var list []vmJSON
	s.call("GET", "/api/vms?all=true", bob, "").decode(t, &list)
	if len(list) != 1 || list[0].OwnerID != 2 {
		t.Fatalf("bob's all=true: %+v", list)
	}
	s.call("GET", "/api/vms?all=true", admin, "").decode(t, &list)
	if len(list) != 2 {
		t.Fatalf("admin's all=true: %+v", list)
	}
	s.call("GET", "/api/vms", admin, "").decode(t, &list)
	if len(list) != 0 {
		t.Fatalf("admin's own: %+v", list)
	}
	if got := s.get(admin, vm.UUID); got.OwnerID != 1 {
		t.Fatalf("admin get: %+v", got)
	}

	if a := s.call("GET", "/internal/vms/"+vm.UUID, alice, ""); a.status != http.StatusUnauthorized {
		t.Fatalf("a user token opened the internal API: %d", a.status)
	}
	a := s.call("GET", "/internal/vms/"+fmt.Sprint(vm.ID), "peer-secret", "")
	var peer struct {
		UUID    string `json:"uuid"`
		OwnerID int64  `json:"owner_id"`
		Status  string `json:"status"`
		Host    string `json:"host"`
	}
	a.decode(t, &peer)
	if a.status != http.StatusOK || peer.UUID != vm.UUID || peer.OwnerID != 1 || peer.Status != "Stopped" || peer.Host != "test-host" {
		t.Fatalf("internal: %d %s", a.status, a.body)
	}
}

func TestOSTypes(t *testing.T) {
	s := newStack(t)
	var out struct {
		OSTypes []struct {
			Name          string `json:"name"`
			Label         string `json:"label"`
			DiskGB        int    `json:"disk_gb"`
			DefaultMemory int    `json:"default_memory"`
		} `json:"os_types"`
	}
	s.call("GET", "/api/vms/os-types", s.token(1, "user"), "").decode(t, &out)
	names := map[string]bool{}
	for _, o := range out.OSTypes {
		names[o.Name] = o.Label != "" && o.DiskGB > 0 && o.DefaultMemory > 0
	}
	for _, want := range []string{"ubuntu-desktop", "ubuntu-server", "kali", "windows"} {
		if !names[want] {
			t.Errorf("%s missing or incomplete: %+v", want, out)
		}
	}
}

func TestStatus_FollowsLibvirtBehindLIMENsBack(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "web")
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatal(msg)
	}
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID)))
	if err != nil {
		t.Fatal(err)
	}
	// A lifecycle event updates the status within a second.
	if err := l.DomainDestroy(dom); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(alice, vm.UUID, "Stopped", time.Second)

	// A domain that vanished becomes Error with a reason.
	if err := l.DomainUndefine(dom); err != nil {
		t.Fatal(err)
	}
	got := s.waitStatus(alice, vm.UUID, "Error", 3*time.Second)
	if got.StatusReason == "" {
		t.Fatal("no reason given for Error")
	}
	if code, _, _ := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusConflict {
		t.Fatalf("start of a VM in Error: %d", code)
	}
	// Deleting it still works: the disk goes, the row goes.
	if a := s.call("DELETE", "/api/vms/"+vm.UUID, alice, ""); a.status != http.StatusOK {
		t.Fatalf("delete of a VM in Error: %d %s", a.status, a.body)
	}
}

func TestLibvirtdRestart_ServiceReconnectsAndStatusesConverge(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "survivor")
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"start"}`); code != http.StatusOK {
		t.Fatal(msg)
	}
	d := libvirttest.Shared(t)
	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	if a := s.call("POST", "/api/vms/"+vm.UUID+"/action", alice, `{"action":"pause"}`); a.status != http.StatusServiceUnavailable {
		t.Fatalf("action while libvirtd is down: %d %s", a.status, a.body)
	}
	if err := d.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Changed while LIMEN was not listening: the reconnect's resync must notice.
	l := s.libvirt()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm.UUID)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DomainSuspend(dom); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(alice, vm.UUID, "Paused", 3*time.Second)
	// Events flow again on the new connection.
	if err := l.DomainDestroy(dom); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(alice, vm.UUID, "Stopped", 2*time.Second)
}

func TestConcurrentStarts_OneWins(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	vm := s.create(alice, "racer")
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = s.action(alice, vm.UUID, `{"action":"start"}`)
		}()
	}
	wg.Wait()
	if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
		t.Fatalf("codes %v, want one 200 and one 409", codes)
	}
}

func TestBrokerDown_EventsWaitAndArriveWhenItReturns(t *testing.T) {
	s := newStack(t)
	alice := s.token(1, "user")
	_, portText, _ := net.SplitHostPort(s.Broker.ListenAddrs()[0])
	port, _ := strconv.Atoi(portText)
	s.Broker.Close()

	vm := s.create(alice, "patient")
	if code, _, msg := s.action(alice, vm.UUID, `{"action":"force_stop"}`); code != http.StatusConflict {
		t.Fatalf("force_stop of a stopped VM: %d %s", code, msg)
	}
	time.Sleep(500 * time.Millisecond)
	var waiting int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&waiting); err != nil || waiting != 1 {
		t.Fatalf("unsent rows %d (%v)", waiting, err)
	}

	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(4, topic))
	if err != nil {
		t.Fatal(err)
	}
	s.Broker = broker
	t.Cleanup(broker.Close)
	s.events(vm.UUID, "limen.vm.updated")
}

func TestQuota_403WithTheContractsMessage_NothingCreated(t *testing.T) {
	s := newStack(t)
	s.quota.limit(1, 2, 128)
	alice := s.token(1, "user")
	vm := s.create(alice, "only")
	a := s.call("POST", "/api/vms", alice, `{"name":"second","cpu":1,"memory":64,"os_type":"other"}`)
	if a.status != http.StatusForbidden || string(a.body) != `{"code":403,"message":"Quota exceeded: vms 2/1"}` {
		t.Fatalf("over the VM quota: %d %s", a.status, a.body)
	}
	code, _, msg := s.action(alice, vm.UUID, `{"action":"update","cpu":2,"memory":256}`)
	if code != http.StatusForbidden || !strings.Contains(msg, "Quota exceeded: memory 256/128") {
		t.Fatalf("resize over the memory quota: %d %s", code, msg)
	}
	if domains, _, err := s.libvirt().ConnectListAllDomains(1, 0); err != nil || len(domains) != 1 {
		t.Fatalf("domains: %d (%v)", len(domains), err)
	}
}

func TestResync_RemovesADomainThisInstallationNeverRecorded(t *testing.T) {
	s := newStack(t, func(c *service.Config) { c.OrphanGrace = 0 })
	ctx := context.Background()
	installation, err := postgres.Installation(ctx, s.Pool)
	if err != nil {
		t.Fatal(err)
	}
	d := libvirttest.Shared(t)
	hypervisorOf := func(installation string) *libvirt.Hypervisor {
		h, err := libvirt.New(s.Conn.Client, libvirt.Config{DomainType: "qemu", Pool: "limen-vms",
			PoolPath: filepath.Join(d.ImageDir(), "vms"), Installation: installation})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	// As if vm-service had crashed between defining the domain and recording it.
	orphan, foreign := uuid.New(), uuid.New()
	ours, theirs := hypervisorOf(installation.String()), hypervisorOf(uuid.NewString())
	for h, id := range map[*libvirt.Hypervisor]uuid.UUID{ours: orphan, theirs: foreign} {
		if err := h.Create(ctx, app.MachineSpec{UUID: id, Name: "crash", CPU: 1, MemoryMiB: 64, DiskGB: 1}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = theirs.Delete(ctx, foreign); _ = ours.Delete(ctx, orphan) })

	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.libvirt().DomainLookupByUUID(golibvirt.UUID(orphan))
		if golibvirt.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphan is still defined: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := s.libvirt().DomainLookupByUUID(golibvirt.UUID(foreign)); err != nil {
		t.Fatalf("another installation's domain was touched: %v", err)
	}
}
