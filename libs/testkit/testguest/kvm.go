package testguest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// kvmBootLimit is how long a guest under working KVM may take to reach its shell; under TCG the
// same guest takes about 7 s, under KVM well under that.
const kvmBootLimit = 30 * time.Second

// ProbeKVM reports whether a Linux guest really boots under KVM on this libvirt. A /dev/kvm that
// exists proves nothing: under nested virtualisation that does not work, QEMU crashes or the kernel
// hangs in early boot while the domain still reports "running". So the probe boots this package's
// guest and waits for its shell. workDir must be writable by the user QEMU runs as. The reason
// says why KVM is not used when it is not.
func ProbeKVM(ctx context.Context, l *libvirt.Libvirt, workDir string) (ok bool, reason string, err error) {
	arch, machine, virtType := libvirt.OptString{"x86_64"}, libvirt.OptString{"q35"}, libvirt.OptString{"kvm"}
	if _, err := l.ConnectGetDomainCapabilities(nil, arch, machine, virtType, 0); err != nil {
		return false, fmt.Sprintf("libvirt offers no KVM: %v", err), nil
	}
	img, err := Build(ctx)
	if err != nil {
		return false, "", err
	}
	console := filepath.Join(workDir, fmt.Sprintf("kvm-probe-%d.sock", os.Getpid()))
	def, err := Definition(fmt.Sprintf("limen-kvm-probe-%d", os.Getpid()), "kvm", img, console, Options{}).Marshal()
	if err != nil {
		return false, "", err
	}
	dom, err := l.DomainCreateXML(def, 0)
	if err != nil {
		return false, fmt.Sprintf("a KVM guest does not start: %v", err), nil
	}
	defer func() {
		_ = l.DomainDestroy(dom)
		_ = os.Remove(console)
	}()
	boot, cancel := context.WithTimeout(ctx, kvmBootLimit)
	defer cancel()
	c, err := Dial(boot, console)
	if err != nil {
		return false, fmt.Sprintf("a KVM guest did not come up: %v", err), nil
	}
	defer c.Close()
	if err := c.WaitUp(boot); err != nil {
		if ctx.Err() != nil {
			return false, "", ctx.Err()
		}
		return false, fmt.Sprintf("a Linux guest under KVM did not reach its shell within %s (nested virtualisation that does not work)", kvmBootLimit), nil
	}
	return true, "", nil
}
