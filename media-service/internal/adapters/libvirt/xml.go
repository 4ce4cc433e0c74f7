package libvirt

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"libvirt.org/go/libvirtxml"

	"limen/libs/contract"
)

// cdromOf is the CD-ROM drive vm-service gives every VM (contract.CDROMTarget on contract.CDROMBus),
// the one LIMEN manages; nil when the domain has none.
func cdromOf(def *libvirtxml.Domain) *libvirtxml.DomainDisk {
	if def.Devices == nil {
		return nil
	}
	for i, disk := range def.Devices.Disks {
		if disk.Device == "cdrom" && disk.Target != nil && disk.Target.Dev == contract.CDROMTarget && disk.Target.Bus == contract.CDROMBus {
			return &def.Devices.Disks[i]
		}
	}
	return nil
}

// mediaOf is the file in a drive, "" when it is empty.
func mediaOf(disk *libvirtxml.DomainDisk) string {
	if disk.Source == nil || disk.Source.File == nil {
		return ""
	}
	return disk.Source.File.File
}

// cdromWith is the drive at target holding path ("": empty). Always raw: an ISO is, and libvirt leaves
// the format out of an empty drive's live definition.
func cdromWith(target *libvirtxml.DomainDiskTarget, path string) *libvirtxml.DomainDisk {
	return &libvirtxml.DomainDisk{Device: "cdrom", Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
		Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: path}},
		Target: target, ReadOnly: &libvirtxml.DomainDiskReadOnly{}}
}

// modified is the volume's mtime, which libvirt writes as seconds[.nanoseconds].
func modified(v *libvirtxml.StorageVolume) (time.Time, error) {
	if v.Target == nil || v.Target.Timestamps == nil || v.Target.Timestamps.Mtime == "" {
		return time.Time{}, nil
	}
	mtime := v.Target.Timestamps.Mtime
	secText, nsecText, _ := strings.Cut(mtime, ".")
	sec, err := strconv.ParseInt(secText, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("volume %s: mtime %q: %w", v.Name, mtime, err)
	}
	var nsec int64
	if nsecText != "" {
		if nsec, err = strconv.ParseInt((nsecText + "000000000")[:9], 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("volume %s: mtime %q: %w", v.Name, mtime, err)
		}
	}
	return time.Unix(sec, nsec).UTC(), nil
}
