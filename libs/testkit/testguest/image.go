// Package testguest is a real, tiny Linux guest for tests: Debian's cloud kernel and an initramfs of
// busybox-static, both taken from Debian's packages at test time (nothing else is downloaded). It boots
// under software emulation in seconds, takes a DHCP lease on a virtio NIC, powers off on the ACPI
// power button, and serves a shell on its serial line that a test drives through Console.
//
// The image is built once and cached (LIMEN_TESTGUEST_CACHE, default /var/cache/limen/testguest), so
// a test run rebuilds it only when this package's guest definition changes.
package testguest

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

var (
	//go:embed init.sh
	initScript []byte
	//go:embed udhcpc.sh
	dhcpScript []byte
	//go:embed power.sh
	powerScript []byte
)

const (
	kernelPackage  = "linux-image-cloud-amd64" // the smallest Debian kernel with virtio and ACPI
	busyboxPackage = "busybox-static"
)

// modules are the kernel modules the guest loads, in dependency order: virtio networking, the ACPI
// power button and the input events acpid reads it from.
var modules = []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
	"failover", "net_failover", "virtio_net", "button", "evdev"}

// Image is a built guest: the kernel and initramfs to boot with <os><kernel/><initrd/>.
type Image struct {
	Kernel, Initrd string
}

// CacheDir is where images are kept between runs. It must be readable by the user QEMU runs as.
func CacheDir() string {
	if dir := os.Getenv("LIMEN_TESTGUEST_CACHE"); dir != "" {
		return dir
	}
	return "/var/cache/limen/testguest"
}

// Build returns the cached image, building it first when this version of the guest has none yet.
// Concurrent callers (test packages run in parallel) wait for one build.
func Build(ctx context.Context) (Image, error) {
	root := CacheDir()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Image{}, err
	}
	dir := filepath.Join(root, version())
	img := Image{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img")}
	if built(img) {
		return img, nil
	}
	lock, err := os.OpenFile(filepath.Join(root, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Image{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return Image{}, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if built(img) {
		return img, nil
	}
	if err := build(ctx, dir); err != nil {
		return Image{}, fmt.Errorf("build the test guest: %w", err)
	}
	return img, nil
}

// version names a build by everything that goes into it but the packages, which change rarely and
// never matter to a test.
func version() string {
	h := sha256.New()
	for _, part := range [][]byte{initScript, dhcpScript, powerScript, []byte(strings.Join(modules, " ")), []byte(kernelPackage)} {
		h.Write(part)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func built(img Image) bool {
	for _, f := range []string{img.Kernel, img.Initrd} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			return false
		}
	}
	return true
}

// build downloads the two packages with apt, unpacks them and packs the initramfs with the guest's
// own busybox, then moves the result into place in one rename.
func build(ctx context.Context, dir string) error {
	work, err := os.MkdirTemp(filepath.Dir(dir), ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// apt drops privileges to _apt for downloads when it can reach the directory.
	if err := os.Chmod(work, 0o777); err != nil {
		return err
	}
	kernelPkg, err := kernelPackageName(ctx)
	if err != nil {
		return err
	}
	if _, err := run(ctx, work, "apt-get", "download", "-qq", kernelPkg, busyboxPackage); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(work, "*.deb"))
	tree := filepath.Join(work, "tree")
	for _, deb := range debs {
		if _, err := run(ctx, work, "dpkg-deb", "-x", deb, tree); err != nil {
			return err
		}
	}
	kernels, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return fmt.Errorf("%s holds %d kernels, want 1", kernelPkg, len(kernels))
	}
	out := filepath.Join(work, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := copyFile(kernels[0], filepath.Join(out, "vmlinuz"), 0o644); err != nil {
		return err
	}
	initramfs := filepath.Join(work, "initramfs")
	if err := layoutInitramfs(tree, initramfs); err != nil {
		return err
	}
	busybox := filepath.Join(tree, "bin", "busybox")
	archive, err := run(ctx, initramfs, "sh", "-c", "find . | "+busybox+" cpio -o -H newc 2>/dev/null")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "initrd.img"), archive, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return err
	}
	_ = os.RemoveAll(dir) // a partial build of an earlier, interrupted run
	return os.Rename(out, dir)
}

// layoutInitramfs puts busybox, the scripts and the modules where init.sh expects them.
func layoutInitramfs(tree, root string) error {
	for _, dir := range []string{"bin", "etc/acpi/PWRF", "lib/modules", "dev", "proc", "sys", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile(filepath.Join(tree, "bin", "busybox"), filepath.Join(root, "bin", "busybox"), 0o755); err != nil {
		return err
	}
	// acpid's built-in table runs /etc/acpi/PWRF/00000080 on the power button.
	for name, script := range map[string][]byte{"init": initScript, "etc/udhcpc.sh": dhcpScript, "etc/acpi/PWRF/00000080": powerScript} {
		if err := os.WriteFile(filepath.Join(root, name), script, 0o755); err != nil {
			return err
		}
	}
	found := map[string]string{}
	err := filepath.WalkDir(filepath.Join(tree, "lib", "modules"), func(path string, _ os.DirEntry, err error) error {
		if name, ok := strings.CutSuffix(filepath.Base(path), ".ko"); ok && err == nil {
			found[name] = path
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, m := range modules {
		if found[m] == "" {
			continue // built into this kernel
		}
		if err := copyFile(found[m], filepath.Join(root, "lib", "modules", m+".ko"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// kernelPackageName resolves the kernel metapackage to the versioned package apt can download,
// refreshing apt's lists once when they are empty (a fresh machine).
func kernelPackageName(ctx context.Context) (string, error) {
	resolve := func() string {
		out, _ := run(ctx, "", "apt-cache", "depends", kernelPackage)
		for _, line := range strings.Split(string(out), "\n") {
			if name, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(name, "linux-image-") {
				return name
			}
		}
		return ""
	}
	if name := resolve(); name != "" {
		return name, nil
	}
	if _, err := run(ctx, "", "apt-get", "update", "-qq"); err != nil {
		return "", fmt.Errorf("apt has no %s and cannot update its lists: %w", kernelPackage, err)
	}
	if name := resolve(); name != "" {
		return name, nil
	}
	return "", fmt.Errorf("apt knows no %s", kernelPackage)
}

func run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func copyFile(from, to string, mode os.FileMode) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		return err
	}
	return os.Chmod(to, mode) // WriteFile's mode is filtered by the umask
}
