package libvirt

import (
	"crypto/rand"

	"libvirt.org/go/libvirtxml"
)

// socketDisplay is VNC on a unix socket that libvirt names in the domain's private directory.
func socketDisplay() *libvirtxml.DomainGraphicVNC {
	return &libvirtxml.DomainGraphicVNC{Listeners: []libvirtxml.DomainGraphicListener{{Socket: &libvirtxml.DomainGraphicListenerSocket{}}}}
}

// display is a new VM's display: on a unix socket, or, with DisplayListen (a libvirt on another host,
// whose sockets vm-service cannot open), on TCP at that address with a password of its own that only
// LIMEN knows (it is in the definition, which only libvirt's secure XML shows).
func (h *Hypervisor) display() *libvirtxml.DomainGraphicVNC {
	if h.cfg.DisplayListen == "" {
		return socketDisplay()
	}
	return &libvirtxml.DomainGraphicVNC{AutoPort: "yes", Passwd: displayPassword(),
		Listeners: []libvirtxml.DomainGraphicListener{{Address: &libvirtxml.DomainGraphicListenerAddress{Address: h.cfg.DisplayListen}}}}
}

// displayHardened reports whether a display is as this installation makes them (see display).
func (h *Hypervisor) displayHardened(vnc *libvirtxml.DomainGraphicVNC) bool {
	if h.cfg.DisplayListen == "" {
		return onSocketOnly(vnc)
	}
	if vnc.Passwd == "" || vnc.WebSocket != 0 || len(vnc.Listeners) != 1 || vnc.Listeners[0].Address == nil {
		return false
	}
	return vnc.Listeners[0].Address.Address == h.cfg.DisplayListen
}

func onSocketOnly(vnc *libvirtxml.DomainGraphicVNC) bool {
	if vnc.Port > 0 || vnc.AutoPort == "yes" || vnc.Listen != "" || vnc.WebSocket != 0 || len(vnc.Listeners) == 0 {
		return false
	}
	for _, listener := range vnc.Listeners {
		if listener.Socket == nil {
			return false
		}
	}
	return true
}

// displayPassword is 8 random letters and digits: VNC authentication reads no more than 8 bytes.
func displayPassword() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// serialConsole is the guest's first serial port on a pseudo-terminal that only QEMU's user (and
// root) can read, reached through libvirt's console stream; the console mirrors it.
func serialConsole() ([]libvirtxml.DomainSerial, []libvirtxml.DomainConsole) {
	port := uint(0)
	return []libvirtxml.DomainSerial{{Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
			Target: &libvirtxml.DomainSerialTarget{Port: &port}}},
		[]libvirtxml.DomainConsole{{Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
			Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port}}}
}
