package contract

import (
	"errors"
	"strings"
)

// domainPrefix starts the name of every libvirt domain LIMEN defines; the rest is the VM's uuid, so
// any service can find a VM's domain, and domains LIMEN did not make are never touched.
const domainPrefix = "limen-"

// DomainName is the libvirt domain name of the VM with uuid vmUUID.
func DomainName(vmUUID string) string { return domainPrefix + vmUUID }

// VMUUIDOfDomain is the VM uuid in a domain name LIMEN gave, and false for any other name.
func VMUUIDOfDomain(name string) (string, bool) {
	return strings.CutPrefix(name, domainPrefix)
}

// The CD-ROM drive vm-service gives every VM and media-service changes: a SATA drive at sda.
const (
	CDROMTarget = "sda"
	CDROMBus    = "sata"
)

// Sentinel errors every hypervisor adapter wraps, so use cases can tell what happened without
// knowing libvirt.
var (
	// ErrMachineNotFound is a VM with no domain on the hypervisor.
	ErrMachineNotFound = errors.New("machine not found on the hypervisor")
	// ErrHypervisorUnavailable is a hypervisor out of reach right now; the call may be retried.
	ErrHypervisorUnavailable = errors.New("hypervisor unavailable")
)
