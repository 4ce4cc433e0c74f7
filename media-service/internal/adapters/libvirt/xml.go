package libvirt

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Typed libvirt XML: disks and volumes are built from these structs, never by concatenation, so a path
// with quotes or angle brackets stays a path.

type domainXML struct {
	Devices struct {
		Disks []diskXML `xml:"disk"`
	} `xml:"devices"`
}

// cdrom is the domain's first CD-ROM drive, the one LIMEN manages; nil when it has none.
func (d domainXML) cdrom() *diskXML {
	for i := range d.Devices.Disks {
		if d.Devices.Disks[i].Device == "cdrom" {
			return &d.Devices.Disks[i]
		}
	}
	return nil
}

type diskXML struct {
	XMLName  xml.Name       `xml:"disk"`
	Type     string         `xml:"type,attr"`
	Device   string         `xml:"device,attr"`
	Driver   *diskDriverXML `xml:"driver"`
	Source   *diskSourceXML `xml:"source"`
	Target   diskTargetXML  `xml:"target"`
	ReadOnly *struct{}      `xml:"readonly"`
}

type diskDriverXML struct {
	Name string `xml:"name,attr"`
	Type string `xml:"type,attr"`
}

type diskSourceXML struct {
	File string `xml:"file,attr"`
}

type diskTargetXML struct {
	Dev string `xml:"dev,attr"`
	Bus string `xml:"bus,attr"`
}

// media is the file in the drive, "" when it is empty.
func (d *diskXML) media() string {
	if d.Source == nil {
		return ""
	}
	return d.Source.File
}

type volumeXML struct {
	XMLName    xml.Name        `xml:"volume"`
	Type       string          `xml:"type,attr,omitempty"`
	Name       string          `xml:"name"`
	Capacity   bytesXML        `xml:"capacity"`
	Allocation *bytesXML       `xml:"allocation"`
	Target     volumeTargetXML `xml:"target"`
}

type bytesXML struct {
	Unit  string `xml:"unit,attr,omitempty"`
	Value int64  `xml:",chardata"`
}

type volumeTargetXML struct {
	Path       string         `xml:"path,omitempty"`
	Format     *formatXML     `xml:"format"`
	Timestamps *timestampsXML `xml:"timestamps"`
}

type formatXML struct {
	Type string `xml:"type,attr"`
}

type timestampsXML struct {
	MTime string `xml:"mtime"`
}

// modified is the volume's mtime, which libvirt writes as seconds[.nanoseconds].
func (v volumeXML) modified() (time.Time, error) {
	if v.Target.Timestamps == nil || v.Target.Timestamps.MTime == "" {
		return time.Time{}, nil
	}
	secText, nsecText, _ := strings.Cut(v.Target.Timestamps.MTime, ".")
	sec, err := strconv.ParseInt(secText, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("volume %s: mtime %q: %w", v.Name, v.Target.Timestamps.MTime, err)
	}
	var nsec int64
	if nsecText != "" {
		if nsec, err = strconv.ParseInt((nsecText + "000000000")[:9], 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("volume %s: mtime %q: %w", v.Name, v.Target.Timestamps.MTime, err)
		}
	}
	return time.Unix(sec, nsec).UTC(), nil
}
