// Package osfile loads vm-service's OS-type catalogue from a YAML file, or the built-in default.
package osfile

import (
	_ "embed"
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"limen/vm-service/internal/domain"
)

//go:embed default.yaml
var defaultCatalogue []byte

// Load reads the catalogue at path, or the built-in one when path is "".
func Load(path string) (domain.Catalogue, error) {
	data := defaultCatalogue
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("os types: %w", err)
		}
	}
	var c domain.Catalogue
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("os types %s: %w", path, err)
	}
	return c, check(c)
}

func check(c domain.Catalogue) error {
	if len(c) == 0 {
		return errors.New("os types: the catalogue is empty")
	}
	seen := map[string]bool{}
	for i, os := range c {
		switch {
		case os.Name == "" || os.Label == "":
			return fmt.Errorf("os types: entry %d needs a name and a label", i+1)
		case seen[os.Name]:
			return fmt.Errorf("os types: %s is listed twice", os.Name)
		case os.DiskGB < 1:
			return fmt.Errorf("os types: %s: disk_gb must be at least 1", os.Name)
		case os.DefaultMemory < domain.MinMemoryMiB || os.DefaultMemory > domain.MaxMemoryMiB:
			return fmt.Errorf("os types: %s: default_memory must be between %d and %d", os.Name, domain.MinMemoryMiB, domain.MaxMemoryMiB)
		}
		seen[os.Name] = true
	}
	return nil
}
