package libvirt

import "encoding/xml"

// Typed libvirt XML: domains and volumes are built from these structs, never by concatenation.

type domainXML struct {
	XMLName  xml.Name     `xml:"domain"`
	Type     string       `xml:"type,attr"`
	Name     string       `xml:"name"`
	UUID     string       `xml:"uuid"`
	Title    string       `xml:"title,omitempty"`
	Metadata *metadataXML `xml:"metadata,omitempty"`
	Memory   sizeXML      `xml:"memory"`
	VCPU     int          `xml:"vcpu"`
	OS       osXML        `xml:"os"`
	Features featuresXML  `xml:"features"`
	OnCrash  string       `xml:"on_crash"`
	Devices  devicesXML   `xml:"devices"`
}

// metadataXML holds LIMEN's own element in the domain, in its own namespace as libvirt requires.
type metadataXML struct {
	Instance instanceXML
}

// instanceXML says which installation defined the domain, and when.
type instanceXML struct {
	XMLName      xml.Name `xml:"https://limen.dev/xmlns/vm/1 instance"`
	Installation string   `xml:"installation,attr"`
	Created      string   `xml:"created,attr"`
}

// metadataNamespace is instanceXML's namespace, by which DomainGetMetadata finds it.
const metadataNamespace = "https://limen.dev/xmlns/vm/1"

type sizeXML struct {
	Unit  string `xml:"unit,attr"`
	Value int    `xml:",chardata"`
}

type osXML struct {
	Type osTypeXML `xml:"type"`
	Boot []bootXML `xml:"boot"`
}

type osTypeXML struct {
	Arch    string `xml:"arch,attr"`
	Machine string `xml:"machine,attr"`
	Value   string `xml:",chardata"`
}

type bootXML struct {
	Dev string `xml:"dev,attr"`
}

// featuresXML enables ACPI, which a graceful shutdown needs.
type featuresXML struct {
	ACPI struct{} `xml:"acpi"`
	APIC struct{} `xml:"apic"`
}

type devicesXML struct {
	Disks      []diskXML      `xml:"disk"`
	Interfaces []interfaceXML `xml:"interface"`
	Graphics   []graphicsXML  `xml:"graphics"`
	Inputs     []inputXML     `xml:"input"`
}

type diskXML struct {
	Type     string         `xml:"type,attr"`
	Device   string         `xml:"device,attr"`
	Driver   diskDriverXML  `xml:"driver"`
	Source   *diskSourceXML `xml:"source"`
	Target   diskTargetXML  `xml:"target"`
	ReadOnly *struct{}      `xml:"readonly"`
}

type diskDriverXML struct {
	Name string `xml:"name,attr"`
	Type string `xml:"type,attr"`
}

type diskSourceXML struct {
	Pool   string `xml:"pool,attr,omitempty"`
	Volume string `xml:"volume,attr,omitempty"`
}

type diskTargetXML struct {
	Dev string `xml:"dev,attr"`
	Bus string `xml:"bus,attr"`
}

type interfaceXML struct {
	Type   string              `xml:"type,attr"`
	Source *interfaceSourceXML `xml:"source"`
	Model  modelXML            `xml:"model"`
}

type interfaceSourceXML struct {
	Network string `xml:"network,attr"`
}

type modelXML struct {
	Type string `xml:"type,attr"`
}

type graphicsXML struct {
	Type     string `xml:"type,attr"`
	AutoPort string `xml:"autoport,attr"`
	Listen   string `xml:"listen,attr"`
}

type inputXML struct {
	Type string `xml:"type,attr"`
	Bus  string `xml:"bus,attr"`
}

type volumeXML struct {
	XMLName  xml.Name        `xml:"volume"`
	Name     string          `xml:"name"`
	Capacity sizeXML         `xml:"capacity"`
	Target   volumeTargetXML `xml:"target"`
}

type volumeTargetXML struct {
	Format formatXML `xml:"format"`
}

type formatXML struct {
	Type string `xml:"type,attr"`
}
