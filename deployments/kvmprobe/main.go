// Command kvmprobe tells `make run` which domain type vm-service should use on this host:
//
//	kvmprobe [-socket /var/run/libvirt/libvirt-sock] [-uri qemu:///system] [-cache FILE]
//
// It prints "kvm" when a real Linux guest (libs/testkit/testguest) boots under KVM through that
// libvirt, and "qemu" (software emulation) otherwise, with a one-line warning on stderr when the
// host has a /dev/kvm that does not work. A /dev/kvm that exists proves nothing: under nested
// virtualisation that does not work, guests crash or hang while libvirt reports them running.
// The verdict is kept in FILE for the same libvirt, kernel and QEMU, so only the first run boots.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"limen/libs/testkit/testguest"
)

func main() {
	socket := flag.String("socket", "/var/run/libvirt/libvirt-sock", "libvirt's unix socket")
	uri := flag.String("uri", string(libvirt.QEMUSystem), "libvirt URI to open on it")
	cache := flag.String("cache", "", "file that keeps the verdict between runs (empty: probe every time)")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	domainType, warning, err := verdict(ctx, *socket, *uri, *cache)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kvmprobe: %v; using software emulation\n", err)
		domainType = "qemu"
	} else if warning != "" {
		fmt.Fprintf(os.Stderr, "kvmprobe: warning: %s; using software emulation\n", warning)
	}
	fmt.Println(domainType)
}

// verdict returns the cached verdict when its key still matches, else probes and caches.
func verdict(ctx context.Context, socket, uri, cache string) (domainType, warning string, err error) {
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(socket), dialers.WithLocalTimeout(5*time.Second)))
	if err := l.ConnectToURI(libvirt.ConnectURI(uri)); err != nil {
		return "", "", fmt.Errorf("libvirt at %s: %w", socket, err)
	}
	defer l.Disconnect()
	key, err := cacheKey(l, socket, uri)
	if err != nil {
		return "", "", err
	}
	if cache != "" {
		if data, err := os.ReadFile(cache); err == nil {
			if cachedKey, cached, ok := strings.Cut(strings.TrimSpace(string(data)), "\n"); ok && cachedKey == key {
				domainType, warning, _ = strings.Cut(cached, "\n")
				return domainType, warning, nil
			}
		}
	}
	work, err := os.MkdirTemp("", "limen-kvmprobe-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o777); err != nil { // QEMU may run as another user; it makes the console socket here
		return "", "", err
	}
	ok, reason, err := testguest.ProbeKVM(ctx, l, work)
	if err != nil {
		return "", "", err
	}
	domainType = "kvm"
	if !ok {
		domainType = "qemu"
		if _, statErr := os.Stat("/dev/kvm"); statErr == nil {
			warning = "/dev/kvm exists but " + reason
		}
	}
	if cache != "" {
		_ = os.WriteFile(cache, []byte(key+"\n"+domainType+"\n"+warning+"\n"), 0o644)
	}
	return domainType, warning, nil
}

// cacheKey names what the verdict depends on: the libvirt and its QEMU, and the host's kernel.
func cacheKey(l *libvirt.Libvirt, socket, uri string) (string, error) {
	libvirtVersion, err := l.ConnectGetLibVersion()
	if err != nil {
		return "", err
	}
	hypervisorVersion, err := l.ConnectGetVersion()
	if err != nil {
		return "", err
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	_, kvmErr := os.Stat("/dev/kvm")
	return fmt.Sprintf("v1 socket=%s uri=%s libvirt=%d qemu=%d kernel=%s devkvm=%t",
		socket, uri, libvirtVersion, hypervisorVersion, strings.TrimSpace(string(kernel)), kvmErr == nil), nil
}
