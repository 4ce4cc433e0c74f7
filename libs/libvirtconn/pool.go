package libvirtconn

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// ErrPoolElsewhere is a storage pool of the wanted name whose directory is not the configured one.
var ErrPoolElsewhere = errors.New("storage pool exists at another path")

// EnsureDirPool makes the directory pool name over path usable: defined (autostarted) when missing,
// started when inactive. Going through the pool API rather than the file system keeps it working
// against a remote host. A pool of that name elsewhere is refused with ErrPoolElsewhere: silently
// writing to a place nobody configured (an earlier stack's data directory, say) is worse than not
// starting.
func EnsureDirPool(l *libvirt.Libvirt, name, path string) error {
	pool, err := l.StoragePoolLookupByName(name)
	switch {
	case IsCode(err, libvirt.ErrNoStoragePool):
		def, err := (&libvirtxml.StoragePool{Type: "dir", Name: name, Target: &libvirtxml.StoragePoolTarget{Path: path}}).Marshal()
		if err != nil {
			return err
		}
		if pool, err = l.StoragePoolDefineXML(def, 0); err != nil {
			return fmt.Errorf("define pool %s: %w", name, err)
		}
		if err := l.StoragePoolSetAutostart(pool, 1); err != nil {
			return fmt.Errorf("autostart pool %s: %w", name, err)
		}
	case err != nil:
		return err
	default:
		if err := checkPoolPath(l, pool, path); err != nil {
			return err
		}
	}
	state, _, _, _, err := l.StoragePoolGetInfo(pool)
	if err != nil {
		return err
	}
	if libvirt.StoragePoolState(state) != libvirt.StoragePoolRunning {
		// The directory may have gone with the data directory of an earlier stack: building makes
		// it, and leaves an existing one as it is.
		if err := l.StoragePoolBuild(pool, 0); err != nil {
			return fmt.Errorf("build pool %s: %w", name, err)
		}
		if err := l.StoragePoolCreate(pool, 0); err != nil {
			return fmt.Errorf("start pool %s: %w", name, err)
		}
	}
	return nil
}

func checkPoolPath(l *libvirt.Libvirt, pool libvirt.StoragePool, path string) error {
	desc, err := l.StoragePoolGetXMLDesc(pool, 0)
	if err != nil {
		return err
	}
	var def libvirtxml.StoragePool
	if err := def.Unmarshal(desc); err != nil {
		return fmt.Errorf("pool %s: %w", pool.Name, err)
	}
	at := ""
	if def.Target != nil {
		at = def.Target.Path
	}
	if filepath.Clean(at) != filepath.Clean(path) {
		return fmt.Errorf("%w: %s is at %s, not at the configured %s", ErrPoolElsewhere, pool.Name, at, path)
	}
	return nil
}
