package service_test

import (
	"fmt"
	"net/http"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"
)

// BenchmarkCreateToRunning_Service is POST /api/vms with "start": true through vm-service's HTTP
// port: validation, disk volume, domain definition, the row and its event, the start and its event.
// Compare with BenchmarkCreateToRunning_RawLibvirt for the service's overhead.
func BenchmarkCreateToRunning_Service(b *testing.B) {
	s := newStack(b)
	token := s.token(1, "user")
	for i := 0; b.Loop(); i++ {
		a := s.call("POST", "/api/vms", token, fmt.Sprintf(`{"name":"bench-%d","cpu":1,"memory":64,"os_type":"other","start":true}`, i))
		if a.status != http.StatusCreated {
			b.Fatalf("%d %s", a.status, a.body)
		}
		b.StopTimer()
		var vm vmJSON
		a.decode(b, &vm)
		if vm.Status != "Running" {
			b.Fatalf("created %+v", vm)
		}
		if a := s.call("DELETE", "/api/vms/"+vm.UUID, token, ""); a.status != http.StatusOK {
			b.Fatalf("delete: %d %s", a.status, a.body)
		}
		b.StartTimer()
	}
}

// BenchmarkCreateToRunning_RawLibvirt is the floor: the same volume and domain made and started with
// bare go-libvirt calls on the same daemon.
func BenchmarkCreateToRunning_RawLibvirt(b *testing.B) {
	s := newStack(b) // the pool, and the same daemon state the service benchmark sees
	l := s.libvirt()
	pool, err := l.StoragePoolLookupByName("limen-vms")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		id := uuid.New()
		vol, err := l.StorageVolCreateXML(pool, fmt.Sprintf(`<volume><name>raw-%s.qcow2</name><capacity unit="GiB">20</capacity><target><format type="qcow2"/></target></volume>`, id), 0)
		if err != nil {
			b.Fatal(err)
		}
		path, err := l.StorageVolGetPath(vol)
		if err != nil {
			b.Fatal(err)
		}
		dom, err := l.DomainDefineXML(fmt.Sprintf(`<domain type="qemu"><name>raw-%s</name><uuid>%s</uuid><memory unit="MiB">64</memory><vcpu>1</vcpu>
			<os><type arch="x86_64" machine="q35">hvm</type></os>
			<devices><disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="%s"/><target dev="vda" bus="virtio"/></disk>
			<disk type="file" device="cdrom"><driver name="qemu" type="raw"/><target dev="sda" bus="sata"/><readonly/></disk>
			<graphics type="vnc"><listen type="socket"/></graphics></devices></domain>`, id, id, path))
		if err != nil {
			b.Fatal(err)
		}
		if err := l.DomainCreate(dom); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = l.DomainDestroy(dom)
		_ = l.DomainUndefineFlags(dom, golibvirt.DomainUndefineManagedSave)
		_ = l.StorageVolDelete(vol, 0)
		b.StartTimer()
	}
}
