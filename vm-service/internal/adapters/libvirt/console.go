package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
	"github.com/google/uuid"
	"libvirt.org/go/libvirtxml"

	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/vm-service/internal/domain"
)

// consoleOpenTimeout bounds opening a console: dialling, libvirt's handshake and the first answer.
const consoleOpenTimeout = 10 * time.Second

// Consoles implements app.Consoles.
//
// The display is QEMU's VNC server on a unix socket in the domain's private directory (see
// socketDisplay), which vm-service opens itself: libvirt has no stream for a display, and
// virDomainOpenGraphicsFD passes a file descriptor, which only a local connection can carry. A
// display on TCP with a password only LIMEN knows (DisplayListen, for a libvirt on another host) is
// opened over TCP, vm-service answering QEMU's password challenge (see vncauth.go).
//
// The serial line is libvirt's console stream, which works over any connection, remote ones
// included. go-libvirt reads such a stream but cannot write to it, so each serial console gets a
// libvirt connection of its own (Dial), on which go-libvirt opens the stream and vm-service sends
// the stream's packets itself; closing that connection ends the stream in libvirtd.
type Consoles struct {
	h *Hypervisor
	// Dial opens a new connection to the same libvirt as the hypervisor's, and Name is what to open
	// on it (see StreamDialer).
	Dial socket.Dialer
	Name golibvirt.ConnectURI
}

// NewConsoles opens the consoles of h's machines.
func NewConsoles(h *Hypervisor, dial socket.Dialer, name golibvirt.ConnectURI) *Consoles {
	return &Consoles{h: h, Dial: dial, Name: name}
}

func (c *Consoles) OpenConsole(ctx context.Context, id uuid.UUID, protocol domain.ConsoleProtocol) (io.ReadWriteCloser, error) {
	l, dom, err := c.h.lookup(id)
	if err != nil {
		return nil, err
	}
	live, err := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLSecure)
	if golibvirt.IsNotFound(err) {
		return nil, contract.ErrMachineNotFound
	}
	if err != nil {
		return nil, err
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(live); err != nil {
		return nil, err
	}
	if def.ID == nil {
		return nil, domain.ErrVMNotRunning
	}
	if protocol == domain.ConsoleSerial {
		if len(def.Devices.Consoles) == 0 && len(def.Devices.Serials) == 0 {
			return nil, domain.ErrNoSerialConsole
		}
		return c.openSerial(ctx, id)
	}
	return openDisplay(ctx, def.Devices.Graphics)
}

// openDisplay connects to the machine's first VNC display.
func openDisplay(ctx context.Context, graphics []libvirtxml.DomainGraphic) (io.ReadWriteCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, consoleOpenTimeout)
	defer cancel()
	for _, g := range graphics {
		vnc := g.VNC
		if vnc == nil {
			continue
		}
		for _, listener := range vnc.Listeners {
			if listener.Socket != nil && listener.Socket.Socket != "" {
				return (&net.Dialer{}).DialContext(ctx, "unix", listener.Socket.Socket)
			}
		}
		if vnc.Port > 0 {
			return dialPasswordDisplay(ctx, displayAddress(vnc), vnc.Passwd)
		}
	}
	return nil, errors.New("the machine has no VNC display")
}

// displayAddress is where a display on TCP listens.
func displayAddress(vnc *libvirtxml.DomainGraphicVNC) string {
	host := vnc.Listen
	for _, listener := range vnc.Listeners {
		if listener.Address != nil && listener.Address.Address != "" {
			host = listener.Address.Address
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(vnc.Port))
}

// openSerial opens the machine's console stream on a connection of its own, taking the console over
// from whoever holds it (as `virsh console --force` does): the newest session wins.
func (c *Consoles) openSerial(ctx context.Context, id uuid.UUID) (io.ReadWriteCloser, error) {
	tap := &tapDialer{Dialer: c.Dial}
	lv := golibvirt.NewWithDialer(tap)
	s := &serialStream{tap: tap, opened: make(chan struct{})}
	tap.onPacket = s.packet
	// go-libvirt's handshake has no deadline of its own; closing the connection ends it.
	abort := context.AfterFunc(ctx, tap.close)
	defer abort()
	timer := time.AfterFunc(consoleOpenTimeout, tap.close)
	defer timer.Stop()
	if err := lv.ConnectToURI(c.Name); err != nil {
		tap.close()
		return nil, fmt.Errorf("%w: console connection: %v", contract.ErrHypervisorUnavailable, err)
	}
	dom, err := lv.DomainLookupByUUID(golibvirt.UUID(id))
	if err != nil {
		tap.close()
		if golibvirt.IsNotFound(err) {
			return nil, contract.ErrMachineNotFound
		}
		return nil, err
	}
	reader, writer := io.Pipe()
	s.reader = reader
	ended := make(chan error, 1)
	go func() {
		err := lv.DomainOpenConsole(dom, golibvirt.OptString{}, writer, uint32(golibvirt.DomainConsoleForce))
		ended <- err
		if err == nil {
			err = io.EOF
		}
		_ = writer.CloseWithError(err)
		tap.close()
	}()
	select {
	case <-s.opened:
		return s, nil
	case err := <-ended:
		tap.close()
		if libvirtconn.IsCode(err, golibvirt.ErrOperationInvalid) {
			return nil, domain.ErrVMNotRunning
		}
		if err == nil {
			err = errors.New("the console stream ended at once")
		}
		return nil, fmt.Errorf("open the console stream: %w", err)
	}
}

// serialStream is an open console stream: what the guest writes comes from reader, what the client
// types goes out as the stream's data packets.
type serialStream struct {
	tap    *tapDialer
	reader *io.PipeReader
	// opened is closed when libvirt accepted the open call; serial is that call's.
	opened chan struct{}
	mu     sync.Mutex
	serial int32
	call   bool
}

// packet follows the connection's packets: the open call going out names the stream (its serial),
// and its successful reply opens it.
func (s *serialStream) packet(out bool, h socket.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case out && h.Procedure == procDomainOpenConsole && h.Type == socket.Call:
		s.serial, s.call = h.Serial, true
	case !out && s.call && h.Serial == s.serial && h.Type == socket.Reply && h.Status == socket.StatusOK:
		s.call = false
		close(s.opened)
	}
}

func (s *serialStream) Read(p []byte) (int, error) { return s.reader.Read(p) }

// maxStreamPacket bounds the data of one stream packet, well below libvirt's limit.
const maxStreamPacket = 64 << 10

func (s *serialStream) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxStreamPacket)
		if err := s.tap.send(socket.Header{Program: remoteProgram, Version: remoteVersion, Procedure: procDomainOpenConsole,
			Type: socket.Stream, Serial: s.serial, Status: socket.StatusContinue}, p[:n]); err != nil {
			return written, err
		}
		written, p = written+n, p[n:]
	}
	return written, nil
}

// Close drops the stream's connection, which ends the stream in libvirtd and releases the console.
func (s *serialStream) Close() error {
	s.tap.close()
	return s.reader.Close()
}
