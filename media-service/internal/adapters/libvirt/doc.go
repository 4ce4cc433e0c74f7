// Package libvirt implements media-service's ISO library and CD-ROM drive over go-libvirt. The library
// is a directory storage pool and the drive the empty SATA CD-ROM vm-service gives every domain, both
// reached through the libvirt API so the same code serves a remote host.
package libvirt
