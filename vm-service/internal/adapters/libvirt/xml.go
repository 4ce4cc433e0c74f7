package libvirt

import "encoding/xml"

// instanceXML is LIMEN's element in a domain's <metadata>, in its own namespace as libvirt requires:
// which installation defined the domain, and when.
type instanceXML struct {
	XMLName      xml.Name `xml:"https://limen.dev/xmlns/vm/1 instance"`
	Installation string   `xml:"installation,attr"`
	Created      string   `xml:"created,attr"`
}

// metadataNamespace is instanceXML's namespace, by which DomainGetMetadata finds it.
const metadataNamespace = "https://limen.dev/xmlns/vm/1"
