package libvirt_test

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/libvirtconn"
	"limen/libs/testkit/libvirttest"
	"limen/media-service/internal/adapters/libvirt"
)

func TestMain(m *testing.M) { libvirttest.Main(m) }

func clientOf(l *golibvirt.Libvirt) libvirtconn.Client {
	return func() (*golibvirt.Libvirt, error) { return l, nil }
}

// newLibrary makes a library over a fresh directory, and removes its pool, volumes and directory at
// the end.
func newLibrary(t testing.TB, l *golibvirt.Libvirt) (*libvirt.Library, string) {
	t.Helper()
	name := "limen-isos-" + uuid.NewString()[:8]
	dir := filepath.Join(libvirttest.Shared(t).ImageDir(), name)
	return newLibraryAt(t, l, name, dir), dir
}

func newLibraryAt(t testing.TB, l *golibvirt.Libvirt, name, dir string) *libvirt.Library {
	t.Helper()
	t.Cleanup(func() { removePool(l, name, dir) })
	lib, err := libvirt.NewLibrary(clientOf(l), libvirt.LibraryConfig{Pool: name, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

func removePool(l *golibvirt.Libvirt, name, dir string) {
	pool, err := l.StoragePoolLookupByName(name)
	if err != nil {
		return
	}
	_ = l.StoragePoolRefresh(pool, 0)
	if vols, _, err := l.StoragePoolListAllVolumes(pool, 1, 0); err == nil {
		for _, vol := range vols {
			_ = l.StorageVolDelete(vol, 0)
		}
	}
	_ = l.StoragePoolDestroy(pool)
	_ = l.StoragePoolUndefine(pool)
	_ = os.RemoveAll(dir)
}

// mediaDir is a directory outside any pool that the guests (run as the daemon's user) can read,
// unlike t.TempDir.
func mediaDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(libvirttest.Shared(t).ImageDir(), "media-"+uuid.NewString()[:8])
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// makeISO writes a small real ISO image whose volume label is label.
func makeISO(t testing.TB, dir, name, label string) string {
	t.Helper()
	content := t.TempDir()
	if err := os.WriteFile(filepath.Join(content, "README.TXT"), []byte(label), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if out, err := exec.Command("genisoimage", "-quiet", "-o", path, "-V", label, "-J", "-r", content+"/").CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v: %s", err, out)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// guestXML is a LIMEN-like domain: q35, 64 MiB, software emulation, no OS, vm-service's empty
// CD-ROM drive when cdrom is set.
func guestXML(id uuid.UUID, cdrom bool) string {
	drive := ""
	if cdrom {
		drive = cdromXML("")
	}
	return fmt.Sprintf(`<domain type='qemu'><name>%s</name><uuid>%s</uuid><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='q35'>hvm</type></os><devices>%s</devices></domain>`, contract.DomainName(id.String()), id, drive)
}

// cdromXML is vm-service's CD-ROM drive holding path ("": empty). Test paths need no XML escaping.
func cdromXML(path string) string {
	source := ""
	if path != "" {
		source = "<source file='" + path + "'/>"
	}
	return fmt.Sprintf(`<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>%s<target dev='%s' bus='%s'/><readonly/></disk>`,
		source, contract.CDROMTarget, contract.CDROMBus)
}

// newGuest defines a guest, starts it when running is set, and destroys and undefines it at the end.
func newGuest(t testing.TB, l *golibvirt.Libvirt, running, cdrom bool) uuid.UUID {
	t.Helper()
	id := uuid.New()
	dom, err := l.DomainDefineXML(guestXML(id, cdrom))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.DomainDestroy(dom)
		_ = l.DomainUndefineFlags(dom, golibvirt.DomainUndefineNvram)
	})
	if running {
		if err := l.DomainCreate(dom); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// cdroms reads the CD-ROM drives of a domain's live (flags 0) or persistent (DomainXMLInactive)
// definition straight from libvirt: what the adapter reports is not evidence of what it did.
func cdroms(t testing.TB, l *golibvirt.Libvirt, id uuid.UUID, flags golibvirt.DomainXMLFlags) []string {
	t.Helper()
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(id))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := l.DomainGetXMLDesc(dom, flags)
	if err != nil {
		t.Fatal(err)
	}
	var def struct {
		Disks []struct {
			Device string `xml:"device,attr"`
			Source *struct {
				File string `xml:"file,attr"`
			} `xml:"source"`
		} `xml:"devices>disk"`
	}
	if err := xml.Unmarshal([]byte(desc), &def); err != nil {
		t.Fatal(err)
	}
	var media []string
	for _, d := range def.Disks {
		if d.Device != "cdrom" {
			continue
		}
		if d.Source == nil {
			media = append(media, "")
		} else {
			media = append(media, d.Source.File)
		}
	}
	return media
}

// expectMedia checks both definitions hold want in their single CD-ROM drive.
func expectMedia(t testing.TB, l *golibvirt.Libvirt, id uuid.UUID, want string, live bool) {
	t.Helper()
	views := map[string]golibvirt.DomainXMLFlags{"persistent": golibvirt.DomainXMLInactive}
	if live {
		views["live"] = 0
	}
	for view, flags := range views {
		if got := cdroms(t, l, id, flags); len(got) != 1 || got[0] != want {
			t.Errorf("%s definition: CD-ROM drives %q, want one holding %q", view, got, want)
		}
	}
}
