package libvirt

import (
	"fmt"

	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"
)

// The VM network settings (LIMEN_VM_NETWORK) besides a libvirt network's name.
const (
	// NetworkIsolated is QEMU user-mode networking with restrict=on: the guest gets a DHCP lease and
	// can open no connection at all, to the host (whose 127.0.0.1 plain user networking forwards
	// 10.0.2.2 to) or anywhere else.
	NetworkIsolated = "user"
	// NetworkUserOpen is plain user-mode networking: outbound connections, the internet included,
	// but also every service listening on the host's loopback.
	NetworkUserOpen = "user-open"
	// NetworkNone gives the VM no NIC. (An empty setting is the default, user: the configuration
	// loader treats an empty variable as unset.)
	NetworkNone = "none"
)

// Isolated reports whether a network setting keeps every guest away from the host's services on
// any host. A libvirt network's isolation depends on the host's firewall, which LIMEN cannot see.
func Isolated(network string) bool {
	return network == NetworkIsolated || network == NetworkNone || network == ""
}

// isolatedNIC adds a virtio NIC on a restricted user-mode backend. libvirt has no element for
// QEMU's restrict option, so the NIC is passed as QEMU arguments; libvirt marks such a domain
// "tainted: custom-argv", which is only a note in its log. The NIC takes a fixed slot at the top of
// the root bus: libvirt fills slots from the bottom (video at 1, root ports from 2) and the LPC/SATA
// functions at 0x1f, without knowing about devices it did not add.
func isolatedNIC(id uuid.UUID) *libvirtxml.DomainQEMUCommandline {
	return &libvirtxml.DomainQEMUCommandline{Args: []libvirtxml.DomainQEMUCommandlineArg{
		{Value: "-netdev"}, {Value: "user,id=limen-net0,restrict=on"},
		{Value: "-device"}, {Value: fmt.Sprintf("virtio-net-pci,netdev=limen-net0,mac=%s,bus=pcie.0,addr=0x1c", macAddress(id))},
	}}
}

// macAddress is stable per VM, in QEMU's locally administered range 52:54:00.
func macAddress(id uuid.UUID) string {
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", id[0], id[1], id[2])
}
