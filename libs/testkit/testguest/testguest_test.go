package testguest_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"

	"limen/libs/testkit/libvirttest"
	"limen/libs/testkit/testguest"
)

func TestMain(m *testing.M) { libvirttest.Main(m) }

// boot starts the guest in its own definition under software emulation and waits for its shell.
func boot(t *testing.T, l *libvirt.Libvirt, name string, opts testguest.Options) (libvirt.Domain, *testguest.Console) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := testguest.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	console := filepath.Join(libvirttest.Shared(t).ImageDir(), name+".sock")
	def, err := testguest.Definition(name, "qemu", img, console, opts).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	dom, err := l.DomainCreateXML(def, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.DomainDestroy(dom) })
	c, err := testguest.Dial(ctx, console)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	started := time.Now()
	if err := c.WaitUp(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("shell answered %.1fs after start", time.Since(started).Seconds())
	return dom, c
}

func run(t *testing.T, c *testguest.Console, command string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, status, err := c.Run(ctx, command)
	if err != nil {
		t.Fatal(err)
	}
	return out, status
}

func waitShutoff(l *libvirt.Libvirt, dom libvirt.Domain, within time.Duration) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		state, _, err := l.DomainGetState(dom, 0)
		if err != nil || libvirt.DomainState(state) == libvirt.DomainShutoff {
			return true // a transient domain is gone once it is off
		}
	}
	return false
}

// The guest's shell, its network (an unrestricted user-mode NIC reaches the host: the control for
// the isolation tests, which must see the same probe fail) and its power button.
func TestGuest_ShellNetworkAndPowerButton(t *testing.T) {
	l := libvirttest.Connect(t)
	dom, c := boot(t, l, "limen-testguest-basic", testguest.Options{})

	if out, status := run(t, c, "echo $((6*7)); false"); out != "42" || status != 1 {
		t.Fatalf("Run = %q, %d; want 42, 1", out, status)
	}
	if out, _ := run(t, c, "cat /run/lease"); out != "10.0.2.15" {
		t.Fatalf("DHCP lease %q, want 10.0.2.15", out)
	}
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if conn, err := host.Accept(); err == nil {
			conn.Close()
			accepted <- struct{}{}
		}
	}()
	port := host.Addr().(*net.TCPAddr).Port
	if out, status := run(t, c, fmt.Sprintf("nc -w 3 10.0.2.2 %d </dev/null", port)); status != 0 {
		t.Fatalf("an unrestricted guest cannot reach the host (%d: %s): the probe is broken", status, out)
	}
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the host never saw the guest's connection")
	}

	if err := l.DomainShutdown(dom); err != nil {
		t.Fatal(err)
	}
	if !waitShutoff(l, dom, 30*time.Second) {
		t.Fatalf("the guest ignored the ACPI power button; console:\n%s", c.Output())
	}
}

func TestGuest_IgnoringThePowerButton(t *testing.T) {
	l := libvirttest.Connect(t)
	dom, _ := boot(t, l, "limen-testguest-deaf", testguest.Options{IgnorePowerButton: true})
	if err := l.DomainShutdown(dom); err != nil {
		t.Fatal(err)
	}
	if waitShutoff(l, dom, 5*time.Second) {
		t.Fatal("a guest told to ignore ACPI powered off")
	}
}

// The private daemon's user cannot open /dev/kvm, whatever the machine has: the probe must say no
// without booting anything, and say why.
func TestProbeKVM_NoKVMForThisUser(t *testing.T) {
	l := libvirttest.Connect(t)
	ok, reason, err := testguest.ProbeKVM(context.Background(), l, libvirttest.Shared(t).ImageDir())
	if err != nil {
		t.Fatal(err)
	}
	if ok || !strings.Contains(reason, "KVM") {
		t.Fatalf("ProbeKVM = %v, %q; want false with a reason", ok, reason)
	}
}
