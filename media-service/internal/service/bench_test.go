package service_test

import (
	"fmt"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/contract"
)

// BenchmarkAttach_HTTP is one attach through media-service's HTTP port on a running guest: token,
// ownership from vm-service, library lookup, the drive change and its history row and event.
// Compare with BenchmarkAttach_RawUpdateDeviceFlags.
func BenchmarkAttach_HTTP(b *testing.B) {
	s := newStack(b)
	isos := []string{s.makeISO("first.iso"), s.makeISO("second.iso")}
	vm := s.defineVM(1, true, true)
	for i := 0; b.Loop(); i++ {
		s.expect(s.call("POST", "/api/vms/"+vm+"/media", 1, "user", map[string]any{"action": "attach", "iso_path": isos[i%2]}), 200, "")
	}
}

// BenchmarkAttach_RawUpdateDeviceFlags is the floor: the same change as one bare libvirt call.
func BenchmarkAttach_RawUpdateDeviceFlags(b *testing.B) {
	s := newStack(b)
	isos := []string{s.makeISO("first.iso"), s.makeISO("second.iso")}
	vm := s.defineVM(1, true, true)
	dom, err := s.lv.DomainLookupByUUID(golibvirt.UUID(uuid.MustParse(vm)))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		// Test paths need no XML escaping.
		disk := fmt.Sprintf(`<disk type="file" device="cdrom"><driver name="qemu" type="raw"/><source file="%s"/><target dev="%s" bus="%s"/><readonly/></disk>`,
			isos[i%2], contract.CDROMTarget, contract.CDROMBus)
		if err := s.lv.DomainUpdateDeviceFlags(dom, disk, golibvirt.DomainDeviceModifyLive|golibvirt.DomainDeviceModifyConfig); err != nil {
			b.Fatal(err)
		}
	}
}
