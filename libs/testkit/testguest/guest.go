package testguest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"libvirt.org/go/libvirtxml"
)

// Options change how the guest behaves.
type Options struct {
	// IgnorePowerButton makes the guest ignore ACPI, as a hung or button-less OS does.
	IgnorePowerButton bool
}

// Attach makes a domain definition boot the image: kernel, initramfs and command line, and a first
// serial port that is a unix socket at console (in a directory QEMU's user may write), replacing
// any serial port or console the definition had. Everything else (disks, NICs, display) stays.
func Attach(def *libvirtxml.Domain, img Image, console string, opts Options) {
	if def.OS == nil {
		def.OS = &libvirtxml.DomainOS{}
	}
	def.OS.Kernel, def.OS.Initrd = img.Kernel, img.Initrd
	def.OS.Cmdline = "console=ttyS0 loglevel=1 panic=-1"
	if opts.IgnorePowerButton {
		def.OS.Cmdline += " limen.acpi=off"
	}
	def.OS.BootDevices = nil
	if def.Devices == nil {
		def.Devices = &libvirtxml.DomainDeviceList{}
	}
	port := uint(0)
	def.Devices.Serials = []libvirtxml.DomainSerial{{
		Source: &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "bind", Path: console}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	}}
	def.Devices.Consoles = nil
}

// Definition is a small domain of the guest's own with an unrestricted QEMU user-mode NIC, for
// tests of the guest itself and for the KVM probe.
func Definition(name, domainType string, img Image, console string, opts Options) *libvirtxml.Domain {
	def := &libvirtxml.Domain{
		Type: domainType, Name: name,
		Memory:     &libvirtxml.DomainMemory{Unit: "MiB", Value: 128},
		VCPU:       &libvirtxml.DomainVCPU{Value: 1},
		OS:         &libvirtxml.DomainOS{Type: &libvirtxml.DomainOSType{Arch: "x86_64", Machine: "q35", Type: "hvm"}},
		Features:   &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}, APIC: &libvirtxml.DomainFeatureAPIC{}},
		OnPoweroff: "destroy",
		Devices: &libvirtxml.DomainDeviceList{Interfaces: []libvirtxml.DomainInterface{{
			Source: &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}},
			Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}}},
	}
	Attach(def, img, console, opts)
	return def
}

// Console is the guest's shell on its serial line.
type Console struct {
	conn net.Conn
	seq  atomic.Int64

	mu      sync.Mutex
	out     bytes.Buffer // everything the guest printed, \r removed
	changed chan struct{}
	readErr error
}

// Dial connects to the serial socket that Attach configured, waiting for QEMU to create it.
func Dial(ctx context.Context, path string) (*Console, error) {
	for {
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		if err == nil {
			c := &Console{conn: conn, changed: make(chan struct{})}
			go c.read()
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("serial console %s: %w", path, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Console) read() {
	buf := make([]byte, 4096)
	for {
		n, err := c.conn.Read(buf)
		c.mu.Lock()
		c.out.Write(bytes.ReplaceAll(buf[:n], []byte("\r"), nil))
		if err != nil {
			c.readErr = err
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Output is everything the guest has printed so far.
func (c *Console) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// Close drops the connection; the guest keeps running.
func (c *Console) Close() error { return c.conn.Close() }

// WaitUp waits until the guest's shell answers.
func (c *Console) WaitUp(ctx context.Context) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err := c.Run(attempt, "true")
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the test guest did not come up: %w; its console said:\n%s", ctx.Err(), c.Output())
		}
	}
}

// endMarker is printed after each command with its exit status. The command line writes the
// sequence number as arithmetic so that an echo of the line itself can never match.
var endMarker = regexp.MustCompile(`__limen_(\d+)_end__:(\d+)\n`)

// Run runs a shell command in the guest and returns what it printed and its exit status.
func (c *Console) Run(ctx context.Context, command string) (string, int, error) {
	n := c.seq.Add(1)
	c.mu.Lock()
	start := c.out.Len()
	c.mu.Unlock()
	line := fmt.Sprintf("%s\necho __limen_$((%d))_end__:$?\n", command, n)
	if _, err := c.conn.Write([]byte(line)); err != nil {
		return "", 0, err
	}
	for {
		c.mu.Lock()
		text, changed, readErr := c.out.String()[start:], c.changed, c.readErr
		c.mu.Unlock()
		for _, m := range endMarker.FindAllStringSubmatchIndex(text, -1) {
			if text[m[2]:m[3]] != fmt.Sprint(n) {
				continue
			}
			var status int
			fmt.Sscan(text[m[4]:m[5]], &status)
			return strings.TrimSpace(text[:m[0]]), status, nil
		}
		if readErr != nil {
			return text, 0, fmt.Errorf("serial console closed: %w", readErr)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return text, 0, errors.Join(fmt.Errorf("no answer to %q", command), ctx.Err())
		}
	}
}
