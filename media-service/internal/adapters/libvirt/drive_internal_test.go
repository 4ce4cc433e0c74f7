package libvirt

import (
	"errors"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// The tray race cannot be staged without a guest OS that locks its tray, so the classification is
// checked against the messages QEMU and libvirt give for it.
func TestTrayShut(t *testing.T) {
	for msg, want := range map[string]bool{
		"internal error: unable to execute QEMU command 'blockdev-remove-medium': Tray of device 'sata0-0-0' is not open":                                                    true,
		"internal error: unable to execute QEMU command 'blockdev-open-tray': Device 'sata0-0-0' is locked and force was not specified, wait for tray to open and try again": true,
		"operation failed: timed out waiting to open tray of 'sda'":                                                                                                          true,
		"unsupported configuration: unknown driver format value ''":                                                                                                          false,
		"Cannot access storage file '/srv/isos/a.iso': No such file or directory":                                                                                            false,
	} {
		if got := trayShut(golibvirt.Error{Code: uint32(golibvirt.ErrInternalError), Message: msg}); got != want {
			t.Errorf("trayShut(%q) = %v", msg, got)
		}
	}
	if trayShut(errors.New("tray")) {
		t.Error("an error that is not libvirt's counted as a tray race")
	}
}
