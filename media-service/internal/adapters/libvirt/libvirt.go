// Package libvirt implements media-service's ISO library and CD-ROM drive over go-libvirt. The library
// is a directory storage pool and the drive the empty SATA CD-ROM vm-service gives every domain, both
// reached through the libvirt API so the same code serves a remote host.
package libvirt

import (
	"errors"
	"fmt"

	golibvirt "github.com/digitalocean/go-libvirt"

	"limen/media-service/internal/app"
)

// Client returns the current libvirt connection (the connection manager reconnects behind it).
type Client func() (*golibvirt.Libvirt, error)

// reachable reports a missing connection as the app's ErrHypervisorUnavailable.
func reachable(client Client) Client {
	return func() (*golibvirt.Libvirt, error) {
		l, err := client()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", app.ErrHypervisorUnavailable, err)
		}
		return l, nil
	}
}

func isCode(err error, code golibvirt.ErrorNumber) bool {
	var lerr golibvirt.Error
	return errors.As(err, &lerr) && lerr.Code == uint32(code)
}
