package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"limen/libs/contract"
	"limen/libs/failure"
	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
)

var (
	alice = app.Caller{UserID: 1}
	bob   = app.Caller{UserID: 2}
	admin = app.Caller{UserID: 9, Admin: true}
)

type world struct {
	vm      domain.VM
	vms     fakeVMs
	library *fakeLibrary
	drive   *fakeDrive
	history *fakeHistory
	change  app.ChangeMediaHandler
}

func newWorld() *world {
	vm := domain.VM{UUID: uuid.New(), OwnerID: 1, Status: "Running"}
	w := &world{vm: vm, vms: fakeVMs{vm.UUID.String(): vm, "7": vm}, library: newLibrary("ubuntu.iso", "debian.iso"),
		drive: &fakeDrive{drives: map[uuid.UUID]string{vm.UUID: ""}}, history: newHistory()}
	w.change = app.ChangeMediaHandler{VMs: w.vms, Library: w.library, Drive: w.drive, Claims: w.history, History: w.history, Now: clock}
	return w
}

func (w *world) attach(ctx context.Context, caller app.Caller, ref, isoPath string) (domain.Media, error) {
	return w.change.Handle(ctx, app.ChangeMedia{Caller: caller, Ref: ref, Action: string(domain.ActionAttach), ISOPath: isoPath})
}

func (w *world) detach(ctx context.Context, caller app.Caller, ref string) (domain.Media, error) {
	return w.change.Handle(ctx, app.ChangeMedia{Caller: caller, Ref: ref, Action: string(domain.ActionDetach)})
}

func TestAttachSwapDetach_RecordsEachChange(t *testing.T) {
	w := newWorld()
	ctx := context.Background()
	ref := w.vm.UUID.String()
	if m, err := w.attach(ctx, alice, ref, libraryDir+"/ubuntu.iso"); err != nil || m.Path != libraryDir+"/ubuntu.iso" {
		t.Fatalf("attach: %q %v", m.Path, err)
	}
	// A bare name and the numeric id work too.
	if m, err := w.attach(ctx, alice, "7", "debian.iso"); err != nil || m.Path != libraryDir+"/debian.iso" {
		t.Fatalf("swap by name: %q %v", m.Path, err)
	}
	m, err := (app.GetMediaHandler{VMs: w.vms, Drive: w.drive}).Handle(ctx, app.GetMedia{Caller: alice, Ref: ref})
	if err != nil || !m.Attached || m.Path != libraryDir+"/debian.iso" {
		t.Fatalf("media %+v %v", m, err)
	}
	if _, err := w.detach(ctx, alice, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := w.detach(ctx, alice, ref); err != nil {
		t.Fatalf("detach of an empty drive: %v", err)
	}
	m, _ = (app.GetMediaHandler{VMs: w.vms, Drive: w.drive}).Handle(ctx, app.GetMedia{Caller: alice, Ref: ref})
	if m.Attached || m.Path != "" {
		t.Fatalf("after detach %+v", m)
	}
	got := w.history.changes
	if len(got) != 4 || got[2].Action != domain.ActionDetach || got[2].ISOPath != libraryDir+"/debian.iso" || got[0].ActorID != 1 {
		t.Fatalf("history %+v", got)
	}
}

func TestAttach_BadInputTouchesNothing(t *testing.T) {
	w := newWorld()
	ref := w.vm.UUID.String()
	cases := []struct {
		caller  app.Caller
		ref     string
		path    string
		message string
	}{
		{alice, ref, "", "ISO path is required for attach"},
		{alice, ref, "/etc/passwd", "ISO path must be inside the ISO library"},
		{alice, ref, libraryDir + "/../../etc/passwd", "ISO path must be inside the ISO library"},
		{alice, ref, "isos/ubuntu.iso", "ISO path must be inside the ISO library"},
		{alice, ref, libraryDir + "/notes.txt", "ISO path must be inside the ISO library"},
		{alice, ref, libraryDir + "/missing.iso", "ISO file not found: " + libraryDir + "/missing.iso"},
		{alice, ref, "missing.iso", "ISO file not found: missing.iso"},
		{bob, ref, "ubuntu.iso", "VM not found"},
		{alice, uuid.NewString(), "ubuntu.iso", "VM not found"},
	}
	for _, c := range cases {
		if _, err := w.attach(context.Background(), c.caller, c.ref, c.path); err == nil || err.Error() != c.message {
			t.Errorf("%q: got %v, want %q", c.path, err, c.message)
		}
	}
	if _, err := w.detach(context.Background(), bob, ref); !errors.Is(err, domain.ErrVMNotFound) {
		t.Errorf("bob detached alice's drive: %v", err)
	}
	if len(w.history.changes) != 0 || w.drive.drives[w.vm.UUID] != "" {
		t.Fatalf("bad input changed something: %+v", w.history.changes)
	}
	// An admin may act on anyone's VM.
	if _, err := w.attach(context.Background(), admin, ref, "ubuntu.iso"); err != nil {
		t.Fatal(err)
	}
}

func TestAttach_DriveFailureRecordsNothing(t *testing.T) {
	w := newWorld()
	w.drive.fail = errBoom
	if _, err := w.attach(context.Background(), alice, w.vm.UUID.String(), "ubuntu.iso"); !errors.Is(err, errBoom) {
		t.Fatalf("got %v", err)
	}
	w.drive.fail = contract.ErrHypervisorUnavailable
	if _, err := w.attach(context.Background(), alice, w.vm.UUID.String(), "ubuntu.iso"); !errors.Is(err, domain.ErrHypervisorDown) {
		t.Fatalf("got %v", err)
	}
	if len(w.history.changes) != 0 {
		t.Fatal("a failed change was recorded")
	}
}

func TestConcurrentAttachAndDetach_EndConsistent(t *testing.T) {
	w := newWorld()
	ref := w.vm.UUID.String()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				_, _ = w.attach(context.Background(), alice, ref, "ubuntu.iso")
			} else {
				_, _ = w.detach(context.Background(), alice, ref)
			}
		}()
	}
	wg.Wait()
	last := w.history.changes[len(w.history.changes)-1]
	held := w.drive.drives[w.vm.UUID]
	if last.Action == domain.ActionAttach && held != last.ISOPath || last.Action == domain.ActionDetach && held != "" {
		t.Fatalf("drive holds %q but the last recorded change is %+v", held, last)
	}
}

func TestUpload_HashesStreamsAndCaps(t *testing.T) {
	lib := newLibrary()
	uc := app.UploadISOHandler{Library: lib, MaxBytes: 10, MaxLabel: "10 bytes"}
	up, err := uc.Handle(context.Background(), app.UploadISO{Name: "tiny.iso", Size: 5, Body: strings.NewReader("hello")})
	want := sha256.Sum256([]byte("hello"))
	if err != nil || up.ISO.Name != "tiny.iso" || up.SHA256 != hex.EncodeToString(want[:]) {
		t.Fatalf("%+v %s %v", up.ISO, up.SHA256, err)
	}
	if _, err := uc.Handle(context.Background(), app.UploadISO{Name: "big.iso", Size: 11, Body: strings.NewReader("")}); failure.KindOf(err) != failure.TooLarge {
		t.Fatalf("over the cap: %v", err)
	}
	for _, name := range []string{"../x.iso", "x.img", ".hidden.iso", "a/b.iso", ""} {
		if _, err := uc.Handle(context.Background(), app.UploadISO{Name: name, Size: 1, Body: strings.NewReader("x")}); failure.KindOf(err) != failure.Invalid {
			t.Errorf("name %q: %v", name, err)
		}
	}
}

func TestDeleteISO_RefusedWhileAttached(t *testing.T) {
	w := newWorld()
	del := app.DeleteISOHandler{Library: w.library, Drive: w.drive, Claims: w.history}
	if _, err := w.attach(context.Background(), alice, w.vm.UUID.String(), "ubuntu.iso"); err != nil {
		t.Fatal(err)
	}
	if err := del.Handle(context.Background(), app.DeleteISO{Name: "ubuntu.iso"}); failure.KindOf(err) != failure.Conflict {
		t.Fatalf("delete of an attached ISO: %v", err)
	}
	if err := del.Handle(context.Background(), app.DeleteISO{Name: "debian.iso"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"debian.iso", "../etc/passwd"} {
		if err := del.Handle(context.Background(), app.DeleteISO{Name: name}); failure.KindOf(err) != failure.NotFound {
			t.Errorf("delete %q: %v", name, fmt.Sprint(err))
		}
	}
}
