// Package contract is what LIMEN's services agree on among themselves: the Kafka topics and CloudEvent
// types they exchange and the data those events carry, the internal HTTP API vm-service offers its
// peers, how a VM's libvirt domain is named and where its CD-ROM drive sits, the hypervisor's sentinel
// errors, and the settings every service reads from the same environment variables.
//
// It imports nothing beyond the standard library, so any layer of any service may use it; a change to
// what two services agree on is one edit here, and the compiler finds every side of it.
package contract
