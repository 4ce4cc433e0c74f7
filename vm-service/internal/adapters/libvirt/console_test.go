package libvirt_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"limen/libs/testkit/libvirttest"
	"limen/vm-service/internal/adapters/libvirt"
	"limen/vm-service/internal/domain"
)

// rfbSecurityTypes reads an RFB server's greeting and the security types it offers.
func rfbSecurityTypes(t *testing.T, conn io.ReadWriter) []byte {
	t.Helper()
	r := bufio.NewReader(conn)
	version := make([]byte, 12)
	if _, err := io.ReadFull(r, version); err != nil || string(version) != "RFB 003.008\n" {
		t.Fatalf("greeting %q: %v", version, err)
	}
	if _, err := conn.Write(version); err != nil {
		t.Fatal(err)
	}
	n, err := r.ReadByte()
	if err != nil {
		t.Fatal(err)
	}
	types := make([]byte, n)
	if _, err := io.ReadFull(r, types); err != nil {
		t.Fatal(err)
	}
	if string(types) == "\x01" {
		if _, err := conn.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		var result [4]byte
		if _, err := io.ReadFull(r, result[:]); err != nil || binary.BigEndian.Uint32(result[:]) != 0 {
			t.Fatalf("security result %v: %v", result, err)
		}
	}
	return types
}

// With DisplayListen (a libvirt on another host), a VM's display listens on TCP at that address and
// asks for a password that only the definition holds: a client without it is offered nothing but
// VNC authentication, while the console vm-service opens answers the challenge itself and offers its
// client the display without any. Harden moves displays between the two kinds as the setting says.
func TestConsoles_DisplayOnTCPWithAPasswordOnlyLIMENKnows(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	d := libvirttest.Shared(t)
	cfg := libvirt.Config{DomainType: "qemu", Pool: "limen-vms", PoolPath: filepath.Join(d.ImageDir(), "vms"),
		Network: libvirt.NetworkNone, Installation: "installation-a", DisplayListen: "127.0.0.1"}
	h, err := libvirt.New(func() (*golibvirt.Libvirt, error) { return l, nil }, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dial, name, err := libvirt.StreamDialer(d.URI(), d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	consoles := libvirt.NewConsoles(h, dial, name)
	s := spec()
	if err := h.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Delete(ctx, s.UUID) })
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(s.UUID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := consoles.OpenConsole(ctx, s.UUID, domain.ConsoleVNC); err != domain.ErrVMNotRunning {
		t.Fatalf("console of a stopped machine: %v", err)
	}
	if err := l.DomainCreate(dom); err != nil {
		t.Fatal(err)
	}
	live, err := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLSecure)
	if err != nil {
		t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(live); err != nil {
		t.Fatal(err)
	}
	vnc := def.Devices.Graphics[0].VNC
	if vnc.Port < 5900 || len(vnc.Passwd) != 8 || vnc.Listen != "127.0.0.1" || len(def.Devices.Serials) != 1 || def.Devices.Serials[0].Source.Pty == nil {
		t.Fatalf("display %+v, serials %+v", vnc, def.Devices.Serials)
	}

	direct, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(vnc.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if types := rfbSecurityTypes(t, direct); string(types) != "\x02" {
		t.Fatalf("the display offers %v to a client without the password, want VNC authentication only", types)
	}
	stream, err := consoles.OpenConsole(ctx, s.UUID, domain.ConsoleVNC)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if types := rfbSecurityTypes(t, stream.(io.ReadWriter)); string(types) != "\x01" {
		t.Fatalf("vm-service's console offers %v, want none only", types)
	}

	// Back to sockets without the setting, and to TCP again with it.
	cfg.DisplayListen = ""
	plain, err := libvirt.New(func() (*golibvirt.Libvirt, error) { return l, nil }, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		h    *libvirt.Hypervisor
		want string
	}{{plain, "<listen type='socket'"}, {h, "<listen type='address' address='127.0.0.1'"}} {
		if changed, err := c.h.Harden(ctx); err != nil || len(changed) != 1 {
			t.Fatalf("Harden = %v, %v", changed, err)
		}
		x, _ := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive|golibvirt.DomainXMLSecure)
		if !strings.Contains(x, c.want) {
			t.Fatalf("hardened display, want %s:\n%s", c.want, x)
		}
	}
}
