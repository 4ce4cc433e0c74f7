package domain

import (
	"fmt"

	"limen/libs/failure"
)

// OSType is an entry of the operating-system catalogue: what a new VM of that kind gets by default.
type OSType struct {
	Name          string `json:"name" yaml:"name"`
	Label         string `json:"label" yaml:"label"`
	DiskGB        int    `json:"disk_gb" yaml:"disk_gb"`
	DefaultMemory int    `json:"default_memory" yaml:"default_memory"`
}

// Catalogue is the configured list of OS types, in display order.
type Catalogue []OSType

// Lookup finds an OS type by name; an unknown name is invalid input.
func (c Catalogue) Lookup(name string) (OSType, error) {
	for _, os := range c {
		if os.Name == name {
			return os, nil
		}
	}
	return OSType{}, failure.InvalidField("os_type", fmt.Sprintf("Invalid os_type: %s", name))
}
