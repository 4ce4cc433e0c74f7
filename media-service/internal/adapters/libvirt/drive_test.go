package libvirt_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/testkit/libvirttest"
	"limen/media-service/internal/adapters/libvirt"
	"limen/media-service/internal/domain"
)

func expectDriveHolds(t *testing.T, drive *libvirt.Drive, id uuid.UUID, want string) {
	t.Helper()
	got, err := drive.Media(context.Background(), id)
	if err != nil || got != want {
		t.Fatalf("Media = %q, %v; want %q", got, err, want)
	}
}

func TestDrive_AttachSwapEjectOnARunningGuest(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	dir := mediaDir(t)
	a, b := makeISO(t, dir, "a.iso", "A"), makeISO(t, dir, "b.iso", "B")
	drive := libvirt.NewDrive(clientOf(l))
	id := newGuest(t, l, true, true)
	expectDriveHolds(t, drive, id, "")

	if err := drive.Insert(ctx, id, a); err != nil {
		t.Fatalf("attach: %v", err)
	}
	expectMedia(t, l, id, a, true)
	expectDriveHolds(t, drive, id, a)

	if err := drive.Insert(ctx, id, b); err != nil {
		t.Fatalf("swap: %v", err)
	}
	expectMedia(t, l, id, b, true)
	expectDriveHolds(t, drive, id, b)

	if err := drive.Eject(ctx, id); err != nil {
		t.Fatalf("eject: %v", err)
	}
	expectMedia(t, l, id, "", true)
	expectDriveHolds(t, drive, id, "")
	if err := drive.Eject(ctx, id); err != nil {
		t.Fatalf("eject of an empty drive: %v", err)
	}
	expectMedia(t, l, id, "", true)
}

func TestDrive_PausedGuestChangesLiveAndPersistent(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	a := makeISO(t, mediaDir(t), "a.iso", "A")
	drive := libvirt.NewDrive(clientOf(l))
	id := newGuest(t, l, true, true)
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DomainSuspend(dom); err != nil {
		t.Fatal(err)
	}
	if err := drive.Insert(ctx, id, a); err != nil {
		t.Fatalf("attach while paused: %v", err)
	}
	expectMedia(t, l, id, a, true)
}

func TestDrive_AttachToAStoppedGuest_SeenAtItsNextStart(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	a := makeISO(t, mediaDir(t), "a.iso", "A")
	drive := libvirt.NewDrive(clientOf(l))
	id := newGuest(t, l, false, true)

	if err := drive.Insert(ctx, id, a); err != nil {
		t.Fatalf("attach: %v", err)
	}
	expectMedia(t, l, id, a, false)
	expectDriveHolds(t, drive, id, a)

	dom, err := l.DomainLookupByUUID(golibvirt.UUID(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.DomainCreate(dom); err != nil {
		t.Fatal(err)
	}
	expectMedia(t, l, id, a, true)
	if err := l.DomainDestroy(dom); err != nil {
		t.Fatal(err)
	}
	if err := drive.Eject(ctx, id); err != nil {
		t.Fatalf("eject: %v", err)
	}
	expectMedia(t, l, id, "", false)
}

func TestDrive_GuestWithoutCDROM(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	drive := libvirt.NewDrive(clientOf(l))
	id := newGuest(t, l, false, false)
	if _, err := drive.Media(ctx, id); !errors.Is(err, domain.ErrNoCDROM) {
		t.Fatalf("Media: %v", err)
	}
	if err := drive.Insert(ctx, id, "/x.iso"); !errors.Is(err, domain.ErrNoCDROM) {
		t.Fatalf("Insert: %v", err)
	}
	if err := drive.Eject(ctx, id); !errors.Is(err, domain.ErrNoCDROM) {
		t.Fatalf("Eject: %v", err)
	}
}

func TestDrive_UnknownMachine(t *testing.T) {
	ctx := context.Background()
	drive := libvirt.NewDrive(clientOf(libvirttest.Connect(t)))
	if _, err := drive.Media(ctx, uuid.New()); !errors.Is(err, contract.ErrMachineNotFound) {
		t.Fatalf("Media: %v", err)
	}
	if err := drive.Insert(ctx, uuid.New(), "/x.iso"); !errors.Is(err, contract.ErrMachineNotFound) {
		t.Fatalf("Insert: %v", err)
	}
}

func TestDriveAndLibrary_NoConnection(t *testing.T) {
	ctx := context.Background()
	down := func() (*golibvirt.Libvirt, error) { return nil, errors.New("libvirt: not connected") }
	if _, err := libvirt.NewDrive(down).Media(ctx, uuid.New()); !errors.Is(err, contract.ErrHypervisorUnavailable) {
		t.Fatalf("Media: %v", err)
	}
	if _, err := libvirt.NewDrive(down).Holding(ctx, "/x.iso"); !errors.Is(err, contract.ErrHypervisorUnavailable) {
		t.Fatalf("Holding: %v", err)
	}
	if _, err := libvirt.NewLibrary(down, libvirt.LibraryConfig{Pool: "limen-isos", Dir: "/srv/isos"}); !errors.Is(err, contract.ErrHypervisorUnavailable) {
		t.Fatalf("NewLibrary: %v", err)
	}
}

func TestHolding_FindsLiveAndPersistentMedia(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	dir := mediaDir(t)
	a, b := makeISO(t, dir, "a.iso", "A"), makeISO(t, dir, "b.iso", "B")
	drive := libvirt.NewDrive(clientOf(l))
	stopped, running := newGuest(t, l, false, true), newGuest(t, l, true, true)
	if err := drive.Insert(ctx, stopped, a); err != nil {
		t.Fatal(err)
	}
	if err := drive.Insert(ctx, running, a); err != nil {
		t.Fatal(err)
	}
	// The running guest's next boot gets b while a stays in its drive now.
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(running))
	if err != nil {
		t.Fatal(err)
	}
	disk := cdromXML(b)
	if err := l.DomainUpdateDeviceFlags(dom, disk, golibvirt.DomainDeviceModifyConfig); err != nil {
		t.Fatal(err)
	}

	for path, want := range map[string][]uuid.UUID{a: {stopped, running}, b: {running}, dir + "/c.iso": nil} {
		got, err := drive.Holding(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
		slices.SortFunc(want, func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) })
		if !slices.Equal(got, want) {
			t.Errorf("Holding(%s) = %v, want %v", path, got, want)
		}
	}
}

// A guest right after boot is where a media change used to fail ("Tray of device ... is not open"):
// a hundred changes back to back from the first moment on must all succeed.
func TestSwaps_HundredBackToBackOnARunningGuest(t *testing.T) {
	ctx := context.Background()
	l := libvirttest.Connect(t)
	dir := mediaDir(t)
	isos := []string{makeISO(t, dir, "a.iso", "A"), makeISO(t, dir, "b.iso", "B")}
	drive := libvirt.NewDrive(clientOf(l))
	id := newGuest(t, l, true, true)
	failures := 0
	for i := range 100 {
		if err := drive.Insert(ctx, id, isos[i%2]); err != nil {
			failures++
			t.Errorf("swap %d: %v", i, err)
		}
	}
	t.Logf("100 swaps on a running guest: %d failures", failures)
	expectMedia(t, l, id, isos[1], true)
}

func benchmarkGuest(b *testing.B) (*golibvirt.Libvirt, uuid.UUID, []string) {
	l := libvirttest.Connect(b)
	dir := mediaDir(b)
	isos := []string{makeISO(b, dir, "a.iso", "A"), makeISO(b, dir, "b.iso", "B")}
	return l, newGuest(b, l, true, true), isos
}

func BenchmarkInsert_Adapter(b *testing.B) {
	l, id, isos := benchmarkGuest(b)
	drive := libvirt.NewDrive(clientOf(l))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := drive.Insert(ctx, id, isos[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkInsert_RawUpdateDeviceFlags is the floor: the one libvirt call a change needs, with
// nothing read first and nothing retried.
func BenchmarkInsert_RawUpdateDeviceFlags(b *testing.B) {
	l, id, isos := benchmarkGuest(b)
	dom, err := l.DomainLookupByUUID(golibvirt.UUID(id))
	if err != nil {
		b.Fatal(err)
	}
	disks := make([]string, len(isos))
	for i, iso := range isos {
		disks[i] = cdromXML(iso)
	}
	i := 0
	for b.Loop() {
		if err := l.DomainUpdateDeviceFlags(dom, disks[i%2], golibvirt.DomainDeviceModifyLive|golibvirt.DomainDeviceModifyConfig); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
