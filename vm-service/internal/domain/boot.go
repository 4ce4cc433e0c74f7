package domain

import (
	"fmt"
	"strings"
	"time"

	"limen/libs/failure"
)

// BootOrder is which devices the VM's firmware tries, in order: the disk, the CD-ROM drive, or both.
type BootOrder string

const (
	BootCDROM   BootOrder = "cdrom"
	BootHD      BootOrder = "hd"
	BootCDROMHD BootOrder = "cdrom_hd"
	BootHDCDROM BootOrder = "hd_cdrom"
)

// BootOrders lists every boot order in the order the error message names them.
var BootOrders = []BootOrder{BootCDROM, BootHD, BootCDROMHD, BootHDCDROM}

// DefaultBootOrder is what every VM is created with: the disk first, so an installed system boots,
// and an installer in the drive while the disk is still empty.
const DefaultBootOrder = BootHDCDROM

// Tasks that are not actions of the action route, each claiming the VM like one.
const (
	ActionBootOrder       Action = "boot_order"
	ActionFinalizeInstall Action = "finalize_install"
)

// ParseBootOrder accepts the four boot orders.
func ParseBootOrder(s string) (BootOrder, error) {
	names := make([]string, len(BootOrders))
	for i, b := range BootOrders {
		if string(b) == s {
			return b, nil
		}
		names[i] = string(b)
	}
	return "", failure.InvalidField("boot_order", fmt.Sprintf("Invalid boot_order: %s. Valid values: %s", s, strings.Join(names, ", ")))
}

// Devices are the boot devices in the order the firmware tries them, as libvirt names them.
func (b BootOrder) Devices() []string {
	first, second, _ := strings.Cut(string(b), "_")
	if second == "" {
		return []string{first}
	}
	return []string{first, second}
}

// SetBootOrder records a boot order the hypervisor has taken.
func (vm *VM) SetBootOrder(b BootOrder, now time.Time) {
	if vm.BootOrder == b {
		return
	}
	vm.BootOrder = b
	vm.touch(now)
}

// BootOrderPending reports whether a boot order just set waits for the VM's next start: the machine
// runs (or is paused) on the order it started with.
func (vm *VM) BootOrderPending() bool {
	return vm.Status == StatusRunning || vm.Status == StatusPaused
}
