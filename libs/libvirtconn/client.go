package libvirtconn

import (
	"errors"
	"fmt"

	"github.com/digitalocean/go-libvirt"
)

// Client is how adapters reach libvirt: Manager.Client, or a fixed connection in tests. Adapters ask
// for it on every call, because the manager replaces the connection when it reconnects.
type Client func() (*libvirt.Libvirt, error)

// ReportingAs wraps the client so that a missing connection comes back as unavailable (wrapping the
// cause): the error a service's use cases know, where ErrDisconnected belongs to this package.
func (c Client) ReportingAs(unavailable error) Client {
	return func() (*libvirt.Libvirt, error) {
		l, err := c()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", unavailable, err)
		}
		return l, nil
	}
}

// IsCode reports whether err is libvirt's error number code.
func IsCode(err error, code libvirt.ErrorNumber) bool {
	var lerr libvirt.Error
	return errors.As(err, &lerr) && lerr.Code == uint32(code)
}
