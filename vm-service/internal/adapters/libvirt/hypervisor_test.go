package libvirt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/testkit/libvirttest"
	"limen/vm-service/internal/adapters/libvirt"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(dialEnv); path != "" {
		dialAndExit(path)
	}
	libvirttest.Main(m)
}

func newHypervisor(t *testing.T, l *golibvirt.Libvirt, domainType string) *libvirt.Hypervisor {
	t.Helper()
	return newHypervisorOf(t, l, domainType, "installation-a")
}

func newHypervisorOf(t *testing.T, l *golibvirt.Libvirt, domainType, installation string) *libvirt.Hypervisor {
	t.Helper()
	h, err := libvirt.New(func() (*golibvirt.Libvirt, error) { return l, nil }, libvirt.Config{
		DomainType: domainType, Pool: "limen-vms", PoolPath: filepath.Join(libvirttest.Shared(t).ImageDir(), "vms"),
		Installation: installation,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func spec() app.MachineSpec {
	return app.MachineSpec{UUID: uuid.New(), Name: "web 1", CPU: 1, MemoryMiB: 64, DiskGB: 1}
}

func expectState(t *testing.T, h *libvirt.Hypervisor, id uuid.UUID, want domain.Status) {
	t.Helper()
	states, err := h.States(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if states[id] != want {
		t.Fatalf("state %q, want %q (all: %v)", states[id], want, states)
	}
}

func TestLifecycle_CreateStartPauseResumeStopResizeDelete(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	h := newHypervisor(t, l, "qemu")
	s := spec()
	if err := h.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Delete(ctx, s.UUID) })

	dom, err := l.DomainLookupByUUID(golibvirt.UUID(s.UUID))
	if err != nil {
		t.Fatal(err)
	}
	def, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"machine='pc-q35", "device='cdrom'", "bus='sata'", "type='qcow2'", "bus='virtio'", "<title>web 1</title>", "<listen type='socket'"} {
		if !strings.Contains(def, want) {
			t.Errorf("domain XML lacks %s:\n%s", want, def)
		}
	}
	expectState(t, h, s.UUID, domain.StatusStopped)

	if err := h.Start(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	expectState(t, h, s.UUID, domain.StatusRunning)
	if err := h.Pause(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	expectState(t, h, s.UUID, domain.StatusPaused)
	if err := h.Resume(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	// The guest has no OS to answer ACPI, so the shutdown is forced after the timeout.
	forced, err := h.Shutdown(ctx, s.UUID, time.Second)
	if err != nil || !forced {
		t.Fatalf("shutdown: forced=%v err=%v", forced, err)
	}
	expectState(t, h, s.UUID, domain.StatusStopped)

	if err := h.Resize(ctx, s.UUID, 2, 128); err != nil {
		t.Fatal(err)
	}
	_, maxMem, _, vcpus, _, err := l.DomainGetInfo(dom)
	if err != nil || maxMem != 128*1024 || vcpus != 2 {
		t.Fatalf("after resize: mem %d KiB, %d vCPU (%v)", maxMem, vcpus, err)
	}
	if err := h.Resize(ctx, s.UUID, 1, 64); err != nil {
		t.Fatalf("shrink: %v", err)
	}

	if err := h.Delete(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DomainLookupByUUID(golibvirt.UUID(s.UUID)); !golibvirt.IsNotFound(err) {
		t.Fatalf("domain still defined: %v", err)
	}
	pool, _ := l.StoragePoolLookupByName("limen-vms")
	if _, err := l.StorageVolLookupByName(pool, s.UUID.String()+".qcow2"); err == nil {
		t.Fatal("disk left behind")
	}
	if err := h.Delete(ctx, s.UUID); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestCreate_DefineFails_MakesNoDisk(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	h := newHypervisor(t, l, "no-such-hypervisor")
	s := spec()
	if err := h.Create(ctx, s); err == nil {
		t.Fatal("define with a bogus domain type succeeded")
	}
	pool, _ := l.StoragePoolLookupByName("limen-vms")
	if _, err := l.StorageVolLookupByName(pool, s.UUID.String()+".qcow2"); err == nil {
		t.Fatal("disk left behind after a failed create")
	}
}

// The domain is defined before the disk is made. A disk that cannot be made (here: a volume of its
// name is there already, not this create's) leaves no domain and the volume as it was; a create cut
// short between the two leaves a domain without a disk, which Delete removes.
func TestCreate_DiskFails_LeavesNoDomain_ADomainWithoutDiskDeletes(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	h := newHypervisor(t, l, "qemu")
	s := spec()
	pool, err := l.StoragePoolLookupByName("limen-vms")
	if err != nil {
		t.Fatal(err)
	}
	existing, err := l.StorageVolCreateXML(pool, fmt.Sprintf(`<volume><name>%s.qcow2</name><capacity unit="MiB">1</capacity>
		<target><format type="qcow2"/></target></volume>`, s.UUID), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.StorageVolDelete(existing, 0) })
	if err := h.Create(ctx, s); err == nil {
		t.Fatal("create over an existing disk succeeded")
	}
	if _, err := l.DomainLookupByUUID(golibvirt.UUID(s.UUID)); !golibvirt.IsNotFound(err) {
		t.Fatalf("a domain is left after the disk failed: %v", err)
	}
	if _, err := l.StorageVolLookupByName(pool, s.UUID.String()+".qcow2"); err != nil {
		t.Fatalf("the volume that was there is gone: %v", err)
	}
	if err := l.StorageVolDelete(existing, 0); err != nil {
		t.Fatal(err)
	}

	// What a crash between the two steps leaves: the domain alone.
	if err := h.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	vol, err := l.StorageVolLookupByName(pool, s.UUID.String()+".qcow2")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StorageVolDelete(vol, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Delete(ctx, s.UUID); err != nil {
		t.Fatalf("delete of a domain without its disk: %v", err)
	}
	if _, err := l.DomainLookupByUUID(golibvirt.UUID(s.UUID)); !golibvirt.IsNotFound(err) {
		t.Fatalf("the domain is left: %v", err)
	}
}

func TestActions_UnknownMachine(t *testing.T) {
	h := newHypervisor(t, libvirttest.Connect(t), "qemu")
	if err := h.Start(context.Background(), uuid.New()); !errors.Is(err, contract.ErrMachineNotFound) {
		t.Fatalf("got %v", err)
	}
}

// The pool check itself is libvirtconn's; what vm-service adds is the settings to change.
func TestNew_RefusesAPoolOfItsNameElsewhere_NamingTheSettings(t *testing.T) {
	l := libvirttest.Connect(t)
	dir := libvirttest.Shared(t).ImageDir()
	client := func() (*golibvirt.Libvirt, error) { return l, nil }
	t.Cleanup(func() {
		if pool, err := l.StoragePoolLookupByName("limen-elsewhere"); err == nil {
			_ = l.StoragePoolDestroy(pool)
			_ = l.StoragePoolUndefine(pool)
		}
	})
	if _, err := libvirt.New(client, libvirt.Config{DomainType: "qemu", Pool: "limen-elsewhere", PoolPath: filepath.Join(dir, "a")}); err != nil {
		t.Fatal(err)
	}
	_, err := libvirt.New(client, libvirt.Config{DomainType: "qemu", Pool: "limen-elsewhere", PoolPath: filepath.Join(dir, "b")})
	if err == nil || !strings.Contains(err.Error(), "LIMEN_STORAGE_POOL_PATH") {
		t.Fatalf("got %v", err)
	}
}

func TestOwnedSince_OnlyThisInstallationsDomains(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	ours, theirs := newHypervisorOf(t, l, "qemu", "installation-a"), newHypervisorOf(t, l, "qemu", "installation-b")
	s := spec()
	before := time.Now().Add(-time.Second)
	if err := ours.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ours.Delete(ctx, s.UUID) })
	created, owned, err := ours.OwnedSince(ctx, s.UUID)
	if err != nil || !owned || created.Before(before) || created.After(time.Now()) {
		t.Fatalf("ours: %v %v %v", created, owned, err)
	}
	if _, owned, err := theirs.OwnedSince(ctx, s.UUID); err != nil || owned {
		t.Fatalf("another installation claims it: %v %v", owned, err)
	}
	// A domain defined by hand carries no LIMEN metadata at all.
	hand := uuid.New()
	dom, err := l.DomainDefineXML(fmt.Sprintf(`<domain type="qemu"><name>%s</name><uuid>%s</uuid><memory unit="MiB">64</memory><vcpu>1</vcpu><os><type arch="x86_64" machine="q35">hvm</type></os></domain>`, contract.DomainName(hand.String()), hand))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.DomainUndefine(dom) })
	if _, owned, err := ours.OwnedSince(ctx, hand); err != nil || owned {
		t.Fatalf("a hand-made domain: %v %v", owned, err)
	}
	if _, _, err := ours.OwnedSince(ctx, uuid.New()); !errors.Is(err, contract.ErrMachineNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}
