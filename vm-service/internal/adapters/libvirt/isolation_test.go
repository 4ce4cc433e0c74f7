package libvirt_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"

	"limen/libs/testkit/libvirttest"
	"limen/libs/testkit/testguest"
	"limen/vm-service/internal/adapters/libvirt"
	"limen/vm-service/internal/app"
	"limen/vm-service/internal/domain"
)

// hostPorts are what a guest must never reach: Postgres, the broker, every LIMEN service, libvirt's
// TCP and TLS ports, and the whole VNC display range.
func hostPorts() []int {
	ports := []int{15432, 5432, 19092, 9092, 18081, 18082, 18083, 18084, 18443, 16509, 16514}
	for p := 5900; p < 6000; p++ {
		ports = append(ports, p)
	}
	return ports
}

// bootGuest creates a VM through the adapter (the definition vm-service really produces, with the
// given network setting), makes it boot the test guest, starts it and waits for its shell.
func bootGuest(t *testing.T, l *golibvirt.Libvirt, network string, opts testguest.Options) (*libvirt.Hypervisor, app.MachineSpec, *testguest.Console) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := testguest.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libvirt.New(func() (*golibvirt.Libvirt, error) { return l, nil }, libvirt.Config{
		DomainType: "qemu", Pool: "limen-vms", PoolPath: filepath.Join(libvirttest.Shared(t).ImageDir(), "vms"),
		Network: network, Installation: "installation-a",
	})
	if err != nil {
		t.Fatal(err)
	}
	s := spec()
	s.MemoryMiB = 128
	if err := h.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Delete(context.Background(), s.UUID) })

	dom, err := l.DomainLookupByUUID(golibvirt.UUID(s.UUID))
	if err != nil {
		t.Fatal(err)
	}
	current, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(current); err != nil {
		t.Fatal(err)
	}
	console := filepath.Join(libvirttest.Shared(t).ImageDir(), s.UUID.String()+".sock")
	testguest.Attach(&def, img, console, opts)
	withGuest, err := def.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.DomainDefineXML(withGuest); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctx, s.UUID); err != nil {
		t.Fatal(err)
	}
	c, err := testguest.Dial(ctx, console)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitUp(ctx); err != nil {
		t.Fatal(err)
	}
	return h, s, c
}

// listenEverywhere opens TCP listeners on every address of the host at each port (a port already
// taken has a listener too) and a UDP one, and reports whatever reaches them.
func listenEverywhere(t *testing.T, ports []int) (udpPort int, reached func() []string) {
	t.Helper()
	hits := make(chan string, 1024)
	for _, port := range ports {
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				hits <- "tcp " + conn.LocalAddr().String() + " from " + conn.RemoteAddr().String()
				conn.Close()
			}
		}()
	}
	udp, err := net.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			hits <- "udp from " + from.String()
		}
	}()
	return udp.LocalAddr().(*net.UDPAddr).Port, func() []string {
		var got []string
		for {
			select {
			case hit := <-hits:
				got = append(got, hit)
			default:
				return got
			}
		}
	}
}

// hostAddresses are 10.0.2.2 (user networking's alias of the host's 127.0.0.1), its DNS alias, and
// every IPv4 address of the host's own interfaces.
func hostAddresses(t *testing.T) []string {
	t.Helper()
	addrs := []string{"10.0.2.2", "10.0.2.3"}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ifaddrs {
		if ipnet, ok := a.(*net.IPNet); ok && ipnet.IP.To4() != nil && !ipnet.IP.IsLoopback() {
			addrs = append(addrs, ipnet.IP.String())
		}
	}
	return addrs
}

// The default network: from inside a real guest on vm-service's own definition, every connection
// to the host fails, while the guest still has its DHCP lease. The same probe succeeds from an
// unrestricted guest (testguest's own test), so a failure here is the isolation, not the probe.
func TestIsolation_GuestReachesNothingOnTheHost_ThenStopsGracefully(t *testing.T) {
	l := libvirttest.Connect(t)
	h, s, c := bootGuest(t, l, libvirt.NetworkIsolated, testguest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if out, _, err := c.Run(ctx, "cat /run/lease"); err != nil || out != "10.0.2.15" {
		t.Fatalf("no DHCP lease on the isolated network: %q %v", out, err)
	}
	ports := hostPorts()
	udpPort, reached := listenEverywhere(t, ports)
	var script strings.Builder
	for _, addr := range hostAddresses(t) {
		fmt.Fprintf(&script, "for p in %s; do (nc -w 3 %s $p </dev/null >/dev/null 2>&1 && echo OPEN %s:$p) & done; ",
			strings.Trim(fmt.Sprint(ports), "[]"), addr, addr)
		// busybox's nc has no UDP; its tftp client sends a datagram to any port.
		fmt.Fprintf(&script, "(timeout 2 tftp -g -r limen -l /dev/null %s %d >/dev/null 2>&1) & ", addr, udpPort)
	}
	script.WriteString("wait")
	command := "(" + script.String() + ")" // a subshell: no job-control chatter
	out, _, err := c.Run(ctx, command)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "OPEN") {
		t.Errorf("the guest connected to the host:\n%s", out)
	}
	time.Sleep(time.Second) // a UDP datagram in flight
	if hits := reached(); len(hits) > 0 {
		t.Errorf("host listeners were reached from the guest: %v", hits)
	}

	// The display is on a unix socket, not TCP (the probe above covered 5900-5999).
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(s.UUID))
	if err != nil {
		t.Fatal(err)
	}
	live, err := l.DomainGetXMLDesc(dom, 0)
	if err != nil {
		t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(live); err != nil {
		t.Fatal(err)
	}
	vnc := def.Devices.Graphics[0].VNC
	if vnc == nil || vnc.Port > 0 || len(vnc.Listeners) != 1 || vnc.Listeners[0].Socket == nil || vnc.Listeners[0].Socket.Socket == "" {
		t.Fatalf("the display is not (only) on a unix socket:\n%s", live)
	}
	checkDisplaySocket(t, vnc.Listeners[0].Socket.Socket)

	// Graceful stop: the guest powers off on ACPI long before the timeout, nothing forced.
	started := time.Now()
	forced, err := h.Shutdown(ctx, s.UUID, time.Minute)
	if err != nil || forced {
		t.Fatalf("shutdown: forced=%v err=%v", forced, err)
	}
	t.Logf("the guest powered off on ACPI in %.1fs", time.Since(started).Seconds())
	expectState(t, h, s.UUID, domain.StatusStopped)
}

// A guest that ignores the power button is forced off once the stop timeout passes, and only then.
func TestShutdown_ForcesOnlyAGuestThatIgnoresACPI(t *testing.T) {
	l := libvirttest.Connect(t)
	h, s, _ := bootGuest(t, l, libvirt.NetworkIsolated, testguest.Options{IgnorePowerButton: true})
	started := time.Now()
	forced, err := h.Shutdown(context.Background(), s.UUID, 3*time.Second)
	if err != nil || !forced {
		t.Fatalf("shutdown: forced=%v err=%v", forced, err)
	}
	if waited := time.Since(started); waited < 3*time.Second {
		t.Fatalf("forced after %v, before the timeout", waited)
	}
	expectState(t, h, s.UUID, domain.StatusStopped)
}

// checkDisplaySocket: the owner (QEMU's user, and root) reaches the VNC server on the socket;
// any other local user is refused.
func checkDisplaySocket(t *testing.T, path string) {
	t.Helper()
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatalf("the display socket: %v", err)
	}
	banner := make([]byte, 12)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(banner)
	conn.Close()
	if err != nil || !strings.HasPrefix(string(banner), "RFB ") {
		t.Fatalf("no VNC server on %s: %q %v", path, banner, err)
	}
	if err := dialAsNobody(t, path); err == nil {
		t.Fatalf("user nobody opened the display socket %s", path)
	} else if !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("user nobody: %v, want permission denied", err)
	}
}

// dialEnv makes this test binary, run again by dialAsNobody, only dial and report.
const dialEnv = "LIMEN_TEST_DIAL_UNIX"

// dialAsNobody runs a copy of this test binary as user nobody to connect to a unix socket.
func dialAsNobody(t *testing.T, path string) error {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "limen-dial-") // t.TempDir's parent is private to root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "dial")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{dialEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return errors.New(strings.TrimSpace(string(out)))
	default:
		t.Fatalf("run the dialer as nobody: %v: %s", err, out)
		return nil
	}
}

// dialAndExit is the other half of dialAsNobody, called from TestMain.
func dialAndExit(path string) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	conn.Close()
	os.Exit(0)
}

// A VM defined by an earlier version (display on TCP, plain user-mode NIC) is brought up to the
// isolated definition; other installations' domains are left alone.
func TestHarden_UpgradesDefinitionsFromEarlierVersions(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	h, err := libvirt.New(func() (*golibvirt.Libvirt, error) { return l, nil }, libvirt.Config{
		DomainType: "qemu", Pool: "limen-vms", PoolPath: filepath.Join(libvirttest.Shared(t).ImageDir(), "vms"),
		Network: libvirt.NetworkIsolated, Installation: "installation-a",
	})
	if err != nil {
		t.Fatal(err)
	}
	other := newHypervisorOf(t, l, "qemu", "installation-b")
	ours, theirs := spec(), spec()
	for _, m := range []struct {
		h *libvirt.Hypervisor
		s app.MachineSpec
	}{{h, ours}, {other, theirs}} {
		if err := m.h.Create(ctx, m.s); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.h.Delete(ctx, m.s.UUID) })
		dom, err := l.DomainLookupByUUID(golibvirt.UUID(m.s.UUID))
		if err != nil {
			t.Fatal(err)
		}
		current, _ := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
		var def libvirtxml.Domain
		if err := def.Unmarshal(current); err != nil {
			t.Fatal(err)
		}
		def.QEMUCommandline = nil
		def.Devices.Interfaces = []libvirtxml.DomainInterface{{Source: &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}}}}
		def.Devices.Graphics = []libvirtxml.DomainGraphic{{VNC: &libvirtxml.DomainGraphicVNC{AutoPort: "yes", Listen: "127.0.0.1"}}}
		old, _ := def.Marshal()
		if _, err := l.DomainDefineXML(old); err != nil {
			t.Fatal(err)
		}
	}
	changed, err := h.Harden(ctx)
	if err != nil || len(changed) != 1 || changed[0] != ours.UUID {
		t.Fatalf("Harden = %v, %v; want only %s", changed, err, ours.UUID)
	}
	definition := func(s app.MachineSpec) string {
		dom, _ := l.DomainLookupByUUID(golibvirt.UUID(s.UUID))
		x, _ := l.DomainGetXMLDesc(dom, golibvirt.DomainXMLInactive)
		return x
	}
	got := definition(ours)
	if strings.Contains(got, "<interface type='user'") || strings.Contains(got, "autoport") || !strings.Contains(got, "restrict=on") || !strings.Contains(got, "<listen type='socket'") {
		t.Fatalf("not hardened:\n%s", got)
	}
	if !strings.Contains(definition(theirs), "<interface type='user'") {
		t.Fatal("another installation's domain was changed")
	}
	if changed, err := h.Harden(ctx); err != nil || len(changed) != 0 {
		t.Fatalf("second Harden = %v, %v; want nothing to do", changed, err)
	}
}
