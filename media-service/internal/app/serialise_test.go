package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"limen/libs/failure"
	"limen/media-service/internal/app"
	"limen/media-service/internal/domain"
)

// Attaches that arrive once a deletion has checked which drives hold the ISO must not get it into a
// drive before the deletion: they wait for it and then find the ISO gone.
func TestDeleteISO_AttachesDuringItsCheckNeverGetTheDeletedISO(t *testing.T) {
	w := newWorld()
	const vms = 16
	var refs []string
	for range vms {
		vm := domain.VM{UUID: uuid.New(), OwnerID: 1}
		w.vms[vm.UUID.String()] = vm
		w.drive.drives[vm.UUID] = ""
		refs = append(refs, vm.UUID.String())
	}
	ctx := context.Background()
	var attaches sync.WaitGroup
	results := make(chan error, vms)
	// The attaches start right after the deletion's check looked at the drives, and have time to
	// resolve the ISO (it still exists) and change their drives before the deletion goes on.
	w.drive.holding = func() {
		for _, ref := range refs {
			attaches.Add(1)
			go func() {
				defer attaches.Done()
				_, err := w.attach(ctx, alice, ref, "ubuntu.iso")
				results <- err
			}()
		}
		time.Sleep(100 * time.Millisecond)
	}
	del := app.DeleteISOHandler{Library: w.library, Drive: w.drive, Claims: w.history}
	if err := del.Handle(ctx, app.DeleteISO{Name: "ubuntu.iso"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	attaches.Wait()
	close(results)
	for err := range results {
		if failure.KindOf(err) != failure.NotFound {
			t.Errorf("attach racing the deletion: %v, want ISO file not found", err)
		}
	}
	for vm, held := range w.drive.drives {
		if held == libraryDir+"/ubuntu.iso" {
			t.Errorf("VM %s holds the deleted ISO", vm)
		}
	}
}

// A deletion that comes while an attach of the ISO is in progress waits for it, then sees the drive
// holding the ISO and refuses.
func TestDeleteISO_WaitsForAnAttachInProgress(t *testing.T) {
	w := newWorld()
	ctx := context.Background()
	claim, err := w.history.ClaimDrive(ctx, w.vm.UUID, "ubuntu.iso")
	if err != nil {
		t.Fatal(err)
	}
	deleted := make(chan error, 1)
	go func() {
		deleted <- (app.DeleteISOHandler{Library: w.library, Drive: w.drive, Claims: w.history}).Handle(ctx, app.DeleteISO{Name: "ubuntu.iso"})
	}()
	select {
	case err := <-deleted:
		t.Fatalf("the deletion did not wait for the attach: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := w.drive.Insert(ctx, w.vm.UUID, libraryDir+"/ubuntu.iso"); err != nil {
		t.Fatal(err)
	}
	if err := w.history.Record(ctx, claim, domain.Change{VMUUID: w.vm.UUID, Action: domain.ActionAttach}); err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; failure.KindOf(err) != failure.Conflict {
		t.Fatalf("delete of an ISO attached meanwhile: %v", err)
	}
}

func TestUpload_AnnouncedChecksum(t *testing.T) {
	sum := sha256.Sum256([]byte("hello"))
	good := hex.EncodeToString(sum[:])
	bad := strings.Repeat("0", 64)
	for _, c := range []struct {
		announced string
		kind      failure.Kind
		message   string
	}{
		{"", failure.Unknown, ""},
		{good, failure.Unknown, ""},
		{strings.ToUpper(good), failure.Unknown, ""},
		{bad, failure.Invalid, "Upload checksum mismatch: announced SHA-256 " + bad + ", received " + good},
		{"abc", failure.Invalid, "Checksum must be a SHA-256: 64 hexadecimal digits"},
	} {
		lib := newLibrary()
		up, err := (app.UploadISOHandler{Library: lib, MaxBytes: 10, MaxLabel: "10 bytes"}).Handle(context.Background(),
			app.UploadISO{Name: "tiny.iso", Size: 5, Body: strings.NewReader("hello"), AnnouncedSHA256: c.announced})
		if failure.KindOf(err) != c.kind || c.kind != failure.Unknown && err.Error() != c.message {
			t.Errorf("announced %q: %v, want %q", c.announced, err, c.message)
			continue
		}
		if _, stored := lib.isos["tiny.iso"]; stored != (c.kind == failure.Unknown) {
			t.Errorf("announced %q: stored %v", c.announced, stored)
		}
		if c.kind == failure.Unknown && (up.SHA256 != good || up.ISO.Name != "tiny.iso") {
			t.Errorf("announced %q: %+v %s", c.announced, up.ISO, up.SHA256)
		}
	}
}
